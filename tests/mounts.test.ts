import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { BytesMount } from '../src/storage/mount/bytes.js'
import { FileMount } from '../src/storage/mount/file.js'
import { openFileReader } from '../src/storage/transients/file-reader.js'
import { MountRegistry } from '../src/storage/mount/registry.js'
import type { Mount } from '../src/base/mount-types.js'
import { mountConformance, type MountUnderTest } from '../src/testing/index.js'
import { runConformance } from './helpers/conformance.js'
import { fixture, tempDir } from './helpers/fixtures.js'
import { StreamMount, registerStreamMount } from './helpers/stream-mount.js'

const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)
const noop = async (): Promise<void> => {}

function conformance (name: string, make: () => Promise<MountUnderTest>): void {
  runConformance(`mount conformance: ${name}`, (test) => { mountConformance(test, make) })
}

conformance('FileMount', async () => ({ mount: new FileMount(SAMPLE), expected: sampleBytes, cleanup: noop }))

conformance('BytesMount', async () => ({ mount: new BytesMount(sampleBytes), expected: sampleBytes, cleanup: noop }))

conformance('BytesMount (empty)', async () => ({ mount: new BytesMount(new Uint8Array(0)), expected: new Uint8Array(0), cleanup: noop }))

conformance('StreamMount (file)', async () => ({
  mount: new StreamMount(SAMPLE, { chunkSize: 10_000 }),
  expected: sampleBytes,
  cleanup: noop,
  registry: registerStreamMount(new MountRegistry())
}))

conformance('StreamMount (bytes, no size)', async () => {
  const junk = await readFile(fixture('junk.dat'))
  return {
    mount: new StreamMount(junk, { chunkSize: 100, hideSize: true }),
    expected: junk,
    cleanup: noop,
    registry: registerStreamMount(new MountRegistry())
  }
})

async function codeOf (fn: () => unknown): Promise<string | undefined> {
  try {
    await fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------

const file = suite('FileMount')

file('URLs round-trip for awkward names', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const names = ['a b.car', '100%.car', '%41.car', 'x#y.car', 'q?x=1.car', 'ünïcødé-日本語-🙂.car',
      'semi;colon&amp=.car', 'back\\slash.car', 'tab\tnl\n.car', 'sub dir/inner #1.car']
    await mkdir(join(dir, 'sub dir'))
    const registry = new MountRegistry()
    for (const name of names) {
      const path = join(dir, name)
      const content = Buffer.from(`content of ${name}`)
      await writeFile(path, content)
      const mount = new FileMount(path)
      const url = mount.serialize()
      assert.is(url.protocol, 'file:')
      assert.is(fileURLToPath(url), resolve(path), name)
      assert.is(fileURLToPath(url.href), resolve(path), name)
      assert.is(FileMount.fromURL(url.href).path, resolve(path), name)
      const again = registry.instantiate(url.href)
      assert.instance(again, FileMount)
      assert.is((again as FileMount).path, resolve(path))
      const reader = await again.fetch()
      assert.equal(Buffer.from(await reader.read!(0, 1000)), content)
      await reader.close()
    }
  } finally {
    await cleanup()
  }
})

file('relative paths are resolved when the mount is made', () => {
  const m = new FileMount('some/rel.car')
  assert.is(m.path, resolve('some/rel.car'))
  assert.is(fileURLToPath(m.serialize()), resolve('some/rel.car'))
})

file('stat() of a missing file says exists:false, fetch() fails with ENOENT', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    for (const p of [join(dir, 'missing.car'), join(dir, 'missing-dir', 'x.car')]) {
      const m = new FileMount(p)
      assert.equal(await m.stat(), { exists: false, ready: true })
      assert.is(await codeOf(async () => await m.fetch()), 'ENOENT')
    }
    const st = await new FileMount(SAMPLE).stat()
    assert.equal(st, { exists: true, size: sampleBytes.byteLength, ready: true })
  } finally {
    await cleanup()
  }
})

file('fromURL rejects non-file and host-bearing URLs', async () => {
  assert.is(await codeOf(() => FileMount.fromURL('http://example.com/x.car')), 'ERR_INVALID_MOUNT')
  assert.is(await codeOf(() => FileMount.fromURL('file://otherhost/x.car')), 'ERR_INVALID_MOUNT')
  assert.is(await codeOf(() => FileMount.fromURL('file:///a%2Fb')), 'ERR_INVALID_MOUNT')
  assert.is(await codeOf(() => new FileMount('')), 'ERR_INVALID_MOUNT')
})

file.run()

// ---------------------------------------------------------------------------------------------

const reader = suite('openFileReader')

reader('streams in chunks and supports a custom chunk size', async () => {
  const r = await openFileReader(SAMPLE, undefined, { chunkSize: 1000 })
  try {
    let n = 0
    let chunks = 0
    for await (const c of r.stream(5)) { n += c.byteLength; chunks++; assert.ok(c.byteLength <= 1000) }
    assert.is(n, sampleBytes.byteLength - 5)
    assert.is(chunks, Math.ceil((sampleBytes.byteLength - 5) / 1000))
  } finally {
    await r.close()
  }
})

reader('many concurrent streams and reads on one fd', async () => {
  const r = await openFileReader(SAMPLE, undefined, { chunkSize: 4096 })
  try {
    const work: Array<Promise<void>> = []
    for (let i = 0; i < 8; i++) {
      const start = i * 1000
      work.push((async () => {
        const parts: Uint8Array[] = []
        for await (const c of r.stream(start)) parts.push(c)
        assert.ok(Buffer.concat(parts).equals(sampleBytes.subarray(start)))
      })())
      work.push((async () => {
        const got = await r.read!(start * 3, 777)
        assert.ok(Buffer.from(got).equals(sampleBytes.subarray(start * 3, start * 3 + 777)))
      })())
    }
    await Promise.all(work)
  } finally {
    await r.close()
  }
})

reader('reads after close are refused; close waits for reads in flight', async () => {
  const r = await openFileReader(SAMPLE)
  const pending = r.read!(0, sampleBytes.byteLength)
  const closing = r.close()
  assert.is((await pending).byteLength, sampleBytes.byteLength)
  await closing
  assert.is(await codeOf(async () => await r.read!(0, 1)), 'EBADF')
  assert.is(await codeOf(async () => { for await (const _ of r.stream()) { /* drain */ } }), 'EBADF')
})

reader('rejects bad ranges and directories', async () => {
  const r = await openFileReader(SAMPLE)
  try {
    assert.instance(await r.read!(-1, 1).catch((e: unknown) => e), RangeError)
    assert.instance(await r.read!(0, 1.5).catch((e: unknown) => e), RangeError)
  } finally {
    await r.close()
  }
  const { dir, cleanup } = await tempDir()
  try {
    assert.is(await codeOf(async () => await openFileReader(dir)), 'EISDIR')
  } finally {
    await cleanup()
  }
})

reader('readNow answers small reads of a finished file synchronously, with read()\'s bytes', async () => {
  const r = await openFileReader(SAMPLE)
  try {
    const readNow = r.readNow as NonNullable<typeof r.readNow>
    for (const [position, length] of [[0, 1], [11, 4096], [sampleBytes.byteLength - 10, 100], [sampleBytes.byteLength + 5, 10]] as const) {
      const now = readNow(position, length)
      assert.ok(now !== undefined, `readNow(${position}, ${length})`)
      assert.equal(Buffer.from(now), Buffer.from(await r.read!(position, length)))
    }
    // Block data is read() work: only header-sized reads are answered now.
    assert.is(readNow(0, 2 * 1024 * 1024), undefined)
    assert.throws(() => readNow(-1, 1), RangeError)
  } finally {
    await r.close()
  }
  assert.is(r.readNow?.(0, 10), undefined, 'a closed reader answers nothing now')
})

reader.run()

// ---------------------------------------------------------------------------------------------

const bytes = suite('BytesMount')

bytes('reads are views of the buffer, not copies', async () => {
  const buf = new Uint8Array(1000).map((_, i) => i & 0xff)
  const r = await new BytesMount(buf).fetch()
  const slice = await r.read!(10, 20)
  assert.is(slice.buffer, buf.buffer)
  for await (const c of r.stream()) assert.is(c.buffer, buf.buffer)
  await r.close()
})

bytes('URL is bytes:<base64url> and garbage is refused', async () => {
  const data = Buffer.from([0xfb, 0xff, 0xfe, 0x00, 0x01])
  const url = new BytesMount(data).serialize()
  assert.is(url.href, 'bytes:' + data.toString('base64url'))
  assert.equal(Buffer.from(BytesMount.fromURL(url).bytes), data)
  for (const bad of ['bytes:a+b/', 'bytes:abcde', 'bytes:ab?x', 'bytes:ab#x', 'file:///x']) {
    assert.is(await codeOf(() => BytesMount.fromURL(bad)), 'ERR_INVALID_MOUNT', bad)
  }
  // a view into a larger buffer serializes only the view
  const big = new Uint8Array([9, 9, 1, 2, 3, 9])
  assert.equal([...BytesMount.fromURL(new BytesMount(big.subarray(2, 5)).serialize()).bytes], [1, 2, 3])
})

bytes.run()

// ---------------------------------------------------------------------------------------------

const registry = suite('MountRegistry')

registry('has file and bytes by default; empty when asked', () => {
  const r = new MountRegistry()
  assert.ok(r.has('file'))
  assert.ok(r.has('bytes'))
  assert.ok(r.has('FILE'))
  assert.not.ok(r.has('stream'))
  assert.equal(new MountRegistry({ builtins: false }).schemes(), [])
})

registry('register validates schemes and refuses duplicates', async () => {
  const r = new MountRegistry()
  const factory = (url: URL): Mount => StreamMount.fromURL(url)
  r.register('stream', factory)
  assert.ok(r.has('stream'))
  assert.is(await codeOf(() => { r.register('stream', factory) }), 'ERR_INVALID_MOUNT')
  assert.is(await codeOf(() => { r.register('STREAM', factory) }), 'ERR_INVALID_MOUNT')
  assert.is(await codeOf(() => { r.register('file', factory) }), 'ERR_INVALID_MOUNT')
  for (const bad of ['', 'x:', '1abc', 'a b', 'a/b', 'é', '-x']) {
    assert.is(await codeOf(() => { r.register(bad, factory) }), 'ERR_INVALID_MOUNT', JSON.stringify(bad))
  }
  r.register('my+sch.eme-2', factory)
  assert.ok(r.has('my+sch.eme-2'))
})

registry('instantiate: unknown scheme, unparsable URL, failing factory', async () => {
  const r = new MountRegistry()
  assert.is(await codeOf(() => r.instantiate('nope://x')), 'ERR_UNKNOWN_MOUNT_SCHEME')
  assert.is(await codeOf(() => r.instantiate(new URL('stream:?file=/x'))), 'ERR_UNKNOWN_MOUNT_SCHEME')
  assert.is(await codeOf(() => r.instantiate('not a url')), 'ERR_INVALID_MOUNT')
  assert.is(await codeOf(() => r.instantiate('')), 'ERR_INVALID_MOUNT')
  assert.is(await codeOf(() => r.instantiate('bytes:***')), 'ERR_INVALID_MOUNT')
  r.register('boom', () => { throw new Error('no') })
  const err = await (async () => { try { r.instantiate('boom:x') } catch (e) { return e as Error } })()
  assert.is((err as { code?: string }).code, 'ERR_INVALID_MOUNT')
  assert.is((err?.cause as Error).message, 'no')
  r.register('notamount', () => ({}) as unknown as Mount)
  assert.is(await codeOf(() => r.instantiate('notamount:x')), 'ERR_INVALID_MOUNT')
})

registry('instantiate hands the factory a copy of the URL', () => {
  const r = new MountRegistry({ builtins: false })
  let seen: URL | undefined
  r.register('x', (u) => { seen = u; return new BytesMount(new Uint8Array(0)) })
  const url = new URL('x:abc')
  r.instantiate(url)
  assert.is(seen?.href, 'x:abc')
  assert.is.not(seen, url)
})

registry('represent: registered schemes only', async () => {
  const r = new MountRegistry()
  const fm = new FileMount(SAMPLE)
  assert.is(r.represent(fm).href, fm.serialize().href)
  const sm = new StreamMount(SAMPLE)
  assert.is(await codeOf(() => r.represent(sm)), 'ERR_UNKNOWN_MOUNT_SCHEME')
  registerStreamMount(r)
  assert.is(r.represent(sm).href, sm.serialize().href)
  assert.is(await codeOf(() => r.represent({} as unknown as Mount)), 'ERR_INVALID_MOUNT')
})

registry.run()
