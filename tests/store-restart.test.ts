// The restart rules of docs/CONTRACT.md, with a real LevelDB folder closed and reopened.
import * as assert from 'uvu/assert'
import { copyFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FileMount } from '../src/storage/mount/file.js'
import { StreamMount } from './helpers/stream-mount.js'
import { fixture } from './helpers/fixtures.js'
import { Gate, gatedIndexer, openStore, recordTraces, until, dirSuite, type DirContext } from './helpers/store.js'

const test = dirSuite('restart')

const sample = (): FileMount => new FileMount(fixture('sample-v1.car'))

test('every state and field survives close + reopen; serving comes back available with refs 0', async (ctx) => {
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  await s1.register('lazy', sample(), { lazy: true })
  await s1.register('avail', sample())
  await s1.register('serving', sample())
  await s1.register('bad', new FileMount(fixture('junk.dat'))).catch(() => {})
  await s1.acquire('serving') // never released: the process "dies" holding it
  await s1.close()

  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  assert.equal(s2.getShardInfo('lazy'), { state: 'new', refs: 0 })
  assert.equal(s2.getShardInfo('avail'), { state: 'available', refs: 0 })
  assert.equal(s2.getShardInfo('serving'), { state: 'available', refs: 0 })
  const bad = s2.getShardInfo('bad')
  assert.is(bad.state, 'errored')
  assert.is((bad.error as { code?: string }).code, 'ERR_INVALID_CAR', 'the error code survives a restart')
  assert.match(bad.error?.message ?? '', /byte/)
  const acc = await s2.acquire('avail')
  assert.ok(await acc.blockstore().has((await first(acc.blockstore().allKeys()))))
  await acc.close()
  await s2.close()
})

async function first<T> (it: AsyncIterable<T>): Promise<T> {
  for await (const x of it) return x
  throw new Error('empty')
}

test('initializing at close: not recorded as a failure; re-registered at start (register, initialize, makeAvailable)', async (ctx) => {
  const gate = new Gate()
  gate.close()
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, shardIndexer: gatedIndexer(gate) })).store
  const registered = s1.register('a', sample()).then(() => undefined, (e: unknown) => e as { code: string })
  await until(() => gate.waiting === 1)
  await s1.close()
  assert.is((await registered)?.code, 'ERR_STORE_CLOSED')

  let t: ReturnType<typeof recordTraces> | undefined
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, beforeStart: (s) => { t = recordTraces(s) } })).store
  await until(() => t?.traces.length === 3, 'restart traces')
  assert.equal(t?.ops('a'), ['register:new', 'initialize:initializing', 'makeAvailable:available'])
  assert.is(s2.getShardInfo('a').state, 'available')
  await s2.close()
})

test('initializing whose index exists comes back available without re-fetching', async (ctx) => {
  const gate = new Gate()
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, shardIndexer: gatedIndexer(gate) })).store
  await s1.register('a', sample())
  await s1.close()
  // Simulate a crash after the index was written but before makeAvailable was persisted.
  const { Level } = await import('level')
  const db = new Level(join(ctx.dir, 'state'))
  const records = db.sublevel<string, string>('shards', { valueEncoding: 'utf8' })
  const rec = JSON.parse(await records.get('a') as string) as Record<string, unknown>
  await records.put('a', JSON.stringify({ ...rec, s: 'initializing' }))
  await db.close()
  const indexer = gatedIndexer(gate)
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, shardIndexer: indexer })).store
  assert.equal(s2.getShardInfo('a'), { state: 'available', refs: 0 })
  assert.is(indexer.calls, 0)
  await s2.close()
})

async function erroredAtClose (ctx: DirContext): Promise<string> {
  const path = join(ctx.dir, 'later.car')
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  await s1.register('e', new FileMount(path)).catch(() => {})
  assert.is(s1.getShardInfo('e').state, 'errored')
  await s1.close()
  await copyFile(fixture('sample-v1.car'), path)
  return path
}

test("errored + recoverOnStart 'none': stays errored", async (ctx) => {
  await erroredAtClose(ctx)
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  assert.is(s2.getShardInfo('e').state, 'errored')
  await s2.acquire('e').then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_SHARD_ERRORED') })
  await s2.close()
})

test("errored + recoverOnStart 'now': recovered at start", async (ctx) => {
  await erroredAtClose(ctx)
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, recoverOnStart: 'now' })).store
  await until(() => s2.getShardInfo('e').state === 'available', 'recovery at start')
  await s2.close()
})

test("errored + recoverOnStart 'on-acquire': first acquire parks and triggers one recovery", async (ctx) => {
  await erroredAtClose(ctx)
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, recoverOnStart: 'on-acquire' })).store
  assert.is(s2.getShardInfo('e').state, 'errored')
  const t = recordTraces(s2)
  const acc = await s2.acquire('e')
  assert.equal(s2.getShardInfo('e'), { state: 'serving', refs: 1 })
  await acc.close()
  await until(() => t.traces.length >= 4)
  assert.equal(t.ops('e'), ['acquire:errored', 'recover:recovering', 'makeAvailable:serving', 'release:available'])
  await s2.close()
})

test("'on-acquire' recovers once: after a failed recovery later acquires fail at once", async (ctx) => {
  const path = await erroredAtClose(ctx)
  await rm(path)
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, recoverOnStart: 'on-acquire' })).store
  await s2.acquire('e').then(() => assert.unreachable(), () => {})
  const t = recordTraces(s2)
  await s2.acquire('e').then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_SHARD_ERRORED') })
  await until(() => t.traces.length >= 1)
  assert.equal(t.ops('e'), ['acquire:errored'])
  await s2.close()
})

test('recovering at close comes back errored (never stuck), then follows the policy', async (ctx) => {
  const path = join(ctx.dir, 'later.car')
  const gate = new Gate()
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, shardIndexer: gatedIndexer(gate) })).store
  await s1.register('e', new FileMount(path)).catch(() => {})
  await copyFile(fixture('sample-v1.car'), path)
  gate.close()
  const recovering = s1.recover('e').catch(() => {})
  await until(() => gate.waiting === 1)
  assert.is(s1.getShardInfo('e').state, 'recovering')
  await s1.close()
  await recovering
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  assert.is(s2.getShardInfo('e').state, 'errored')
  await s2.recover('e')
  assert.is(s2.getShardInfo('e').state, 'available')
  await s2.close()
})

test('orphan files in the transients dir are deleted at start; owned transients are kept', async (ctx) => {
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  await s1.register('remote', new StreamMount(fixture('sample-v1.car')))
  await s1.close()
  const tdir = join(ctx.dir, 'transients')
  const owned = await readdir(tdir)
  assert.is(owned.length, 1)
  await writeFile(join(tdir, 'junk.partial'), 'x')
  await writeFile(join(tdir, 'stray.car'), 'x')
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  assert.equal(await readdir(tdir), owned)
  const acc = await s2.acquire('remote')
  await acc.close()
  await s2.close()
})

test('a destroyed shard never comes back after a restart', async (ctx) => {
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  await s1.register('a', sample())
  await s1.register('b', sample(), { lazy: true })
  await s1.destroy('a')
  await s1.close()
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  assert.equal([...s2.allShardsInfo().keys()], ['b'])
  await s2.close()
})

test('with the defaults (LevelDB + FsIndexRepo under dir) available shards serve after a restart without re-indexing', async (ctx) => {
  const s1 = (await openStore(ctx.dir)).store
  await s1.register('a', sample())
  await s1.close()
  const indexer = gatedIndexer(new Gate())
  const s2 = (await openStore(ctx.dir, { shardIndexer: indexer })).store
  const acc = await s2.acquire('a')
  const idx = await s2.getIterableIndex('a')
  let served = 0
  for (const { multihash } of idx) {
    const { CID } = await import('multiformats/cid')
    const { decode } = await import('multiformats/hashes/digest')
    if (await acc.blockstore().has(CID.createV1(0x55, decode(multihash)))) served++
  }
  assert.is(served, idx.size)
  assert.is(indexer.calls, 0)
  await acc.close()
  await s2.close()
})

test.run()
