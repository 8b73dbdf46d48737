// Every reachable cell of the state table (docs/CONTRACT.md), driven through the public API of a real store
// (LevelDB in a temp dir, real CAR files). Cells no API call can reach (e.g. release on a new
// shard) are covered by tests/machine-table.test.ts.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { copyFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { carBlocks, fixture, tempDir } from './helpers/fixtures.js'
import { Gate, gatedIndexer, openStore, type GatedIndexer, recordFailures, recordTraces, result, until } from './helpers/store.js'
import type { ShardAccessor } from '../src/base/types.js'
import { at, codeOf } from './helpers/assert.js'

interface Ctx { dir: string, cleanup: () => Promise<void>, store: DAGStore, gate: Gate, indexer: GatedIndexer }
const test = suite<Ctx>('transitions')

test.before.each(async (ctx) => {
  const t = await tempDir()
  ctx.dir = t.dir
  ctx.cleanup = t.cleanup
  ctx.gate = new Gate()
  ctx.indexer = gatedIndexer(ctx.gate)
  ctx.store = (await openStore(t.dir, { shardIndexer: ctx.indexer })).store
})
test.after.each(async (ctx) => {
  ctx.gate.open()
  await ctx.store.close()
  await ctx.cleanup()
})

const sample = (): FileMount => new FileMount(fixture('sample-v1.car'))

/** A shard whose file is in the temp dir, so a test can delete it (or create it) at will. */
async function copyOfSample (dir: string, name = 'copy.car'): Promise<string> {
  const path = join(dir, name)
  await copyFile(fixture('sample-v1.car'), path)
  return path
}

/** An errored shard that recovers once its file exists. */
async function erroredShard (ctx: Ctx, key: string): Promise<string> {
  const path = join(ctx.dir, `${key}.car`)
  await ctx.store.register(key, new FileMount(path)).then(() => assert.unreachable('should fail'), () => {})
  assert.is(ctx.store.getShardInfo(key).state, 'errored')
  return path
}

// ── new ──────────────────────────────────────────────────────────────────────────────
test('new × register (lazy): stays new, result ok at once, no fetch', async (ctx) => {
  const t = recordTraces(ctx.store)
  await ctx.store.register('a', sample(), { lazy: true })
  assert.equal(ctx.store.getShardInfo('a'), { state: 'new', refs: 0 })
  assert.is(ctx.indexer.calls, 0)
  await until(() => t.traces.length === 1)
  assert.equal(t.ops(), ['register:new'])
})

test('new × register (eager): result when available; traces register, initialize, makeAvailable', async (ctx) => {
  const t = recordTraces(ctx.store)
  await ctx.store.register('a', sample())
  assert.equal(ctx.store.getShardInfo('a'), { state: 'available', refs: 0 })
  await until(() => t.traces.length === 3)
  assert.equal(t.ops(), ['register:new', 'initialize:initializing', 'makeAvailable:available'])
})

test('new: the shard is visible as new as soon as registerShard returns', (ctx) => {
  ctx.gate.close()
  ctx.store.registerShard('a', sample(), null)
  assert.equal(ctx.store.getShardInfo('a'), { state: 'new', refs: 0 })
})

test('new × acquire: parks, initializes, serves the acquirer', async (ctx) => {
  const t = recordTraces(ctx.store)
  await ctx.store.register('a', sample(), { lazy: true })
  const acc = await ctx.store.acquire('a')
  assert.equal(ctx.store.getShardInfo('a'), { state: 'serving', refs: 1 })
  await until(() => t.traces.length === 4)
  assert.equal(t.ops(), ['register:new', 'acquire:new', 'initialize:initializing', 'makeAvailable:serving'])
  await acc.close()
  assert.equal(ctx.store.getShardInfo('a'), { state: 'available', refs: 0 })
})

test('new × acquire: an acquirer that aborts does not cancel the shared initialization', async (ctx) => {
  await ctx.store.register('a', sample(), { lazy: true })
  ctx.gate.close()
  const ac = new AbortController()
  const first = result((out) => { ctx.store.acquireShard('a', out, { signal: ac.signal }) })
  const second = ctx.store.acquire('a')
  await until(() => ctx.gate.waiting === 1, 'indexing to start')
  ac.abort()
  const r = await first
  assert.is(r.error?.name, 'AbortError')
  assert.is((r.error as { code?: string }).code, 'ABORT_ERR')
  ctx.gate.open()
  const acc = await second
  assert.equal(ctx.store.getShardInfo('a'), { state: 'serving', refs: 1 })
  await acc.close()
  assert.equal(ctx.store.getShardInfo('a'), { state: 'available', refs: 0 })
})

test('new × recover: rejected with ShardNotErroredError, trace published', async (ctx) => {
  const t = recordTraces(ctx.store)
  await ctx.store.register('a', sample(), { lazy: true })
  assert.is(await codeOf(ctx.store.recover('a')), 'ERR_SHARD_NOT_ERRORED')
  assert.is(ctx.store.getShardInfo('a').state, 'new')
  await until(() => t.traces.length === 2)
  assert.equal(t.ops(), ['register:new', 'recover:new'])
})

test('new × destroy: deleted', async (ctx) => {
  await ctx.store.register('a', sample(), { lazy: true })
  await ctx.store.destroy('a')
  assert.throws(() => ctx.store.getShardInfo('a'), (e: { code: string }) => e.code === 'ERR_SHARD_UNKNOWN')
  assert.is(ctx.store.allShardsInfo().size, 0)
})

// ── initializing ─────────────────────────────────────────────────────────────────────
test('initializing × acquire: parked, then served when available', async (ctx) => {
  ctx.gate.close()
  const registered = ctx.store.register('a', sample())
  await until(() => ctx.gate.waiting === 1)
  assert.is(ctx.store.getShardInfo('a').state, 'initializing')
  const acquired = ctx.store.acquire('a')
  ctx.gate.open()
  await registered
  const acc = await acquired
  assert.equal(ctx.store.getShardInfo('a'), { state: 'serving', refs: 1 })
  await acc.close()
})

test('initializing × fail: errored; register waiter, parked acquirers and failures() get the error', async (ctx) => {
  const f = recordFailures(ctx.store)
  ctx.gate.close()
  const registered = result((out) => { ctx.store.registerShard('bad', new FileMount(fixture('junk.dat')), out) })
  await until(() => ctx.gate.waiting === 1)
  const acquired = result((out) => { ctx.store.acquireShard('bad', out) })
  ctx.gate.open()
  const r = await registered
  assert.is((r.error as { code?: string }).code, 'ERR_SHARD_INITIALIZATION_FAILED')
  assert.is(((r.error as Error).cause as { code?: string }).code, 'ERR_INVALID_CAR')
  const a = await acquired
  assert.is((a.error as { code?: string }).code, 'ERR_SHARD_ERRORED')
  assert.is(a.accessor, undefined)
  const info = ctx.store.getShardInfo('bad')
  assert.is(info.state, 'errored')
  assert.is((info.error as { code?: string }).code, 'ERR_INVALID_CAR')
  await until(() => f.failures.length === 1)
  assert.is(at(f.failures, 0).key, 'bad')
})

test('initializing × recover: rejected', async (ctx) => {
  ctx.gate.close()
  const registered = ctx.store.register('a', sample())
  await until(() => ctx.gate.waiting === 1)
  assert.is(await codeOf(ctx.store.recover('a')), 'ERR_SHARD_NOT_ERRORED')
  ctx.gate.open()
  await registered
})

/**
 * Closes the store — close() waits for every job and download, so nothing of the old store
 * can happen after it — and opens it again on the same dir: what is left is what was durable.
 */
async function restart (ctx: Ctx): Promise<void> {
  await ctx.store.close()
  ctx.store = (await openStore(ctx.dir, { shardIndexer: ctx.indexer })).store
}

/** After a restart: no record, no full index, no top-level entries left of `key`. */
async function assertGone (ctx: Ctx, key: string): Promise<void> {
  assert.throws(() => ctx.store.getShardInfo(key), (e: { code?: string }) => e.code === 'ERR_SHARD_UNKNOWN')
  assert.is(await codeOf(ctx.store.getIterableIndex(key)), 'ERR_INDEX_NOT_FOUND')
  const block = at((await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0), 0)
  assert.equal(await ctx.store.shardsContainingCid(block.cid), [])
}

test('initializing × destroy: deleted, in-flight work discarded (no trace, no index, no resurrection)', async (ctx) => {
  const t = recordTraces(ctx.store)
  ctx.gate.close()
  const registered = result((out) => { ctx.store.registerShard('a', sample(), out) })
  await until(() => ctx.gate.waiting === 1)
  const destroyed = ctx.store.destroy('a')
  const r = await registered
  assert.is((r.error as { code?: string }).code, 'ERR_SHARD_UNKNOWN')
  assert.is(at(ctx.indexer.signals, 0).aborted, true, 'the in-flight indexing was aborted')
  ctx.gate.open()
  await destroyed
  assert.throws(() => ctx.store.getShardInfo('a'))
  await restart(ctx)
  await t.ended
  assert.equal(t.ops('a'), ['register:new', 'initialize:initializing', 'destroy:initializing'])
  await assertGone(ctx, 'a')
  assert.is(ctx.indexer.calls, 1, 'indexed once: never resumed, not re-registered at the restart')
})

test('initializing × register signal aborted: fetch/index aborted, shard errored', async (ctx) => {
  ctx.gate.close()
  const ac = new AbortController()
  const registered = result((out) => { ctx.store.registerShard('a', sample(), out, { signal: ac.signal }) })
  await until(() => ctx.gate.waiting === 1)
  ac.abort()
  const r = await registered
  assert.is(r.error?.name, 'AbortError')
  await until(() => ctx.store.getShardInfo('a').state === 'errored', 'shard to fail')
})

// ── available ────────────────────────────────────────────────────────────────────────
test('available × acquire: serving, refs+1', async (ctx) => {
  await ctx.store.register('a', sample())
  const acc = await ctx.store.acquire('a')
  assert.equal(ctx.store.getShardInfo('a'), { state: 'serving', refs: 1 })
  await acc.close()
  await acc.close() // idempotent: released exactly once
  assert.equal(ctx.store.getShardInfo('a'), { state: 'available', refs: 0 })
})

test('available × fail: the local copy vanished → acquire fails, shard errored', async (ctx) => {
  const t = recordTraces(ctx.store)
  const path = await copyOfSample(ctx.dir)
  await ctx.store.register('a', new FileMount(path))
  await rm(path)
  const r = await result((out) => { ctx.store.acquireShard('a', out) })
  assert.is((r.error as { code?: string }).code, 'ERR_SHARD_ERRORED')
  await until(() => ctx.store.getShardInfo('a').state === 'errored')
  assert.is(ctx.store.getShardInfo('a').refs, 0)
  await until(() => t.traces.length === 6)
  assert.equal(t.ops().slice(3), ['acquire:serving', 'release:available', 'fail:errored'])
})

test('available × recover: rejected', async (ctx) => {
  await ctx.store.register('a', sample())
  assert.is(await codeOf(ctx.store.recover('a')), 'ERR_SHARD_NOT_ERRORED')
})

test('available × destroy: deleted', async (ctx) => {
  await ctx.store.register('a', sample())
  await ctx.store.destroy('a')
  assert.throws(() => ctx.store.getShardInfo('a'))
})

// ── serving ──────────────────────────────────────────────────────────────────────────
test('serving × acquire / release: refs count up and down; last release → available', async (ctx) => {
  await ctx.store.register('a', sample())
  const a1 = await ctx.store.acquire('a')
  const a2 = await ctx.store.acquire('a')
  assert.equal(ctx.store.getShardInfo('a'), { state: 'serving', refs: 2 })
  await a1.close()
  assert.equal(ctx.store.getShardInfo('a'), { state: 'serving', refs: 1 })
  await a2.close()
  assert.equal(ctx.store.getShardInfo('a'), { state: 'available', refs: 0 })
})

test('serving × fail: errored with refs kept; live accessor still reads; last release stays errored', async (ctx) => {
  const path = await copyOfSample(ctx.dir)
  await ctx.store.register('a', new FileMount(path))
  const held = await ctx.store.acquire('a')
  await rm(path)
  const r = await result((out) => { ctx.store.acquireShard('a', out) })
  assert.ok(r.error)
  await until(() => ctx.store.getShardInfo('a').state === 'errored')
  assert.is(ctx.store.getShardInfo('a').refs, 1)
  let bytes = 0
  for await (const chunk of held.reader()) bytes += chunk.length
  assert.is(bytes, 479907)
  await held.close()
  assert.is(ctx.store.getShardInfo('a').state, 'errored')
  assert.is(ctx.store.getShardInfo('a').refs, 0)
})

test('serving × recover: rejected', async (ctx) => {
  await ctx.store.register('a', sample())
  const acc = await ctx.store.acquire('a')
  assert.is(await codeOf(ctx.store.recover('a')), 'ERR_SHARD_NOT_ERRORED')
  await acc.close()
})

test('serving × destroy: ShardInUseError, shard untouched', async (ctx) => {
  await ctx.store.register('a', sample())
  const acc = await ctx.store.acquire('a')
  assert.is(await codeOf(ctx.store.destroy('a')), 'ERR_SHARD_IN_USE')
  assert.equal(ctx.store.getShardInfo('a'), { state: 'serving', refs: 1 })
  await acc.close()
})

// ── errored ──────────────────────────────────────────────────────────────────────────
test('errored × acquire: ShardErroredError at once', async (ctx) => {
  await erroredShard(ctx, 'e')
  assert.is(await codeOf(ctx.store.acquire('e')), 'ERR_SHARD_ERRORED')
  assert.is(ctx.store.getShardInfo('e').refs, 0)
})

test('errored × recover: recovering (error kept meanwhile) → available (error cleared); traces recover, makeAvailable', async (ctx) => {
  const path = await erroredShard(ctx, 'e')
  await copyFile(fixture('sample-v1.car'), path)
  const t = recordTraces(ctx.store)
  ctx.gate.close()
  const recovered = ctx.store.recover('e')
  await until(() => ctx.gate.waiting === 1)
  const during = ctx.store.getShardInfo('e')
  assert.is(during.state, 'recovering')
  assert.ok(during.error, 'the error being recovered from is still visible')
  ctx.gate.open()
  await recovered
  assert.equal(ctx.store.getShardInfo('e'), { state: 'available', refs: 0 })
  await until(() => t.traces.length === 2)
  assert.equal(t.ops(), ['recover:recovering', 'makeAvailable:available'])
})

test('errored × destroy: deleted when refs are 0', async (ctx) => {
  await erroredShard(ctx, 'e')
  await ctx.store.destroy('e')
  assert.throws(() => ctx.store.getShardInfo('e'))
})

test('errored × destroy with live references: ShardInUseError', async (ctx) => {
  const path = await copyOfSample(ctx.dir)
  await ctx.store.register('a', new FileMount(path))
  const held = await ctx.store.acquire('a')
  await rm(path)
  await ctx.store.acquire('a').catch(() => {})
  await until(() => ctx.store.getShardInfo('a').state === 'errored')
  assert.is(await codeOf(ctx.store.destroy('a')), 'ERR_SHARD_IN_USE')
  await held.close()
  await ctx.store.destroy('a')
})

// ── recovering ───────────────────────────────────────────────────────────────────────
async function recoveringShard (ctx: Ctx, key: string): Promise<{ recovered: Promise<void>, path: string }> {
  const path = await erroredShard(ctx, key)
  await copyFile(fixture('sample-v1.car'), path)
  ctx.gate.close()
  const recovered = ctx.store.recover(key)
  await until(() => ctx.gate.waiting === 1)
  assert.is(ctx.store.getShardInfo(key).state, 'recovering')
  return { recovered, path }
}

test('recovering × acquire: parked, served after recovery', async (ctx) => {
  const { recovered } = await recoveringShard(ctx, 'r')
  const acquired = ctx.store.acquire('r')
  ctx.gate.open()
  await recovered
  const acc: ShardAccessor = await acquired
  assert.equal(ctx.store.getShardInfo('r'), { state: 'serving', refs: 1 })
  await acc.close()
})

test('recovering × fail: errored; recover waiter and parked acquirer get the error', async (ctx) => {
  const path = await erroredShard(ctx, 'r')
  await copyFile(fixture('junk.dat'), path)
  ctx.gate.close()
  const recovered = result((out) => { ctx.store.recoverShard('r', out) })
  await until(() => ctx.gate.waiting === 1)
  const acquired = result((out) => { ctx.store.acquireShard('r', out) })
  ctx.gate.open()
  assert.is(((await recovered).error as { code?: string }).code, 'ERR_SHARD_INITIALIZATION_FAILED')
  assert.ok((await acquired).error)
  assert.is(ctx.store.getShardInfo('r').state, 'errored')
  assert.is((ctx.store.getShardInfo('r').error as { code?: string }).code, 'ERR_INVALID_CAR')
})

test('recovering × recover: rejected (one recovery at a time)', async (ctx) => {
  const { recovered } = await recoveringShard(ctx, 'r')
  assert.is(await codeOf(ctx.store.recover('r')), 'ERR_SHARD_NOT_ERRORED')
  ctx.gate.open()
  await recovered
})

test('recovering × destroy: deleted, recovery discarded', async (ctx) => {
  const t = recordTraces(ctx.store)
  const { recovered } = await recoveringShard(ctx, 'r')
  const outcome = recovered.then(() => undefined, (e: unknown) => e as { code: string })
  const destroyed = ctx.store.destroy('r')
  const err = await outcome
  assert.is(err?.code, 'ERR_SHARD_UNKNOWN')
  assert.is(ctx.indexer.signals.at(-1)?.aborted, true, 'the recovery was aborted')
  ctx.gate.open()
  await destroyed
  assert.throws(() => ctx.store.getShardInfo('r'))
  await restart(ctx)
  await t.ended
  assert.is(t.ops('r').at(-1), 'destroy:recovering')
  await assertGone(ctx, 'r')
  assert.is(ctx.indexer.calls, 1, 'the recovery indexed once, and nothing did again at the restart')
})

// ── synchronous validation ───────────────────────────────────────────────────────────
test('synchronous throws: invalid key, duplicate key, unknown key, closed store', async (ctx) => {
  const code = (fn: () => void): string | undefined => {
    try { fn() } catch (e) { return (e as { code?: string }).code }
    return undefined
  }
  assert.is(code(() => { ctx.store.registerShard('', sample()) }), 'ERR_INVALID_SHARD_KEY')
  assert.is(code(() => { ctx.store.registerShard('a\0b', sample()) }), 'ERR_INVALID_SHARD_KEY')
  assert.is(code(() => { ctx.store.registerShard('x'.repeat(1025), sample()) }), 'ERR_INVALID_SHARD_KEY')
  assert.is(code(() => { ctx.store.registerShard('\ud800', sample()) }), 'ERR_INVALID_SHARD_KEY')
  assert.is(code(() => { ctx.store.registerShard('é'.repeat(512), sample()) }), undefined) // 1024 bytes exactly
  ctx.store.registerShard('a', sample(), null, { lazy: true })
  assert.is(code(() => { ctx.store.registerShard('a', sample()) }), 'ERR_SHARD_EXISTS')
  assert.is(code(() => { ctx.store.acquireShard('nope', null) }), 'ERR_SHARD_UNKNOWN')
  assert.is(code(() => { ctx.store.getShardInfo('nope') }), 'ERR_SHARD_UNKNOWN')
  await ctx.store.close()
  assert.is(code(() => { ctx.store.acquireShard('a', null) }), 'ERR_STORE_CLOSED')
  assert.is(code(() => { ctx.store.registerShard('b', sample()) }), 'ERR_STORE_CLOSED')
})

test('stats() counts shards by state', async (ctx) => {
  await ctx.store.register('a', sample())
  await ctx.store.register('b', sample(), { lazy: true })
  await erroredShard(ctx, 'c')
  const acc = await ctx.store.acquire('a')
  assert.equal(ctx.store.stats(), { new: 1, initializing: 0, available: 0, serving: 1, recovering: 0, errored: 1 })
  await acc.close()
})

test.run()
