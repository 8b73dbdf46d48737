// The all-shards blockstore (store.blockstore()): lookups through the top-level index, the
// LRU + TTL accessor cache and its release-exactly-once bookkeeping, fallbacks.
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { copyFile, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { FileMount } from '../src/storage/mount/file.js'
import { AllShardsBlockstore, type ShardSource } from '../src/read/all-shards.js'
import { carBlocks, fixture, unknownCid } from './helpers/fixtures.js'
import { u8 } from './helpers/file-reader.js'
import { dirSuite, openStore, recordTraces, until } from './helpers/store.js'
import { at, codeOf, rejectsWith } from './helpers/assert.js'
import type { DAGStore } from '../src/engine/store.js'
import type { ReadBlockstore, ShardAccessor, Trace } from '../src/base/types.js'

const test = dirSuite('all-shards blockstore')

/** A non-identity block of sample-v1.car (every shard in these tests holds it). */
async function someBlock (): Promise<{ cid: CID, bytes: Uint8Array }> {
  const blocks = await carBlocks('sample-v1.car')
  return blocks.find((b) => b.cid.multihash.code !== 0) as { cid: CID, bytes: Uint8Array }
}

function count (traces: Trace[], op: string, key?: string): number {
  return traces.filter((t) => t.op === op && (key === undefined || t.key === key)).length
}

function refs (store: DAGStore, key: string): number {
  return store.getShardInfo(key).refs
}

async function settleTraces (): Promise<void> {
  // Traces are published after the loop's commit; give the recorder's pump a moment.
  await new Promise((resolve) => setTimeout(resolve, 30))
}

/** Registers `n` shards over the same CAR: every block is held by all of them. */
async function registerMany (store: DAGStore, n: number, car = 'sample-v1.car'): Promise<string[]> {
  const keys: string[] = []
  for (let i = 0; i < n; i++) {
    const key = `s${i}`
    await store.register(key, new FileMount(fixture(car)))
    keys.push(key)
  }
  return keys
}

test('every block of sample-v1.car served byte-identical to CarReader; identity and unknown CIDs', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('v1', new FileMount(fixture('sample-v1.car')))
  const bs = store.blockstore()
  const blocks = await carBlocks('sample-v1.car')
  assert.is(blocks.length, 1049)
  let identity = 0
  for (const { cid, bytes } of blocks) {
    if (cid.multihash.code === 0) identity++
    assert.ok(await bs.has(cid), cid.toString())
    assert.equal(u8(await bs.get(cid)), u8(bytes), cid.toString())
    assert.is(await bs.getSize(cid), bytes.length)
    // Matched by multihash: any codec.
    assert.equal(u8(await bs.get(CID.createV1(raw.code, cid.multihash))), u8(bytes))
  }
  assert.is(identity, 6)
  assert.is(await bs.has(unknownCid), false)
  assert.is(await codeOf(bs.get(unknownCid)), 'ERR_NOT_FOUND')
  assert.is(await codeOf(bs.getSize(unknownCid)), 'ERR_NOT_FOUND')
  assert.is(refs(store, 'v1'), 1, 'one cached accessor served all of them')
  await bs.close()
  assert.is(refs(store, 'v1'), 0)
  await store.close()
})

test('a CID held by two shards: select picks, sees every holder, may give up; a foreign key is a TypeError', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  await store.register('b', new FileMount(fixture('sample-wrapped-v2.car')))
  const { cid, bytes } = await someBlock()
  assert.equal((await store.shardsContainingCid(cid)).sort(), ['a', 'b'])
  const seen: string[][] = []
  const rec = recordTraces(store)
  const bs = store.blockstore({ select: (_cid, shards) => { seen.push(shards.slice().sort()); return 'b' } })
  assert.equal(u8(await bs.get(cid)), u8(bytes))
  assert.is(await bs.getSize(cid), bytes.length)
  assert.equal(seen, [['a', 'b'], ['a', 'b']])
  assert.is(refs(store, 'b'), 1)
  assert.is(refs(store, 'a'), 0, 'the shard not selected is never acquired')
  await settleTraces()
  assert.is(count(rec.traces, 'acquire', 'a'), 0)
  assert.is(count(rec.traces, 'acquire', 'b'), 1)
  await bs.close()

  const never = store.blockstore({ select: () => undefined })
  assert.is(await codeOf(never.get(cid)), 'ERR_NOT_FOUND')
  await never.close()

  const foreign = store.blockstore({ select: () => 'zzz' })
  await rejectsWith(foreign.get(cid), (e) => { assert.instance(e, TypeError) })
  await foreign.close()

  // The default prefers a cached shard, so a duplicated block does not pin a second one.
  const dflt = store.blockstore()
  await dflt.get(cid)
  const first = dflt.cachedShards()
  assert.is(first.length, 1)
  for (const b of (await carBlocks('sample-v1.car')).slice(0, 50)) await dflt.get(b.cid)
  assert.equal(dflt.cachedShards(), first)
  await dflt.close()
  await rec.stop()
  await store.close()
})

test('maxAccessors 2 with 5 shards: evictions release each accessor exactly once, refs never negative', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const keys = await registerMany(store, 5)
  const rec = recordTraces(store)
  let want = 's0'
  const bs = store.blockstore({ maxAccessors: 2, ttlMs: Number.POSITIVE_INFINITY, select: () => want })
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const order = ['s0', 's1', 's2', 's0', 's3', 's4', 's4', 's1', 's2', 's3']
  for (const [i, key] of order.entries()) {
    want = key
    const { cid, bytes } = at(blocks, i * 7)
    assert.equal(u8(await bs.get(cid)), u8(bytes))
    const cached = bs.cachedShards()
    assert.ok(cached.length <= 2)
    assert.is(cached[cached.length - 1], key, 'most recently used last')
    // An eviction's release completes in the background.
    await until(() => keys.every((k) => refs(store, k) === (cached.includes(k) ? 1 : 0)), `refs after get #${i}`)
  }
  await bs.close()
  for (const k of keys) assert.is(refs(store, k), 0)
  await settleTraces()
  for (const k of keys) {
    assert.ok(count(rec.traces, 'acquire', k) > 0, `${k} was acquired`)
    assert.is(count(rec.traces, 'release', k), count(rec.traces, 'acquire', k), `${k}: one release per acquire`)
  }
  // s0,s1,s2 (evict s0),s0 (evict s1),s3 (evict s2),s4 (evict s0),s4,s1 (evict s3),s2 (evict s4),s3 (evict s1)
  assert.is(count(rec.traces, 'acquire'), 9)
  assert.ok(rec.traces.every((t) => t.after.refs >= 0), 'refs never negative')
  await rec.stop()
  await store.close()
})

/** The real store, with each accessor's get held at a gate so a test can keep a get in flight. */
function gatedSource (store: DAGStore): { source: ShardSource, hold: () => void, open: () => void, waiting: () => number } {
  let gate: Promise<void> | undefined
  let release: (() => void) | undefined
  let waiting = 0
  const wrap = (acc: ShardAccessor): ShardAccessor => {
    const inner = acc.blockstore()
    const bs: ReadBlockstore = {
      has: async (cid) => await inner.has(cid),
      get: async (cid) => {
        if (gate !== undefined) { waiting++; await gate; waiting-- }
        return await inner.get(cid)
      },
      getSize: async (cid) => await inner.getSize(cid),
      allKeys: () => inner.allKeys()
    }
    return {
      key: acc.key,
      blockstore: () => bs,
      reader: () => acc.reader(),
      close: async () => { await acc.close() },
      [Symbol.asyncDispose]: async () => { await acc.close() }
    }
  }
  const source: ShardSource = {
    shardsContainingCid: async (cid) => await store.shardsContainingCid(cid),
    acquire: async (key) => wrap(await store.acquire(key)),
    getShardInfo: (key) => store.getShardInfo(key),
    allShardsInfo: () => store.allShardsInfo()
  }
  return {
    source,
    hold: () => { gate = new Promise((resolve) => { release = resolve }) },
    open: () => { release?.(); gate = undefined },
    waiting: () => waiting
  }
}

test('an accessor evicted while a get uses it is released after that get, exactly once', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const keys = await registerMany(store, 3)
  const rec = recordTraces(store)
  const g = gatedSource(store)
  let want = 's0'
  const bs = new AllShardsBlockstore(g.source, { maxAccessors: 1, select: () => want })
  const { cid, bytes } = await someBlock()
  g.hold()
  const slow = bs.get(cid)
  await until(() => g.waiting() === 1, 'the get on s0 to reach the gate')
  g.open()
  want = 's1'
  const s1 = bs.get(cid) // evicts s0 while its get is still running
  assert.equal(u8(await slow), u8(bytes))
  assert.equal(u8(await s1), u8(bytes))
  await until(() => refs(store, 's0') === 0, 's0 released after its get')
  assert.is(refs(store, 's1'), 1)

  // Evicted mid-get, with the get held: the accessor stays acquired until the get ends.
  want = 's1'
  g.hold()
  const held = bs.get(cid)
  await until(() => g.waiting() === 1, 'the get on s1 to reach the gate')
  want = 's2'
  const next = bs.get(cid)
  await until(() => g.waiting() === 2 && bs.cachedShards().join() === 's2', 's1 evicted')
  assert.is(refs(store, 's1'), 1, 'not released while in use')
  g.open()
  await held
  await next
  await until(() => refs(store, 's1') === 0, 's1 released once its get finished')
  await bs.close()
  await settleTraces()
  for (const k of keys) assert.is(count(rec.traces, 'release', k), count(rec.traces, 'acquire', k), k)
  assert.ok(rec.traces.every((t) => t.after.refs >= 0))
  await rec.stop()
  await store.close()
})

test('TTL expiry releases idle accessors; a used one is kept', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await registerMany(store, 2)
  const rec = recordTraces(store)
  let want = 's0'
  const bs = store.blockstore({ ttlMs: 60, select: () => want })
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  await bs.get(at(blocks, 0).cid)
  want = 's1'
  await bs.get(at(blocks, 1).cid)
  assert.is(refs(store, 's0'), 1)
  assert.is(refs(store, 's1'), 1)
  // Keep s1 busy past s0's expiry.
  const started = Date.now()
  while (Date.now() - started < 150) {
    await bs.get(at(blocks, 2).cid)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await until(() => refs(store, 's0') === 0, 's0 to expire', 2000)
  assert.is(refs(store, 's1'), 1, 'still in use, not expired')
  assert.equal(bs.cachedShards(), ['s1'])
  await until(() => refs(store, 's1') === 0, 's1 to expire once idle', 2000)
  assert.equal(bs.cachedShards(), [])
  await settleTraces()
  assert.is(count(rec.traces, 'release', 's0'), 1)
  assert.is(count(rec.traces, 'release', 's1'), 1)
  // Expired entries are simply acquired again.
  await bs.get(at(blocks, 3).cid)
  assert.is(refs(store, 's1'), 1)
  await bs.close()
  assert.is(refs(store, 's1'), 0)
  await rec.stop()
  await store.close()
})

test('ttlMs 0 releases after every get', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  const bs = store.blockstore({ ttlMs: 0 })
  const { cid } = await someBlock()
  await bs.get(cid)
  await until(() => refs(store, 'a') === 0, 'release')
  assert.equal(bs.cachedShards(), [])
  await bs.close()
  await store.close()
})

test('the expiry timer never keeps the process alive', async (ctx) => {
  // A child that uses a blockstore with a one-hour TTL and never closes it must still exit.
  const index = fileURLToPath(new URL('../src/index.js', import.meta.url))
  const script = join(ctx.dir, 'child.mjs')
  const { cid } = await someBlock()
  await writeFile(script, `
    import { DAGStore, FileMount } from ${JSON.stringify(index)}
    import { CID } from ${JSON.stringify(import.meta.resolve('multiformats/cid'))}
    const store = new DAGStore({ dir: ${JSON.stringify(join(ctx.dir, 'store'))} })
    await store.start()
    await store.register('a', new FileMount(${JSON.stringify(fixture('sample-v1.car'))}))
    const bs = store.blockstore({ ttlMs: 3_600_000 })
    const bytes = await bs.get(CID.parse(${JSON.stringify(cid.toString())}))
    await store.close()
    console.log('got ' + String(bytes.length))
  `)
  const started = Date.now()
  const child = spawn(process.execPath, [script], { cwd: fileURLToPath(new URL('../../', import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => { child.kill(); resolve(-1) }, 20_000)
    child.on('close', (c) => { clearTimeout(t); resolve(c) })
  })
  assert.is(code, 0, out)
  assert.ok(/got \d+/.test(out), out)
  assert.ok(Date.now() - started < 20_000)
})

test('100 concurrent gets in one uncached shard acquire it once', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  const rec = recordTraces(store)
  const bs = store.blockstore()
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0).slice(0, 100)
  const got = await Promise.all(blocks.map(async (b) => await bs.get(b.cid)))
  for (const [i, b] of blocks.entries()) assert.equal(u8(at(got, i)), u8(b.bytes))
  await settleTraces()
  assert.is(count(rec.traces, 'acquire', 'a'), 1)
  assert.is(refs(store, 'a'), 1)
  await bs.close()
  await settleTraces()
  assert.is(count(rec.traces, 'release', 'a'), 1)
  await rec.stop()
  await store.close()
})

test('close() releases every accessor (also one in use), is idempotent, and later calls reject', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const keys = await registerMany(store, 4)
  const g = gatedSource(store)
  let want = 's0'
  const bs = new AllShardsBlockstore(g.source, { select: () => want })
  const { cid, bytes } = await someBlock()
  for (const k of keys) { want = k; await bs.get(cid) }
  for (const k of keys) assert.is(refs(store, k), 1)
  want = 's0'
  g.hold()
  const inFlight = bs.get(cid)
  await until(() => g.waiting() === 1, 'a get in flight')
  const closing = bs.close()
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.is(refs(store, 's0'), 1, 'the accessor in use is not closed under its get')
  assert.is(refs(store, 's1'), 0)
  g.open()
  assert.equal(u8(await inFlight), u8(bytes))
  await closing
  for (const k of keys) assert.is(refs(store, k), 0)
  await bs.close()
  assert.is(await codeOf(bs.get(cid)), 'ERR_BLOCKSTORE_CLOSED')
  assert.is(await codeOf(bs.has(cid)), 'ERR_BLOCKSTORE_CLOSED')
  assert.is(await codeOf(bs.getSize(cid)), 'ERR_BLOCKSTORE_CLOSED')
  await rejectsWith((async () => { for await (const _ of bs.allKeys()) break })(), (e) => { assert.is(e.code, 'ERR_BLOCKSTORE_CLOSED') })
  for (const k of keys) assert.is(refs(store, k), 0)
  await store.close()
})

test('a shard whose bytes fail while cached is dropped and the others serve; destroyed shards fall back, then NotFound', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const copy = join(ctx.dir, 'copy.car')
  await copyFile(fixture('sample-v1.car'), copy)
  await store.register('a', new FileMount(copy))
  await store.register('b', new FileMount(fixture('sample-v1.car')))
  const prefer = (_c: CID, shards: string[]): string | undefined => shards.includes('a') ? 'a' : shards[0]
  const bs = store.blockstore({ select: prefer })
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  assert.equal(u8(await bs.get(at(blocks, 0).cid)), u8(at(blocks, 0).bytes))
  assert.equal(bs.cachedShards(), ['a'])
  // The cached reader's bytes vanish behind the store's back.
  await truncate(copy, 0)
  assert.equal(u8(await bs.get(at(blocks, 1).cid)), u8(at(blocks, 1).bytes))
  await until(() => refs(store, 'a') === 0, 'the failing accessor to be released')
  assert.equal(bs.cachedShards(), ['b'])
  // Now 'a' (not in use) can be destroyed; its blocks come from 'b'.
  await store.destroy('a')
  assert.equal(await store.shardsContainingCid(at(blocks, 2).cid), ['b'])
  assert.equal(u8(await bs.get(at(blocks, 2).cid)), u8(at(blocks, 2).bytes))
  // A cached shard is in use: evict it, then destroy; nothing is left to serve the block.
  assert.is(await codeOf(store.destroy('b')), 'ERR_SHARD_IN_USE')
  await bs.evict('b')
  assert.is(refs(store, 'b'), 0)
  await store.destroy('b')
  assert.is(await bs.has(at(blocks, 3).cid), false)
  assert.is(await codeOf(bs.get(at(blocks, 3).cid)), 'ERR_NOT_FOUND')
  await bs.close()
  await store.close()
})

test('default selection: cached shards answer without a top-level lookup; one that fails is dropped for another holder', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const copy = join(ctx.dir, 'copy.car')
  await copyFile(fixture('sample-v1.car'), copy)
  await store.register('a', new FileMount(copy))
  await store.register('b', new FileMount(fixture('sample-v1.car')))
  let lookups = 0
  const source: ShardSource = {
    shardsContainingCid: async (cid) => { lookups++; return await store.shardsContainingCid(cid) },
    acquire: async (key) => await store.acquire(key),
    getShardInfo: (key) => store.getShardInfo(key),
    allShardsInfo: () => store.allShardsInfo(),
    getIterableIndex: async (key) => await store.getIterableIndex(key)
  }
  const bs = new AllShardsBlockstore(source)
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  assert.equal(u8(await bs.get(at(blocks, 0).cid)), u8(at(blocks, 0).bytes))
  assert.is(lookups, 1)
  const [first] = bs.cachedShards()
  for (const b of blocks.slice(1, 20)) {
    assert.ok(await bs.has(b.cid))
    assert.equal(u8(await bs.get(b.cid)), u8(b.bytes))
    assert.is(await bs.getSize(b.cid), b.bytes.length)
  }
  assert.is(lookups, 1, 'served from the cached shard\'s index')
  assert.is(await bs.has(unknownCid), false)
  assert.is(lookups, 2, 'a block no cached shard holds is looked up')
  assert.is(first, 'a')
  await truncate(copy, 0)
  assert.equal(u8(await bs.get(at(blocks, 30).cid)), u8(at(blocks, 30).bytes))
  await until(() => refs(store, 'a') === 0, 'the failing accessor to be released')
  assert.equal(bs.cachedShards(), ['b'])
  assert.is(lookups, 3)
  await bs.close()
  assert.is(refs(store, 'b'), 0)
  await store.close()
})

test('a stale top-level answer naming a destroyed shard falls back to the next holder; failures are the cause', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('b', new FileMount(fixture('sample-v1.car')))
  const source: ShardSource = {
    shardsContainingCid: async (cid) => ['gone', ...await store.shardsContainingCid(cid)],
    acquire: async (key) => await store.acquire(key),
    getShardInfo: (key) => store.getShardInfo(key),
    allShardsInfo: () => store.allShardsInfo()
  }
  const { cid, bytes } = await someBlock()
  const tried: string[] = []
  const bs = new AllShardsBlockstore(source, { select: (_c, shards) => { tried.push(at(shards, 0)); return shards[0] } })
  assert.equal(u8(await bs.get(cid)), u8(bytes))
  assert.equal(tried, ['gone', 'b'])
  await bs.close()
  // Only the destroyed shard: NotFound, with the acquire's error as its cause.
  const onlyGone: ShardSource = { ...source, shardsContainingCid: async () => ['gone'] }
  const bs2 = new AllShardsBlockstore(onlyGone)
  await rejectsWith(bs2.get(cid), (e) => {
    assert.is(e.code, 'ERR_NOT_FOUND')
    assert.is(e.cause?.code, 'ERR_SHARD_UNKNOWN')
  })
  await bs2.close()
  await store.close()
})

test('a closed store: gets reject with StoreClosedError, not NotFound', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  const bs = store.blockstore()
  const { cid } = await someBlock()
  await bs.get(cid)
  await store.close()
  assert.is(await codeOf(bs.get(cid)), 'ERR_STORE_CLOSED')
  await bs.close()
})

test('allKeys yields every shard\'s keys (duplicates repeat), skips errored shards, holds nothing after', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  await store.register('b', new FileMount(fixture('sample-wrapped-v2.car')))
  await store.register('bad', new FileMount(fixture('sample-corrupt-pragma.car'))).catch(() => {})
  assert.is(store.getShardInfo('bad').state, 'errored')
  const bs = store.blockstore()
  const { cid } = await someBlock()
  await bs.get(cid) // one shard cached, the other not
  const expected = (await carBlocks('sample-v1.car')).map((b) => b.cid.toString())
  const keys: string[] = []
  for await (const k of bs.allKeys()) keys.push(k.toString())
  assert.equal(keys, [...expected, ...expected])
  const cached = bs.cachedShards()
  assert.is(cached.length, 1)
  for (const k of ['a', 'b']) assert.is(refs(store, k), cached.includes(k) ? 1 : 0)
  // Stopping early releases what the listing acquired.
  for await (const _ of bs.allKeys()) break
  await bs.evict(at(cached, 0))
  for await (const _ of bs.allKeys()) break
  for (const k of ['a', 'b']) assert.is(refs(store, k), 0)
  // A listing paused by its consumer does not hold up close(), which releases it.
  const it = bs.allKeys()[Symbol.asyncIterator]()
  await it.next()
  assert.is(refs(store, 'a'), 1)
  await bs.close()
  assert.is(refs(store, 'a'), 0)
  assert.is(await codeOf(it.next()), 'ERR_BLOCKSTORE_CLOSED')
  for (const k of ['a', 'b']) assert.is(refs(store, k), 0)
  await store.close()
})

test('option validation', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  assert.throws(() => store.blockstore({ maxAccessors: 0 }), RangeError)
  assert.throws(() => store.blockstore({ ttlMs: -1 }), RangeError)
  assert.throws(() => store.blockstore({ select: 3 as unknown as () => undefined }), TypeError)
  await store.close()
})

test.run()
