// Serving blocks through the store, corrupt input, concurrency, aborts, GC, events.
import * as assert from 'uvu/assert'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CarReader } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import * as raw from 'multiformats/codecs/raw'
import { FileMount } from '../src/storage/mount/file.js'
import { BytesMount } from '../src/storage/mount/bytes.js'
import { recoverImmediately } from '../src/engine/recover.js'
import { StreamMount } from './helpers/stream-mount.js'
import { fixture } from './helpers/fixtures.js'
import { Gate, gatedIndexer, openStore, recordFailures, recordTraces, result, until, dirSuite } from './helpers/store.js'
import type { DAGStore } from '../src/engine/store.js'
import type { MountReader } from '../src/base/mount-types.js'
import { at } from './helpers/assert.js'

const test = dirSuite('serving')

/** Plain bytes: uvu's equal tells a Buffer from a Uint8Array with the same content. */
const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b)

async function expectBlocks (store: DAGStore, key: string, car: string): Promise<number> {
  const reader = await CarReader.fromBytes(await readFile(fixture(car)))
  const acc = await store.acquire(key)
  const bs = acc.blockstore()
  let n = 0
  const order: string[] = []
  for await (const block of reader.blocks()) {
    assert.ok(await bs.has(block.cid), `has ${block.cid}`)
    assert.equal(u8(await bs.get(block.cid)), u8(block.bytes), `bytes of ${block.cid}`)
    assert.is(await bs.getSize(block.cid), block.bytes.length)
    // Any codec with the same multihash matches.
    const asRaw = CID.createV1(raw.code, block.cid.multihash)
    assert.equal(u8(await bs.get(asRaw)), u8(block.bytes))
    order.push(block.cid.toString())
    n++
  }
  const keys: string[] = []
  for await (const cid of bs.allKeys()) keys.push(cid.toString())
  assert.equal(keys, order, 'allKeys in CAR order')
  await acc.close()
  return n
}

test('every block of sample-v1.car and sample-wrapped-v2.car served byte-identical to CarReader', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('v1', new FileMount(fixture('sample-v1.car')))
  await store.register('v2', new FileMount(fixture('sample-wrapped-v2.car')))
  await store.register('v2-noindex', new FileMount(fixture('sample-v2-indexless.car')))
  await store.register('zero-len', new FileMount(fixture('sample-v1-with-zero-len-section.car')))
  await store.register('remote', new StreamMount(fixture('sample-wrapped-v2.car')))
  const n = await expectBlocks(store, 'v1', 'sample-v1.car')
  assert.ok(n > 1000)
  assert.is(await expectBlocks(store, 'v2', 'sample-wrapped-v2.car'), n)
  assert.is(await expectBlocks(store, 'v2-noindex', 'sample-v2-indexless.car'), n)
  assert.is(await expectBlocks(store, 'remote', 'sample-wrapped-v2.car'), n)
  // Identity CIDs are served from the CID and never indexed (as go-car does): 6 in this file.
  const idx = await store.getIterableIndex('v1')
  assert.is(idx.size, n - 6)
  await store.close()
})

test('unknown CIDs: has false, get/getSize BlockNotFoundError; identity CIDs served from the CID', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('v1', new FileMount(fixture('sample-v1.car')))
  const acc = await store.acquire('v1')
  const bs = acc.blockstore()
  const missing = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
  assert.is(await bs.has(missing), false)
  await bs.get(missing).then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_NOT_FOUND') })
  await bs.getSize(missing).then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_NOT_FOUND') })
  const inline = CID.createV1(raw.code, identity.digest(new TextEncoder().encode('hello')))
  assert.is(await bs.has(inline), true)
  assert.equal(await bs.get(inline), new TextEncoder().encode('hello'))
  await acc.close()
  await store.close()
})

test('corrupt input (junk.dat, corrupt pragma) fails its shard with ERR_INVALID_CAR naming the byte offset; others keep serving', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('good', new FileMount(fixture('sample-v1.car')))
  const held = await store.acquire('good')
  for (const name of ['junk.dat', 'sample-corrupt-pragma.car']) {
    const r = await result((out) => { store.registerShard(name, new FileMount(fixture(name)), out) })
    const cause = (r.error as Error).cause as { code?: string, message: string }
    assert.is(cause.code, 'ERR_INVALID_CAR', name)
    assert.match(cause.message, /byte|offset/i, `${name}: ${cause.message}`)
    assert.is(store.getShardInfo(name).state, 'errored')
  }
  const reader = await CarReader.fromBytes(await readFile(fixture('sample-v1.car')))
  const root = at(await reader.getRoots(), 0)
  assert.ok(await held.blockstore().has(root))
  await held.close()
  await store.close()
})

test('256 concurrent acquires of one shard: all served, refs 256, all released', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('k', new FileMount(fixture('sample-v1.car')))
  const accs = await Promise.all(Array.from({ length: 256 }, async () => await store.acquire('k')))
  assert.equal(store.getShardInfo('k'), { state: 'serving', refs: 256 })
  const reader = await CarReader.fromBytes(await readFile(fixture('sample-v1.car')))
  const root = at(await reader.getRoots(), 0)
  const blocks = await Promise.all(accs.map(async (a) => await a.blockstore().get(root)))
  for (const b of blocks) assert.equal(b, blocks[0])
  await Promise.all(accs.map(async (a) => { await a.close() }))
  assert.equal(store.getShardInfo('k'), { state: 'available', refs: 0 })
  await store.close()
})

test('16 concurrent acquires of a lazy shard behind a sequential-only mount: exactly one fetch', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const mount = new StreamMount(fixture('sample-v1.car'), { chunkSize: 16 * 1024, delayMs: 1 })
  await store.register('lazy', mount, { lazy: true })
  const accs = await Promise.all(Array.from({ length: 16 }, async () => await store.acquire('lazy')))
  assert.is(mount.fetchCount, 1)
  assert.equal(store.getShardInfo('lazy'), { state: 'serving', refs: 16 })
  let bytes = 0
  for await (const chunk of at(accs, 5).reader()) bytes += chunk.length
  assert.is(bytes, 479907)
  await Promise.all(accs.map(async (a) => { await a.close() }))
  await store.close()
})

test('BytesMount shards serve and survive a restart (the bytes live in the URL)', async (ctx) => {
  const bytes = await readFile(fixture('sample-v1.car'))
  const s1 = (await openStore(ctx.dir)).store
  await s1.register('b', new BytesMount(bytes), { lazy: true })
  await s1.close()
  const s2 = (await openStore(ctx.dir)).store
  assert.is(await expectBlocks(s2, 'b', 'sample-v1.car') > 0, true)
  await s2.close()
})

test('close() with pending work: every pending result is StoreClosedError; close is idempotent', async (ctx) => {
  const gate = new Gate()
  gate.close()
  const { store } = await openStore(ctx.dir, { shardIndexer: gatedIndexer(gate) })
  const reg = result((out) => { store.registerShard('a', new FileMount(fixture('sample-v1.car')), out) })
  const acq = result((out) => { store.acquireShard('a', out) })
  await until(() => gate.waiting === 1)
  await Promise.all([store.close(), store.close()])
  assert.is(((await reg).error as { code?: string }).code, 'ERR_STORE_CLOSED')
  assert.is(((await acq).error as { code?: string }).code, 'ERR_STORE_CLOSED')
  await store.close()
})

test('gc() reclaims transients of idle shards only; a reclaimed shard is re-fetched on acquire', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const idle = new StreamMount(fixture('sample-v1.car'))
  const busy = new StreamMount(fixture('sample-v1.car'))
  await store.register('idle', idle)
  await store.register('busy', busy)
  await store.register('local', new FileMount(fixture('sample-v1.car')))
  const held = await store.acquire('busy')
  const tdir = join(ctx.dir, 'transients')
  assert.is((await readdir(tdir)).length, 2)
  const size = (await stat(fixture('sample-v1.car'))).size
  const res = await store.gc()
  assert.is(res.reclaimedBytes, size)
  assert.equal([...res.shards.keys()].sort(), ['idle', 'local'])
  assert.is(res.shards.get('idle'), null)
  assert.is((await readdir(tdir)).length, 1, 'the acquired shard keeps its transient')
  const acc = await store.acquire('idle')
  assert.is(idle.fetchCount, 2)
  await acc.close()
  await held.close()
  await store.close()
})

test('gc graceMs: a shard released moments ago is kept', async (ctx) => {
  const { store } = await openStore(ctx.dir, { gc: { graceMs: 60_000 } })
  await store.register('r', new StreamMount(fixture('sample-v1.car')))
  const acc = await store.acquire('r')
  await acc.close()
  const res = await store.gc()
  assert.is(res.shards.has('r'), false)
  assert.is(res.reclaimedBytes, 0)
  await store.close()
})

/** A FileMount that counts the readers it has handed out. */
class CountingFileMount extends FileMount {
  fetched = 0

  override async fetch (signal?: AbortSignal): Promise<MountReader> {
    const reader = await super.fetch(signal)
    this.fetched++
    return reader
  }
}

test('maxConcurrentIndex bounds concurrent indexing', async (ctx) => {
  const gate = new Gate()
  gate.close()
  const indexer = gatedIndexer(gate)
  const { store } = await openStore(ctx.dir, { shardIndexer: indexer, maxConcurrentIndex: 2 })
  const mounts = Array.from({ length: 6 }, () => new CountingFileMount(fixture('sample-v1.car')))
  const regs = mounts.map(async (mount, i) => { await store.register(`s${i}`, mount) })
  // A job asks for an indexing slot as soon as it has its shard's reader (no I/O in between),
  // so once all six have theirs, all six have asked.
  await until(() => mounts.every((m) => m.fetched === 1), 'every shard fetched')
  assert.is(indexer.calls, 2, 'two indexing, four waiting for a slot')
  assert.is(gate.waiting, 2)
  assert.is(store.stats().initializing, 6)
  gate.open()
  await Promise.all(regs)
  assert.is(store.stats().available, 6)
  assert.is(indexer.calls, 6)
  assert.is(indexer.mostActive, 2, 'never more than two at once')
  await store.close()
})

test('maxConcurrentReadyFetches bounds downloads of ready mounts; not-ready mounts bypass it', async (ctx) => {
  const { store } = await openStore(ctx.dir, { maxConcurrentReadyFetches: 1 })
  const size = (await stat(fixture('sample-v1.car'))).size
  let active = 0
  let most = 0
  // Counts downloads between their first and last chunk.
  const onChunk = (served: number, chunk: Uint8Array): void => {
    if (served === 0) most = Math.max(most, ++active)
    if (served + chunk.length === size) active--
  }
  const ready = Array.from({ length: 4 }, () => new StreamMount(fixture('sample-v1.car'), { chunkSize: 64 * 1024, delayMs: 2, onChunk }))
  await Promise.all(ready.map(async (m, i) => { await store.register(`ready${i}`, m) }))
  assert.is(most, 1, 'ready mounts were fetched one at a time')
  most = 0
  const notReady = Array.from({ length: 3 },
    () => new StreamMount(fixture('sample-v1.car'), { chunkSize: 64 * 1024, delayMs: 5, ready: false, onChunk }))
  await Promise.all(notReady.map(async (m, i) => { await store.register(`slow${i}`, m) }))
  assert.ok(most > 1, `not-ready mounts skip the throttle (max concurrent ${most})`)
  await store.close()
})

test('a signal already aborted at call time: exactly one AbortError, delivered after the call returns', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  const t = recordTraces(store)
  const ac = new AbortController()
  ac.abort()
  const results: string[] = []
  store.acquireShard('a', (r) => {
    results.push(r.error?.name ?? 'accessor')
    // Released at once should one arrive, so a wrong delivery shows in `results`, not as a held shard.
    r.accessor?.close().catch(() => {})
  }, { signal: ac.signal })
  assert.equal(results, [], 'nothing delivered inside the call')
  await until(() => results.length === 1)
  // The acquire still runs to its end: a reference is taken, and the accessor nobody may have released.
  await until(() => t.ops('a').includes('release:available'), 'the undelivered accessor released')
  assert.is(store.getShardInfo('a').refs, 0)
  // close() waits for every job: whatever this acquire could still deliver, it has by now.
  await store.close()
  await t.ended
  assert.equal(results, ['AbortError'])
  assert.equal(t.ops('a'), ['acquire:serving', 'release:available'])
})

/** `source`, counting the items asked of it: a consumer asks for the next once done with the last. */
function counted<T> (source: AsyncIterable<T>): AsyncIterable<T> & { asked: number } {
  const it = source[Symbol.asyncIterator]()
  const out = {
    asked: 0,
    [Symbol.asyncIterator]: (): AsyncIterator<T> => ({
      next: async () => { out.asked++; return await it.next() },
      return: async () => await it.return?.() ?? { done: true, value: undefined }
    })
  }
  return out
}

test('recoverImmediately recovers failed shards, at most maxAttempts times in a row', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  const failures = recordFailures(store)
  const traces = recordTraces(store)
  const ac = new AbortController()
  const seen = counted(store.failures({ signal: ac.signal }))
  const running = recoverImmediately(store, seen, 2, { signal: ac.signal })
  await store.register('junk', new FileMount(fixture('junk.dat'))).catch(() => {})
  // 1 initial failure + 2 recoveries that fail again; then it stops trying.
  await until(() => failures.failures.length === 3, 'two recovery attempts')
  // Asking for a 4th failure means it has acted on the 3rd: a recovery would be submitted by now.
  await until(() => seen.asked === 4, 'the third failure handled')
  assert.is(store.getShardInfo('junk').state, 'errored')
  ac.abort()
  await running
  await store.close()
  await traces.ended
  assert.is(failures.failures.length, 3)
  assert.equal(traces.ops('junk').filter((op) => op.startsWith('recover:')), ['recover:recovering', 'recover:recovering'])
})

test('shardsContainingCid / Multihash find shards via the top-level index; [] when none', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  await store.register('b', new FileMount(fixture('sample-wrapped-v2.car')))
  const reader = await CarReader.fromBytes(await readFile(fixture('sample-v1.car')))
  const root = at(await reader.getRoots(), 0)
  assert.equal((await store.shardsContainingCid(root)).sort(), ['a', 'b'])
  assert.equal((await store.shardsContainingMultihash(root.multihash.bytes)).sort(), ['a', 'b'])
  assert.equal(await store.shardsContainingCid(CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')), [])
  await store.getIterableIndex('nope').then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_INDEX_NOT_FOUND') })
  await store.close()
})

test('accessors work with await using (Symbol.asyncDispose)', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  {
    const acc = await store.acquire('a')
    await acc[Symbol.asyncDispose]()
  }
  assert.equal(store.getShardInfo('a'), { state: 'available', refs: 0 })
  await store.close()
})

test.run()
