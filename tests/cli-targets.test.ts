// What `dagstore register` takes as a target: a path, a file: URL or an http(s) URL. Any
// other `scheme:` is a URL of a kind it does not register (never a path below the cwd), a
// one-letter "scheme" is a Windows drive, and bytes: URLs (the data itself) are refused by
// the CLI and the admin API alike. The CLI runs in this process, the admin API over real HTTP.
import * as assert from 'uvu/assert'
import { copyFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startServer } from '../src/app/server/index.js'
import { BytesMount } from '../src/storage/mount/bytes.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'
import { cli, hasStack, type CliResult } from './helpers/cli.js'

const test = dirSuite('cli targets')

/** The error lines on stderr, each `dagstore: CODE: ...`. */
function errorLines (r: CliResult): string[] {
  assert.not.ok(hasStack(r.stderr), r.stderr)
  return r.stderr.split('\n').filter((l) => l !== '')
}

test('register ftp://…, gopher:…: ERR_UNKNOWN_MOUNT_SCHEME, not a missing file below the cwd; the other targets still register', async ({ dir }) => {
  const cwd = join(dir, 'work')
  await mkdir(cwd)
  await copyFile(fixture('sample-v1.car'), join(cwd, 'good.car'))
  const d = ['--dir', join(dir, 'repo')]
  const r = await cli(['register', 'ftp://127.0.0.1/pub/x.car', 'good.car', 'gopher:x.car', '--json', ...d], { cwd })
  assert.is(r.code, 1, r.stderr)
  const out = JSON.parse(r.stdout) as {
    shards: Array<{ key: string, state: string }>
    errors: Array<{ target: string, error: { code: string, message: string } }>
  }
  assert.equal(out.shards.map((s) => [s.key, s.state]), [['good', 'available']])
  assert.equal(out.errors.map((e) => [e.target, e.error.code]), [
    ['ftp://127.0.0.1/pub/x.car', 'ERR_UNKNOWN_MOUNT_SCHEME'],
    ['gopher:x.car', 'ERR_UNKNOWN_MOUNT_SCHEME']
  ])
  for (const e of out.errors) assert.not.ok(e.error.message.includes(cwd), e.error.message)

  const human = await cli(['register', 'ftp://127.0.0.1/pub/x.car', ...d], { cwd })
  assert.is(human.code, 1)
  const lines = errorLines(human)
  assert.is(lines.length, 1, human.stderr)
  assert.ok(lines[0]?.startsWith('dagstore: ERR_UNKNOWN_MOUNT_SCHEME: ftp://127.0.0.1/pub/x.car: '), lines[0])
})

test('a colon in a file name: ./name is a path; a one-letter scheme is a drive letter, so a path', async ({ dir }) => {
  const cwd = join(dir, 'work')
  await mkdir(cwd)
  await copyFile(fixture('sample-v1.car'), join(cwd, 'deal:1.car'))
  const d = ['--dir', join(dir, 'repo')]
  let r = await cli(['register', 'deal:1.car', ...d], { cwd })
  assert.is(r.code, 1)
  assert.ok(errorLines(r)[0]?.startsWith('dagstore: ERR_UNKNOWN_MOUNT_SCHEME: '), r.stderr)
  assert.ok(r.stderr.includes('./deal:1.car'), `the hint names the path to write: ${r.stderr}`)
  r = await cli(['register', './deal:1.car', '--json', ...d], { cwd })
  assert.is(r.code, 0, r.stderr)
  assert.equal((JSON.parse(r.stdout) as { shards: Array<{ key: string }> }).shards.map((s) => s.key), ['deal:1'])
  r = await cli(['register', 'C:/cars/x.car', ...d], { cwd })
  assert.is(r.code, 1)
  assert.ok(errorLines(r)[0]?.startsWith(`dagstore: ERR_FILE_NOT_FOUND: ${join(cwd, 'C:/cars/x.car')}`), r.stderr)
})

test('register bytes:…: refused with ERR_MOUNT_SCHEME_NOT_ALLOWED, nothing registered', async ({ dir }) => {
  const d = ['--dir', join(dir, 'repo')]
  const url = new BytesMount(new Uint8Array(64)).serialize().href
  let r = await cli(['register', url, '--key', 'inline', ...d])
  assert.is(r.code, 1)
  assert.ok(errorLines(r)[0]?.startsWith('dagstore: ERR_MOUNT_SCHEME_NOT_ALLOWED: bytes: '), r.stderr)
  r = await cli(['ls', '--json', ...d])
  assert.equal(JSON.parse(r.stdout), { shards: [] })
})

test('POST /shards with a bytes: URL: 400 ERR_MOUNT_SCHEME_NOT_ALLOWED, nothing registered; other mounts still are', async ({ dir }) => {
  const { store } = await openStore(join(dir, 'store'))
  const errors: unknown[] = []
  const server = await startServer(store, { port: 0, token: 'bytes-test-token-0123', onError: (err) => { errors.push(err) } })
  try {
    const post = async (body: unknown): Promise<{ status: number, json: { error?: { code: string, message: string } } }> => {
      const res = await fetch(new URL('/shards', server.url), {
        method: 'POST',
        headers: { authorization: 'Bearer bytes-test-token-0123', 'content-type': 'application/json' },
        body: JSON.stringify(body)
      })
      return { status: res.status, json: await res.json() as { error?: { code: string, message: string } } }
    }
    const sample = new BytesMount(new Uint8Array(64)).serialize().href
    for (const url of [sample, 'BYTES:AAAA', 'bytes:']) {
      const r = await post({ key: 'inline', url })
      assert.equal([r.status, r.json.error?.code], [400, 'ERR_MOUNT_SCHEME_NOT_ALLOWED'], url)
      assert.match(r.json.error?.message ?? '', /bytes:/)
    }
    assert.equal([...store.allShardsInfo().keys()], [], 'nothing registered')
    // The library itself still takes one.
    await store.register('direct', new BytesMount(new Uint8Array(0)), { lazy: true })
    assert.equal([...store.allShardsInfo().keys()], ['direct'])
    assert.equal(errors, [])
  } finally {
    await server.close()
    await store.close()
  }
})

test.run()
