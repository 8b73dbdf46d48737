// `dagstore verify` (direct mode and through a running serve) and POST /shards/{key}/verify:
// real repos in temp dirs, copies of sample-v1.car damaged behind the store, real servers on
// 127.0.0.1.
import * as assert from 'uvu/assert'
import { copyFile, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { CarIndexer } from '@ipld/car/indexer'
import { Level } from 'level'
import { FsIndexRepo } from '../src/storage/index/fs-repo.js'
import { LevelTopLevelIndex } from '../src/storage/index/level-top-level.js'
import { FileMount } from '../src/storage/mount/file.js'
import { startServer } from '../src/app/server/index.js'
import type { VerifyJson, VerifyListJson } from '../src/app/wire.js'
import { fixture, flipBlockByte } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'
import { cli, startServe, type CliResult } from './helpers/cli.js'
import { runCli } from '../src/app/cli/commands/program.js'
import type { CliIo } from '../src/app/cli/io.js'

const test = dirSuite('cli verify')

/** Two copies of sample-v1.car in `dir`/cars: good.car and bad.car. */
async function cars (dir: string): Promise<{ good: string, bad: string }> {
  const root = join(dir, 'cars')
  await mkdir(root, { recursive: true })
  const good = join(root, 'good.car')
  const bad = join(root, 'bad.car')
  await copyFile(fixture('sample-v1.car'), good)
  await copyFile(fixture('sample-v1.car'), bad)
  return { good, bad }
}

/** Replaces the stored full index of `key` by one without its first entry (the store is not running). */
async function dropFirstIndexEntry (repo: string, key: string): Promise<void> {
  const indexRepo = new FsIndexRepo(join(repo, 'index'))
  const entries = [...await indexRepo.get(key)].slice(1)
  const byHex = new Map(entries.map((e) => [Buffer.from(e.multihash).toString('hex'), e.offset]))
  await indexRepo.drop(key)
  await indexRepo.add(key, {
    size: entries.length,
    get: (mh) => byHex.get(Buffer.from(mh).toString('hex')),
    [Symbol.iterator]: () => entries[Symbol.iterator]()
  })
}

function exits (r: CliResult, code: number, what: string): void {
  assert.is(r.code, code, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
}

function reports (r: CliResult): VerifyJson[] {
  return (JSON.parse(r.stdout) as VerifyListJson).shards
}

const BLOCKS = async (): Promise<number> => {
  let n = 0
  for await (const e of await CarIndexer.fromBytes(await readFile(fixture('sample-v1.car')))) if (e.cid.multihash.code !== 0) n++
  return n
}

test('direct mode: healthy and corrupted shards, an unknown key; lines, JSON and exit codes', async ({ dir }) => {
  const { good, bad } = await cars(dir)
  const repo = join(dir, 'repo')
  const d = ['--dir', repo]
  exits(await cli(['register', good, bad, ...d]), 0, 'register')
  const { cid } = await flipBlockByte(bad)
  const blocks = await BLOCKS()

  const healthy = await cli(['verify', 'good', ...d])
  exits(healthy, 0, 'verify good')
  assert.is(healthy.stdout, `ok good: ${blocks} blocks\n`)

  const json = await cli(['verify', 'good', 'bad', 'nope', '--json', ...d])
  exits(json, 1, 'verify --json')
  const [g, b, n] = reports(json)
  assert.equal(g, { key: 'good', ok: true, blocks, problems: [], repaired: false })
  assert.equal([b?.key, b?.ok, b?.problems.map((p) => p.code)], ['bad', false, ['ERR_HASH_MISMATCH']])
  assert.match(b?.problems[0]?.message ?? '', new RegExp(`block hash mismatch for ${cid} at byte \\d+$`))
  assert.equal([n?.key, n?.ok, n?.problems.map((p) => p.code)], ['nope', false, ['ERR_SHARD_UNKNOWN']])

  // Without a TTY, --all writes a line per shard and a summary; bad data is not repairable.
  const all = await cli(['verify', '--all', '--repair', ...d])
  exits(all, 1, 'verify --all --repair')
  const lines = all.stdout.trimEnd().split('\n')
  assert.match(lines[0] ?? '', /^FAILED bad: 1 problem$/)
  assert.match(lines[1] ?? '', /^ {2}ERR_HASH_MISMATCH: block hash mismatch for /)
  assert.is(lines[2], `ok good: ${blocks} blocks`)
  assert.is(lines[3], 'verified 2 shards: 1 ok, 0 repaired, 1 failed')

  const usage = await cli(['verify', ...d])
  exits(usage, 2, 'verify without keys')
  assert.match(usage.stderr, /ERR_USAGE: verify takes keys or --all/)
})

test('direct mode: an altered full index is reported, --repair rewrites it, the next verify is ok', async ({ dir }) => {
  const { good } = await cars(dir)
  const repo = join(dir, 'repo')
  const d = ['--dir', repo]
  exits(await cli(['register', good, ...d]), 0, 'register')
  await dropFirstIndexEntry(repo, 'good')

  const found = await cli(['verify', 'good', '--json', ...d])
  exits(found, 1, 'verify')
  assert.equal(reports(found).map((r) => [r.ok, r.repaired, r.problems.map((p) => p.code)]), [[false, false, ['ERR_INDEX_MISMATCH']]])
  const repaired = await cli(['verify', 'good', '--repair', ...d])
  exits(repaired, 0, 'verify --repair')
  assert.match(repaired.stdout, /^repaired good: 1 problem, full index and top-level entries rewritten\n {2}ERR_INDEX_MISMATCH: block [0-9a-f]+ at payload offset \d+ is missing from the full index\n$/)
  exits(await cli(['verify', 'good', ...d]), 0, 'verify after repair')
})

test('through a running serve: the same reports; --repair goes through the route', async ({ dir }) => {
  const { good, bad } = await cars(dir)
  const repo = join(dir, 'repo')
  const d = ['--dir', repo]
  exits(await cli(['register', good, bad, ...d]), 0, 'register')
  const { cid } = await flipBlockByte(bad)
  await dropFirstIndexEntry(repo, 'good')
  const { serve } = await startServe(repo)
  try {
    const first = await cli(['verify', '--all', '--json', '--verbose', ...d])
    exits(first, 1, 'verify --all')
    assert.match(first.stderr, /using the server at/)
    const [b, g] = reports(first)
    assert.equal([b?.key, b?.problems.map((p) => p.code)], ['bad', ['ERR_HASH_MISMATCH']])
    assert.match(b?.problems[0]?.message ?? '', new RegExp(`block hash mismatch for ${cid} at byte \\d+$`))
    assert.equal([g?.key, g?.problems.map((p) => p.code)], ['good', ['ERR_INDEX_MISMATCH']])
    const repaired = await cli(['verify', 'good', '--repair', '--json', ...d])
    exits(repaired, 0, 'verify --repair')
    assert.equal(reports(repaired).map((r) => [r.ok, r.repaired]), [[false, true]])
    exits(await cli(['verify', 'good', ...d]), 0, 'verify after repair')
    const unknown = await cli(['verify', 'nope', '--json', ...d])
    exits(unknown, 1, 'verify nope')
    assert.equal(reports(unknown).map((r) => r.problems.map((p) => p.code)), [['ERR_SHARD_UNKNOWN']])
  } finally {
    await serve.stop()
  }
})

test('POST /shards/{key}/verify: token required; the report; ?repair=1 rewrites; 404 for an unknown key', async ({ dir }) => {
  const { good } = await cars(dir)
  const db = new Level(join(dir, 'state'))
  const { store } = await openStore(join(dir, 'store'), { datastore: db as never })
  const token = 'verify-token_0123456789'
  const server = await startServer(store, { port: 0, token })
  try {
    await store.register('a/b', new FileMount(good))
    const blocks = (await store.getIterableIndex('a/b')).size
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const post = async (path: string, auth = token): Promise<{ status: number, body: any }> => {
      const res = await fetch(server.url + path, { method: 'POST', headers: { authorization: `Bearer ${auth}` } })
      return { status: res.status, body: await res.json() }
    }
    const path = `/shards/${encodeURIComponent('a/b')}/verify`
    const none = await fetch(server.url + path, { method: 'POST' })
    const noneBody = await none.json() as { error: { code: string } }
    assert.equal([none.status, noneBody.error.code], [401, 'ERR_UNAUTHORIZED'])
    const wrong = await post(path, 'wrong')
    assert.equal([wrong.status, wrong.body.error.code], [401, 'ERR_UNAUTHORIZED'])
    assert.equal(await post(path), { status: 200, body: { key: 'a/b', ok: true, blocks, problems: [], repaired: false } })

    // Top-level entries lost behind the store: reported, then repaired through the route.
    const lost = [...await store.getIterableIndex('a/b')].slice(0, 2).map((e) => e.multihash)
    await new LevelTopLevelIndex(db as never).removeShard('a/b', lost)
    const found = await post(path)
    const codes = found.body.problems.map((p: { code: string }) => p.code)
    assert.equal([found.status, found.body.ok, codes], [200, false, ['ERR_TOP_LEVEL_MISSING', 'ERR_TOP_LEVEL_MISSING']])
    const fixed = await post(path + '?repair=1')
    assert.equal([fixed.status, fixed.body.repaired], [200, true])
    for (const mh of lost) assert.equal(await store.shardsContainingMultihash(mh), ['a/b'])
    assert.is((await post(path)).body.ok, true)

    const unknown = await post('/shards/nope/verify')
    assert.equal([unknown.status, unknown.body.error.code], [404, 'ERR_SHARD_UNKNOWN'])
    const badFlag = await post(path + '?repair=maybe')
    assert.equal([badFlag.status, badFlag.body.error.code], [400, 'ERR_INVALID_REQUEST'])
  } finally {
    await server.close()
    await store.close()
    await db.close()
  }
})

/** A terminal in memory: cli-progress draws its bar only where `isTTY`. */
class Terminal extends Writable {
  text = ''
  readonly isTTY = true
  readonly columns = 100

  override _write (chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString()
    done()
  }

  cursorTo (x: number): boolean { return this.write(`\x1b[${x + 1}G`) }
  clearLine (): boolean { return this.write('\x1b[2K') }
  moveCursor (): boolean { return true }
}

test('--all on a terminal: a progress bar on stderr with the shard lines above it; the summary on stdout', async ({ dir }) => {
  const { good, bad } = await cars(dir)
  const repo = join(dir, 'repo')
  exits(await cli(['register', good, bad, '--dir', repo]), 0, 'register')
  await flipBlockByte(bad)
  const stdout = new Terminal()
  const stderr = new Terminal()
  const io: CliIo = { stdout, stderr, exit: () => {}, env: {}, cwd: dir, stop: new AbortController().signal, onExit: () => () => {} }
  const code = await runCli(['verify', '--all', '--dir', repo], io)
  assert.is(code, 1, stderr.text)
  assert.is(stdout.text, 'verified 2 shards: 1 ok, 0 repaired, 1 failed\n')
  assert.match(stderr.text, /verifying \[[█░]+\] \d\/2 /)
  assert.match(stderr.text, /FAILED bad: 1 problem\n {2}ERR_HASH_MISMATCH: /)
  assert.match(stderr.text, /ok good: \d+ blocks\n/)
})

test.run()
