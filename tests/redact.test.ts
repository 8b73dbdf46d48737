// redactUrl: mount URLs as they are shown (listings, logs, errors, events), secrets hidden.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { pathToFileURL } from 'node:url'
import { REDACTED, SECRET_PARAMS, redactUrl } from '../src/base/redact.js'
import { BytesMount } from '../src/storage/mount/bytes.js'
import { HttpMount } from '../src/storage/mount/http.js'
import { MountRegistry } from '../src/storage/mount/registry.js'

const test = suite('redactUrl')

test('userinfo: user only, user and password, password only, percent-encoded', () => {
  assert.is(redactUrl('http://alice@example.com/x.car'), 'http://***@example.com/x.car')
  assert.is(redactUrl('https://alice:s3cret@example.com/x.car'), 'https://***:***@example.com/x.car')
  assert.is(redactUrl('http://:s3cret@example.com/x.car'), 'http://***:***@example.com/x.car')
  const encoded = redactUrl('http://a%40b.c:p%3Aw%2Fd@example.com:8080/dir/x.car')
  assert.is(encoded, 'http://***:***@example.com:8080/dir/x.car')
  for (const leak of ['a%40b', 'a@b', 'p%3Aw', 'p:w']) assert.not.ok(encoded.includes(leak), leak)
})

test('query parameters: secret names case-insensitively (also percent-encoded), the others untouched and in order', () => {
  assert.is(redactUrl('http://h/x.car?token=abc&x=1'), 'http://h/x.car?token=***&x=1')
  assert.is(redactUrl('http://h/x.car?x=1&TOKEN=abc&y=%20z&Api_Key=k'), 'http://h/x.car?x=1&TOKEN=***&y=%20z&Api_Key=***')
  assert.is(
    redactUrl('https://b.s3.amazonaws.com/k.car?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101&X-Amz-Date=20240101T000000Z&X-Amz-Signature=deadbeef'),
    'https://b.s3.amazonaws.com/k.car?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Date=20240101T000000Z&X-Amz-Signature=***')
  assert.is(redactUrl('http://h/x?%74oken=1'), 'http://h/x?%74oken=***', 'a percent-encoded name is still that name')
  assert.is(redactUrl('http://h/x?tok=1&tokens=2&mytoken=3'), 'http://h/x?tok=1&tokens=2&mytoken=3', 'only whole names')
  assert.is(redactUrl('http://h/x?token=&token'), 'http://h/x?token=&token', 'nothing to hide')
  assert.is(redactUrl('http://u:p@h/x?sig=1&a=2#access_token=3&b=4'), 'http://***:***@h/x?sig=***&a=2#access_token=***&b=4')
  for (const name of SECRET_PARAMS) {
    assert.is(redactUrl(`http://h/x?${name}=v1&other=v2`), `http://h/x?${name}=${REDACTED}&other=v2`, name)
    assert.is(redactUrl(`http://h/x?${name.toUpperCase()}=v1`), `http://h/x?${name.toUpperCase()}=${REDACTED}`, name)
  }
})

test('nothing secret: the URL comes back exactly as given (no re-serialisation)', () => {
  for (const url of [
    'http://example.com/x.car',
    'HTTP://Example.COM/a%20b.car?x=1&y',
    'https://h/x?',
    pathToFileURL('/tmp/some dir/ä.car').href,
    'file:///tmp/a%20b.car',
    new BytesMount(new Uint8Array([1, 2, 3, 250])).serialize().href,
    'bytes:',
    'custom:opaque?x=1'
  ]) {
    assert.is(redactUrl(url), url)
  }
  // What a redacted file: or bytes: URL means is what it meant: both are still instantiable and equal.
  const reg = new MountRegistry()
  const file = pathToFileURL('/tmp/x.car').href
  assert.is(reg.represent(reg.instantiate(redactUrl(file))).href, file)
})

test('text that is not a URL: userinfo and secret parameters hidden by pattern, the rest kept', () => {
  assert.is(redactUrl('not a url'), 'not a url')
  assert.is(redactUrl(''), '')
  assert.is(redactUrl('http://u:p@[::1/x.car?token=abc&x=1'), 'http://***:***@[::1/x.car?token=***&x=1')
  assert.is(redactUrl('http://u@[bad'), 'http://***@[bad')
  assert.is(redactUrl('relative/x.car?key=1'), 'relative/x.car?key=***')
})

test('HttpMount errors and HttpStatusError.url show the redacted URL; the mount keeps the real one', async () => {
  const url = 'http://user:s3cret@127.0.0.1:1/x.car?token=abc&x=1'
  const mount = new HttpMount(url, { retries: 0, timeoutMs: 2000 })
  assert.is(mount.serialize().href, url)
  const err = await mount.stat().then(() => undefined, (e: unknown) => e as Error)
  assert.ok(err !== undefined)
  assert.is((err as { code?: string }).code, 'ERR_HTTP_NETWORK')
  assert.ok(err.message.includes('http://***:***@127.0.0.1:1/x.car?token=***&x=1'), err.message)
  for (const leak of ['s3cret', 'abc']) assert.not.ok(err.message.includes(leak), err.message)
  try {
    void new HttpMount('http://user:s3cret@[bad/x.car')
    assert.unreachable()
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_INVALID_MOUNT')
    assert.not.ok((e as Error).message.includes('s3cret'), (e as Error).message)
  }
  try {
    new MountRegistry().instantiate('http://user:s3cret@[bad/x.car')
    assert.unreachable()
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_INVALID_MOUNT')
    assert.not.ok((e as Error).message.includes('s3cret'), (e as Error).message)
  }
})

test.run()
