// One regression test per Go dagstore defect listed in docs/CONTRACT.md.
import * as assert from 'uvu/assert'
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CarReader } from '@ipld/car'
import { readFile } from 'node:fs/promises'
import { FileMount } from '../src/storage/mount/file.js'
import { StreamMount } from './helpers/stream-mount.js'
import { fixture } from './helpers/fixtures.js'
import { Gate, gatedIndexer, openStore, recordTraces, result, until, dirSuite } from './helpers/store.js'
import { at } from './helpers/assert.js'

const test = dirSuite('Go dagstore defects')

const exists = async (p: string): Promise<boolean> => await stat(p).then(() => true, () => false)

test('recovering is never stuck after a restart', async (ctx) => {
  const path = join(ctx.dir, 'late.car')
  const gate = new Gate()
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, shardIndexer: gatedIndexer(gate) })).store
  await s1.register('k', new FileMount(path)).catch(() => {})
  await copyFile(fixture('sample-v1.car'), path)
  gate.close()
  const pending = s1.recover('k').catch(() => {})
  await until(() => gate.waiting === 1)
  await s1.close()
  await pending
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, recoverOnStart: 'on-acquire' })).store
  // An acquirer must not park forever: it triggers the recovery and is served.
  const acc = await s2.acquire('k')
  await acc.close()
  await s2.close()
})

test('an errored shard does not flip to available on its last release', async (ctx) => {
  const path = join(ctx.dir, 'x.car')
  await copyFile(fixture('sample-v1.car'), path)
  const { store } = await openStore(ctx.dir)
  await store.register('k', new FileMount(path))
  const a = await store.acquire('k')
  const b = await store.acquire('k')
  await rm(path)
  await store.acquire('k').catch(() => {})
  await until(() => store.getShardInfo('k').state === 'errored')
  await a.close()
  await b.close()
  assert.is(store.getShardInfo('k').state, 'errored')
  assert.is(store.getShardInfo('k').refs, 0)
  await store.close()
})

test('destroy removes index, transient and top-level entries, and the shard never comes back', async (ctx) => {
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  await s1.register('remote', new StreamMount(fixture('sample-v1.car')))
  const reader = await CarReader.fromBytes(await readFile(fixture('sample-v1.car')))
  const root = at(await reader.getRoots(), 0)
  assert.equal(await s1.shardsContainingCid(root), ['remote'])
  const tdir = join(ctx.dir, 'transients')
  assert.is((await readdir(tdir)).length, 1)
  await s1.destroy('remote')
  assert.equal(await s1.shardsContainingCid(root), [])
  assert.equal(await readdir(tdir), [])
  assert.is((await ctx.indexRepo.stat('remote')).exists, false)
  await s1.close()
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  assert.is(s2.allShardsInfo().size, 0)
  await s2.close()
})

test('user files outside the transients dir are never deleted (existingTransient, destroy, gc, recover)', async (ctx) => {
  const userDir = join(ctx.dir, 'user')
  await mkdir(userDir)
  const userCopy = join(userDir, 'mine.car')
  await copyFile(fixture('sample-v1.car'), userCopy)
  const { store } = await openStore(ctx.dir)
  const mount = new StreamMount(fixture('sample-v1.car'))
  await store.register('k', mount, { existingTransient: userCopy })
  assert.is(mount.fetchCount, 0, 'the existing transient was adopted, not fetched')
  const acc = await store.acquire('k')
  await acc.close()
  const gc = await store.gc()
  assert.is(gc.shards.get('k'), null)
  assert.ok(await exists(userCopy))
  await store.destroy('k')
  assert.ok(await exists(userCopy))
  await store.close()
})

test('file mount URLs round-trip (spaces, #, %, unicode) across a restart', async (ctx) => {
  const odd = join(ctx.dir, 'a dir #1 %41', 'ünï cödé.car')
  await mkdir(join(ctx.dir, 'a dir #1 %41'))
  await copyFile(fixture('sample-v1.car'), odd)
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  await s1.register('k', new FileMount(odd), { lazy: true })
  await s1.close()
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  const acc = await s2.acquire('k')
  let n = 0
  for await (const chunk of acc.reader()) n += chunk.length
  assert.is(n, 479907)
  await acc.close()
  await s2.close()
})

test('observers never block the store: an unread traces()/failures() subscriber, a throwing callback', async (ctx) => {
  const { store, reported } = await openStore(ctx.dir, { eventBufferSize: 16 })
  const idleTraces = store.traces()
  const idleFailures = store.failures()
  await store.register('k', new FileMount(fixture('sample-v1.car')))
  // Far more ops than the buffer holds, with nobody reading.
  for (let i = 0; i < 200; i++) {
    const acc = await store.acquire('k')
    await acc.close()
  }
  store.registerShard('cb', new FileMount(fixture('sample-v1.car')), () => { throw new Error('consumer bug') }, { lazy: true })
  await until(() => reported.length === 1, 'the throwing callback to be reported')
  assert.match(String(at(reported, 0).context), /callback/)
  const acc = await store.acquire('cb')
  await acc.close()
  // The idle subscriber learns it lagged instead of silently missing events.
  await idleTraces.next().then(() => assert.unreachable('should lag'), (e: { code: string }) => { assert.is(e.code, 'ERR_SUBSCRIPTION_LAGGED') })
  await idleFailures.return?.()
  await store.close()
})

test('startup does no per-shard heavy work (no mount instantiation, fetch or index)', async (ctx) => {
  const s1 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo })).store
  for (let i = 0; i < 50; i++) await s1.register(`s${i}`, new StreamMount(fixture('sample-v1.car')), { lazy: i % 2 === 0 })
  await s1.close()
  let instantiated = 0
  const indexer = gatedIndexer(new Gate())
  const stream = { onInstantiate: () => { instantiated++ } }
  const s2 = (await openStore(ctx.dir, { indexRepo: ctx.indexRepo, shardIndexer: indexer, stream })).store
  assert.is(s2.allShardsInfo().size, 50)
  assert.is(instantiated, 0)
  assert.is(indexer.calls, 0)
  await s2.close()
})

test('top-level index: one entry per (multihash, shard), no growth on re-index, nothing left after destroy', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const reader = await CarReader.fromBytes(await readFile(fixture('sample-v1.car')))
  const root = at(await reader.getRoots(), 0)
  const path = join(ctx.dir, 'x.car')
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  await store.register('b', new FileMount(path)).catch(() => {})
  await copyFile(fixture('sample-v1.car'), path)
  await store.recover('b')
  // Recovering and re-indexing again must not duplicate entries.
  await rm(path)
  await store.acquire('b').catch(() => {})
  await until(() => store.getShardInfo('b').state === 'errored')
  await copyFile(fixture('sample-v1.car'), path)
  await store.recover('b')
  assert.equal((await store.shardsContainingCid(root)).sort(), ['a', 'b'])
  await store.destroy('a')
  assert.equal(await store.shardsContainingCid(root), ['b'])
  await store.destroy('b')
  assert.equal(await store.shardsContainingCid(root), [])
  await store.close()
})

test('refcounts do not leak when a caller gives up', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('k', new FileMount(fixture('sample-v1.car')))
  const t = recordTraces(store)
  const count = (op: string): number => t.traces.filter((x) => x.op === op).length
  for (let i = 0; i < 50; i++) {
    const ac = new AbortController()
    const r = result((out) => { store.acquireShard('k', out, { signal: ac.signal }) })
    // Abort at different points: before the loop sees it, and while the accessor is opening.
    if (i % 2 === 0) ac.abort()
    else setImmediate(() => { ac.abort() })
    const got = await r
    if (got.accessor !== undefined) await got.accessor.close()
    else assert.is(got.error?.name, 'AbortError')
  }
  await until(() => count('acquire') === 50 && count('release') === 50, 'every acquire to be released')
  assert.equal(store.getShardInfo('k'), { state: 'available', refs: 0 })
  // A null result callback releases what it would have been handed.
  store.acquireShard('k', null)
  await until(() => count('acquire') === 51 && count('release') === 51, 'the unwanted accessor to be released')
  assert.equal(store.getShardInfo('k'), { state: 'available', refs: 0 })
  await store.close()
})

test.run()
