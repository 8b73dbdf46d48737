// Automated GC (docs/ARCHITECTURE.md) through the store: a bound on the transients dir (gc.maxTransientsBytes),
// least-recently-used eviction down to the low watermark, grace after the last release, space
// reserved by downloads before they write (whole when the size is known, in steps when not),
// refusal with ERR_TRANSIENTS_FULL when nothing more can go, periodic collection, restarts,
// and a load test. Shards are remote-like (StreamMount, HttpMount), so every one needs a transient.
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DAGStore } from '../src/engine/store.js'
import { HttpMount } from '../src/storage/mount/http.js'
import type { ShardAccessor } from '../src/base/types.js'
import type { ShardIndex } from '../src/base/index-types.js'
import { MemoryIndexRepo } from '../src/storage/index/memory-repo.js'
import type { GCOptions } from '../src/engine/options.js'
import { StreamMount, type StreamMountOptions } from './helpers/stream-mount.js'
import { dirSuite, openStore, until, type TestStore } from './helpers/store.js'
import { encodeCar, makeBlock, patterned, type GeneratedCar } from './helpers/car-gen.js'
import { serve, standard } from './helpers/http-server.js'
import { at, rejectsWith } from './helpers/assert.js'

// ---- shards -----------------------------------------------------------------------------------

const BLOCKS_PER_CAR = 4
const BLOCK_SIZE = 16 * 1024

/** A ~64 KiB CAR of 4 raw 16 KiB blocks; every seed gives distinct blocks, and every CAR the same size. */
function makeCar (seed: number, blocks = BLOCKS_PER_CAR): GeneratedCar {
  return encodeCar(Array.from({ length: blocks }, (_, i) => makeBlock('raw', patterned(BLOCK_SIZE, seed * 1000 + i + 1))))
}

const CARS = Array.from({ length: 20 }, (_, i) => makeCar(i))
/** Size of every CAR in CARS (and of its transient). */
const S = at(CARS, 0).bytes.byteLength
for (const c of CARS) if (c.bytes.byteLength !== S) throw new Error('test CARs must all have one size')

const KEYS = 'ABCDEFGHIJKLMNOPQRST'.split('')
const carOf = (key: string): GeneratedCar => at(CARS, KEYS.indexOf(key))

function mountFor (key: string, options: StreamMountOptions = {}): StreamMount {
  return new StreamMount(carOf(key).bytes, { chunkSize: 16 * 1024, ...options })
}

// ---- the transients dir -------------------------------------------------------------------------

const transientsDir = (dir: string): string => join(dir, 'transients')

/** Where the store keeps `key`'s transient (README: "named from a hash of the key"). */
function transientPath (dir: string, key: string): string {
  return join(transientsDir(dir), createHash('sha256').update(key, 'utf8').digest('hex') + '.car')
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

async function sizeOr0 (path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return 0
    throw err
  }
}

/**
 * Sum of the sizes of every file in the transients dir, .partial included. Not one atomic
 * snapshot, so the order matters: the growing .partial files are measured first, then the
 * finished files. A finished file measured later existed when the .partial files were measured
 * (a .partial renamed meanwhile is not listed again under its new name), so the sum is at most
 * what was on disk, or reserved for a .partial, at that one instant: never over the bound
 * unless the store let it be.
 */
async function dirBytes (dir: string): Promise<number> {
  let names: string[]
  try {
    names = await readdir(transientsDir(dir))
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return 0
    throw err
  }
  let total = 0
  for (const n of names.filter((n) => n.endsWith('.partial'))) total += await sizeOr0(join(transientsDir(dir), n))
  for (const n of names.filter((n) => !n.endsWith('.partial'))) total += await sizeOr0(join(transientsDir(dir), n))
  return total
}

/** Polls an async predicate until true; fails after `timeoutMs` with `what`. */
async function eventually (predicate: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/**
 * Once a re-fetched shard's accessor has closed, its download may still be finishing (an
 * accessor reads a downloading transient): waits, boundedly, for the file to be in place.
 */
async function landed (path: string): Promise<boolean> {
  const deadline = Date.now() + 10_000
  while (!(await exists(path)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  return await exists(path)
}

async function partials (dir: string): Promise<string[]> {
  return (await readdir(transientsDir(dir))).filter((n) => n.endsWith('.partial'))
}

/**
 * Watches the transients dir: samples in the background (one sample at a time, back to back)
 * and whenever a test calls sample(); remembers the largest total seen.
 */
class DirMonitor {
  max = 0
  samples = 0
  #stopped = false
  readonly #loop: Promise<void>

  constructor (private readonly dir: string) {
    this.#loop = (async () => {
      while (!this.#stopped) {
        await this.sample()
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    })()
  }

  async sample (): Promise<number> {
    const bytes = await dirBytes(this.dir)
    this.samples++
    if (bytes > this.max) this.max = bytes
    return bytes
  }

  async stop (): Promise<void> {
    this.#stopped = true
    await this.#loop
  }

  async assertWithin (maxBytes: number): Promise<void> {
    await this.stop()
    await this.sample()
    assert.ok(this.samples > 0)
    assert.ok(this.max <= maxBytes, `the transients dir held ${this.max} bytes at one point, over the bound of ${maxBytes}`)
  }
}

// ---- errors -------------------------------------------------------------------------------------

/** Every `code` along the error's cause chain, outermost first. */
function codeChain (err: unknown): string[] {
  const codes: string[] = []
  let e = err as { code?: unknown, cause?: unknown } | undefined
  for (let depth = 0; e != null && depth < 10; depth++) {
    if (typeof e.code === 'string') codes.push(e.code)
    e = e.cause as typeof e
  }
  return codes
}

function isFull (err: unknown): boolean {
  return codeChain(err).includes('ERR_TRANSIENTS_FULL')
}

// ---- shard operations ---------------------------------------------------------------------------

async function assertServes (acc: ShardAccessor, key: string): Promise<void> {
  for (const b of carOf(key).blocks) {
    assert.equal(new Uint8Array(await acc.blockstore().get(b.cid)), b.bytes, `block of ${key}`)
  }
}

async function use (store: DAGStore, key: string): Promise<void> {
  const acc = await store.acquire(key)
  try {
    await assertServes(acc, key)
  } finally {
    await acc.close()
  }
}

async function open (dir: string, gc: GCOptions, extra: Parameters<typeof openStore>[1] = {}): Promise<TestStore> {
  return await openStore(dir, { gc, ...extra })
}

/** Room for `n` shards, plus 4 KiB of slack (far less than a CAR). */
const roomFor = (n: number): number => n * S + 4096

/**
 * Watermarks so close to 1 that a reservation evicts only what it needs: with room for `n`
 * shards, making room for one more takes exactly one least recently used shard, and usage after
 * that (n shards, files plus reservation) is not above the high watermark either.
 */
function tight (n: number): Pick<GCOptions, 'highWatermark' | 'lowWatermark'> {
  const max = roomFor(n)
  const opts = { highWatermark: 0.999, lowWatermark: 0.99 }
  if (Math.floor(max * opts.lowWatermark) < n * S || Math.floor(max * opts.highWatermark) < n * S) {
    throw new Error('watermarks too low for the test design')
  }
  return opts
}

const test = dirSuite('automated gc')

// ---- 1. LRU ---------------------------------------------------------------------------------

test('LRU: a download that does not fit evicts the least recently used idle transient; it is fetched again on its next acquire', async (ctx) => {
  const max = roomFor(4)
  const { store, reported } = await open(ctx.dir, { maxTransientsBytes: max, ...tight(4) })
  const monitor = new DirMonitor(ctx.dir)
  const mounts = new Map<string, StreamMount>()
  try {
    for (const key of ['A', 'B', 'C', 'D']) {
      mounts.set(key, mountFor(key))
      await store.register(key, mounts.get(key)!)
      await monitor.sample()
    }
    for (const key of ['A', 'B', 'C', 'D']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} has its transient`)
    // Used in the order B, A, D, C: B is now the least recently used.
    for (const key of ['B', 'A', 'D', 'C']) {
      await use(store, key)
      await monitor.sample()
    }
    for (const key of ['A', 'B', 'C', 'D']) assert.is(mounts.get(key)!.fetchCount, 1, `${key} fetched once so far`)

    mounts.set('E', mountFor('E'))
    await store.register('E', mounts.get('E')!)
    await monitor.sample()
    assert.not.ok(await exists(transientPath(ctx.dir, 'B')), 'B (least recently used) evicted')
    for (const key of ['A', 'C', 'D', 'E']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} kept`)
    assert.is(store.getShardInfo('B').state, 'available', 'eviction only drops the copy')
    assert.equal(await partials(ctx.dir), [])

    // B comes back: fetched again, served correctly; making room for it evicts the next LRU (A).
    await use(store, 'B')
    await monitor.sample()
    assert.is(mounts.get('B')!.fetchCount, 2, 'B fetched again')
    assert.ok(await landed(transientPath(ctx.dir, 'B')), 'B present')
    assert.not.ok(await exists(transientPath(ctx.dir, 'A')), 'A, next in LRU order, evicted for B')
    for (const key of ['C', 'D', 'E']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} present`)
    for (const key of ['C', 'D', 'E']) assert.is(mounts.get(key)!.fetchCount, 1, `${key} not fetched again`)
    await monitor.assertWithin(max)
    assert.equal(reported.map((r) => r.context), [])
  } finally {
    await monitor.stop()
    await store.close()
  }
})

// ---- 2. acquired shards are never evicted ------------------------------------------------------------

test('acquired shards are never evicted: a download that cannot fit is refused with ERR_TRANSIENTS_FULL; recover succeeds once one is released', async (ctx) => {
  const max = roomFor(4)
  // Tight watermarks: filling up to the bound starts no background collection.
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, ...tight(4) })
  const monitor = new DirMonitor(ctx.dir)
  const accs = new Map<string, ShardAccessor>()
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    for (const key of ['A', 'B', 'C', 'D']) accs.set(key, await store.acquire(key))

    const e = mountFor('E')
    await rejectsWith(store.register('E', e), (err) => {
      assert.is(err.code, 'ERR_SHARD_INITIALIZATION_FAILED')
      assert.ok(isFull(err), `cause chain ${codeChain(err).join(' → ')} has ERR_TRANSIENTS_FULL`)
      assert.is(err.cause?.name, 'TransientsFullError')
      assert.match(String(err.cause?.message), /full/)
    })
    const info = store.getShardInfo('E')
    assert.is(info.state, 'errored')
    assert.ok(isFull(info.error), 'the shard records ERR_TRANSIENTS_FULL')
    assert.is(e.fetchCount, 0, 'refused before any byte was fetched (the size was known)')
    assert.not.ok(await exists(transientPath(ctx.dir, 'E')))
    assert.equal(await partials(ctx.dir), [])

    for (const key of ['A', 'B', 'C', 'D']) {
      assert.ok(await exists(transientPath(ctx.dir, key)), `acquired ${key} kept`)
      await assertServes(accs.get(key)!, key)
    }

    await accs.get('C')!.close()
    accs.delete('C')
    await store.recover('E')
    assert.is(store.getShardInfo('E').state, 'available')
    assert.not.ok(await exists(transientPath(ctx.dir, 'C')), 'the released one made room')
    for (const key of ['A', 'B', 'D', 'E']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} present`)
    for (const [key, acc] of accs) await assertServes(acc, key)
    await use(store, 'E')
    await monitor.assertWithin(max)
  } finally {
    for (const acc of accs.values()) await acc.close()
    await monitor.stop()
    await store.close()
  }
})

test('concurrent downloads: one that finds nothing left to evict (a concurrent eviction took it) waits for that eviction instead of being refused', async (ctx) => {
  // Room for 4; D held. E and F each need one shard's room. E's eviction goes down to the low
  // watermark (half the bound) and so takes all three idle shards (A, B, C); F's, run next, finds
  // nothing idle left. Once E's deletions land there is room for both E and F (D + E + F = 3),
  // so F must not be refused.
  const max = roomFor(4)
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, highWatermark: 0.999, lowWatermark: 0.5 })
  const monitor = new DirMonitor(ctx.dir)
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    const d = await store.acquire('D')
    const results = await Promise.allSettled([store.register('E', mountFor('E')), store.register('F', mountFor('F'))])
    const errors = results.map((r) => r.status === 'rejected' ? codeChain(r.reason).join(' → ') : 'ok')
    assert.equal(errors, ['ok', 'ok'], 'both fit once the idle shards are gone')
    for (const key of ['D', 'E', 'F']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} present`)
    await d.close()
    await monitor.assertWithin(max)
  } finally {
    await monitor.stop()
    await store.close()
  }
})

test('a known size above the whole bound is refused at once, without evicting anything', async (ctx) => {
  const max = roomFor(4)
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, ...tight(4) })
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    const huge = new StreamMount(makeCar(99, 5 * BLOCKS_PER_CAR).bytes)
    await rejectsWith(store.register('huge', huge), (err) => { assert.ok(isFull(err), codeChain(err).join(' → ')) })
    assert.is(huge.fetchCount, 0)
    for (const key of ['A', 'B', 'C', 'D']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} untouched`)
    assert.equal(await partials(ctx.dir), [])
  } finally {
    await store.close()
  }
})

// ---- 3. grace ---------------------------------------------------------------------------------------

async function graceScenario (dir: string, graceMs: number): Promise<{ store: DAGStore, f: Promise<void> }> {
  const { store } = await open(dir, { maxTransientsBytes: roomFor(4), ...tight(4), graceMs })
  for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
  // A is never acquired, so never released: no grace protects it.
  for (const key of ['B', 'C', 'D']) await use(store, key)
  await store.register('E', mountFor('E'))
  await use(store, 'E')
  // Every idle shard has now been released less than graceMs ago (when graceMs is large).
  const f = store.register('F', mountFor('F'))
  f.catch(() => {})
  return { store, f }
}

test('graceMs: shards released moments ago are not evicted (the download is refused); one never released is', async (ctx) => {
  const { store, f } = await graceScenario(ctx.dir, 60_000)
  try {
    assert.not.ok(await exists(transientPath(ctx.dir, 'A')), 'A (never released) was evicted for E')
    await rejectsWith(f, (err) => { assert.ok(isFull(err), codeChain(err).join(' → ')) })
    assert.is(store.getShardInfo('F').state, 'errored')
    for (const key of ['B', 'C', 'D', 'E']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} within its grace: kept`)
    const gc = await store.gc()
    assert.is(gc.reclaimedBytes, 0, 'manual gc honours the grace too')
    assert.not.ok(gc.shards.has('B'))
  } finally {
    await store.close()
  }
})

test('graceMs 0: the same shards are evicted, least recently used first', async (ctx) => {
  const { store, f } = await graceScenario(ctx.dir, 0)
  try {
    await f
    assert.not.ok(await exists(transientPath(ctx.dir, 'A')))
    assert.not.ok(await exists(transientPath(ctx.dir, 'B')), 'B, least recently released, evicted for F')
    for (const key of ['C', 'D', 'E', 'F']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} kept`)
    await use(store, 'F')
  } finally {
    await store.close()
  }
})

// ---- 4. watermarks and periodic GC ----------------------------------------------------------------------

test('watermarks: usage above the high one starts a background collection down to the low one; acquired shards are kept', async (ctx) => {
  const max = roomFor(10)
  const gc = { maxTransientsBytes: max, highWatermark: 0.9, lowWatermark: 0.5 }
  const high = Math.floor(max * gc.highWatermark)
  const low = Math.floor(max * gc.lowWatermark)
  // Nine shards sit at or under the high watermark; the tenth's reservation goes above it (but
  // fits under the bound, so no eviction is needed to make room for it).
  assert.ok(9 * S <= high && 10 * S > high && 10 * S <= max && 5 * S <= low && 6 * S > low)
  const { store } = await open(ctx.dir, gc)
  const monitor = new DirMonitor(ctx.dir)
  const keys = KEYS.slice(0, 10)
  const held: ShardAccessor[] = []
  try {
    for (const key of keys.slice(0, 9)) await store.register(key, mountFor(key))
    // A and B held (and so least recently used after the others are used); C..I used in order.
    held.push(await store.acquire('A'), await store.acquire('B'))
    for (const key of keys.slice(2, 9)) await use(store, key)
    assert.is(await dirBytes(ctx.dir), 9 * S, 'nothing collected at or under the high watermark')

    await store.register('J', mountFor('J'))
    await eventually(async () => await dirBytes(ctx.dir) <= low, 'usage to come down to the low watermark')
    const kept = []
    for (const key of keys) if (await exists(transientPath(ctx.dir, key))) kept.push(key)
    assert.equal(kept, ['A', 'B', 'H', 'I', 'J'], 'the five least recently used idle ones went; held A and B stayed')
    for (const acc of held) await assertServes(acc, acc.key)
    await monitor.assertWithin(max)
  } finally {
    for (const acc of held) await acc.close()
    await monitor.stop()
    await store.close()
  }
})

test('gc.intervalMs: periodic collection brings usage left above the high watermark (everything was pinned) down to the low one', async (ctx) => {
  const max = roomFor(10)
  const gc = { maxTransientsBytes: max, highWatermark: 0.9, lowWatermark: 0.5, intervalMs: 20 }
  const low = Math.floor(max * gc.lowWatermark)
  const { store, reported } = await open(ctx.dir, gc)
  const keys = KEYS.slice(0, 10)
  const held: ShardAccessor[] = []
  try {
    for (const key of keys.slice(0, 9)) {
      await store.register(key, mountFor(key))
      held.push(await store.acquire(key))
    }
    // Above the high watermark with all ten pinned: the background collection finds nothing.
    // J is lazy and acquired at once, so it is pinned from its first byte (an idle J could be
    // collected by a timer tick before the test holds it).
    await store.register('J', mountFor('J'), { lazy: true })
    held.push(await store.acquire('J'))
    assert.is(await dirBytes(ctx.dir), 10 * S)
    // Released together (their releases reach the loop before any timer can fire), so the
    // periodic collection sees usage above the high watermark with all of it idle. Releasing
    // triggers nothing by itself; the timer does.
    await Promise.all(held.splice(0).map(async (acc) => { await acc.close() }))
    await eventually(async () => await dirBytes(ctx.dir) <= low, 'periodic GC to bring usage down to the low watermark')
    assert.is((await readdir(transientsDir(ctx.dir))).length, 5)
    for (const key of keys) await use(store, key)
    assert.equal(reported.map((r) => r.context), [])
  } finally {
    for (const acc of held) await acc.close()
    await store.close()
  }
})

// ---- 5. unknown sizes ------------------------------------------------------------------------------------

test('unknown size: reservations grow in steps, evicting idle transients (LRU) as the download grows', async (ctx) => {
  const max = roomFor(4)
  const step = 16 * 1024
  // With tight watermarks, the first step (reserved before any byte) needs one eviction (A);
  // the reservation then grows a step at a time and, rounded up to whole steps, outgrows the
  // room A left only at its last step: B goes then, C and D stay.
  const steps = Math.ceil(S / step)
  assert.ok(4 * S + step > max, 'the first step does not fit beside four shards')
  assert.ok(3 * S + (steps - 1) * step <= max && 3 * S + steps * step > max, 'only the last step needs a second eviction')
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, ...tight(4), reservationBytes: step })
  const monitor = new DirMonitor(ctx.dir)
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    const seen: Array<{ served: number, A: boolean, B: boolean }> = []
    const h = mountFor('E', {
      hideSize: true,
      chunkSize: 8 * 1024,
      onChunk: (served) => {
        seen.push({ served, A: existsSync(transientPath(ctx.dir, 'A')), B: existsSync(transientPath(ctx.dir, 'B')) })
      }
    })
    await store.register('E', h)
    assert.ok(seen.length > steps, `served in many chunks (${seen.length})`)
    assert.equal(seen[0], { served: 0, A: false, B: true }, 'A evicted for the first step, before any byte')
    assert.equal(seen[seen.length - 1], { served: at(seen, seen.length - 1).served, A: false, B: true }, 'B still there for the last chunk')
    assert.not.ok(await exists(transientPath(ctx.dir, 'B')), 'B evicted for the last step')
    for (const key of ['C', 'D', 'E']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} kept`)
    assert.equal(await partials(ctx.dir), [])
    await use(store, 'E')
    await monitor.assertWithin(max)
  } finally {
    await monitor.stop()
    await store.close()
  }
})

test('a known size reserves exactly that size, not a whole reservation step', async (ctx) => {
  // The step is for downloads of unknown size; with a known one, rounding up to a step (here
  // twice the shard) would make the fourth shard evict the first although four fit.
  const { store } = await open(ctx.dir, { maxTransientsBytes: roomFor(4), ...tight(4), reservationBytes: 2 * S })
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    for (const key of ['A', 'B', 'C', 'D']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} kept: four shards fit`)
  } finally {
    await store.close()
  }
})

test('unknown size larger than the whole bound: refused with ERR_TRANSIENTS_FULL, no .partial left; a fitting one then succeeds', async (ctx) => {
  const max = roomFor(4)
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, reservationBytes: 16 * 1024 })
  const monitor = new DirMonitor(ctx.dir)
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    const big = new StreamMount(makeCar(77, 5 * BLOCKS_PER_CAR).bytes, { hideSize: true, chunkSize: 8 * 1024 })
    await rejectsWith(store.register('big', big), (err) => { assert.ok(isFull(err), codeChain(err).join(' → ')) })
    assert.is(big.fetchCount, 1, 'the download started: its size was unknown')
    assert.ok(isFull(store.getShardInfo('big').error))
    assert.equal(await partials(ctx.dir), [], 'no .partial left')
    assert.not.ok(await exists(transientPath(ctx.dir, 'big')))
    // Everything it reserved is given back: four shards fit again.
    const e = mountFor('E', { hideSize: true, chunkSize: 8 * 1024 })
    await store.register('E', e)
    await use(store, 'E')
    for (const key of ['F', 'G', 'H']) await store.register(key, mountFor(key))
    for (const key of ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H']) await use(store, key)
    await monitor.assertWithin(max)
  } finally {
    await monitor.stop()
    await store.close()
  }
})

// ---- 6. downloads in progress ------------------------------------------------------------------------------

function latch (): { promise: Promise<void>, open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

const HOLD_AT = 32 * 1024

test('a registering download held mid-way is never evicted: its .partial survives pressure and gc(), and it completes once let go', async (ctx) => {
  const max = roomFor(4)
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, ...tight(4) })
  const monitor = new DirMonitor(ctx.dir)
  const held = latch()
  try {
    for (const key of ['A', 'B', 'C']) await store.register(key, mountFor(key))
    let reached = false
    const xm = new StreamMount(at(CARS, 19).bytes, {
      chunkSize: 8 * 1024,
      pause: (served) => {
        if (served !== HOLD_AT) return undefined
        reached = true
        return held.promise
      }
    })
    const registering = store.register('X', xm)
    registering.catch(() => {})
    await until(() => reached, 'the download to reach the hold point')
    const partial = transientPath(ctx.dir, 'X') + '.partial'
    // Writes trail the stream: wait for what was served before the hold to land.
    await eventually(async () => await sizeOr0(partial) === HOLD_AT, 'the bytes before the hold point on disk')

    // Pressure: D needs room (A, B, C idle; X reserved whole): idle ones go, X stays.
    await store.register('D', mountFor('D'))
    assert.not.ok(await exists(transientPath(ctx.dir, 'A')), 'D evicted the least recently used idle one')
    assert.is(await sizeOr0(partial), HOLD_AT, 'the held download survives eviction')
    const gc = await store.gc()
    assert.not.ok(gc.shards.has('X'))
    assert.ok(await exists(partial), 'and a manual gc')
    assert.is(store.getShardInfo('X').state, 'initializing')

    held.open()
    await registering
    assert.is(xm.fetchCount, 1)
    assert.ok(await exists(transientPath(ctx.dir, 'X')))
    const acc = await store.acquire('X')
    for (const b of at(CARS, 19).blocks) assert.equal(new Uint8Array(await acc.blockstore().get(b.cid)), b.bytes)
    await acc.close()
    await monitor.assertWithin(max)
  } finally {
    held.open()
    await monitor.stop()
    await store.close()
  }
})

test('a re-fetch held mid-way after its accessor closed (idle, available, downloading) is never evicted', async (ctx) => {
  const max = roomFor(4)
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, ...tight(4) })
  const monitor = new DirMonitor(ctx.dir)
  const held = latch()
  try {
    const am = mountFor('A', { chunkSize: 8 * 1024 })
    await store.register('A', am)
    await store.gc()
    assert.not.ok(await exists(transientPath(ctx.dir, 'A')))
    for (const key of ['B', 'C']) await store.register(key, mountFor(key))

    let reached = false
    am.options.pause = (served) => { if (served === HOLD_AT) { reached = true; return held.promise } return undefined }
    const acc = await store.acquire('A')
    assert.is(am.fetchCount, 2, 'fetched again')
    const first = at(carOf('A').blocks, 0)
    assert.equal(new Uint8Array(await acc.blockstore().get(first.cid)), first.bytes, 'a block already on disk')
    await until(() => reached, 'the download to reach the hold point')
    await acc.close()
    assert.equal(store.getShardInfo('A'), { state: 'available', refs: 0 })
    const partial = transientPath(ctx.dir, 'A') + '.partial'
    assert.ok(await exists(partial), 'still downloading with nobody holding the shard')
    await eventually(async () => await sizeOr0(partial) === HOLD_AT, 'the bytes before the hold point on disk')

    const gc = await store.gc()
    assert.not.ok(gc.shards.has('A'), 'manual gc skips a downloading shard')
    await store.register('D', mountFor('D'))
    await store.register('E', mountFor('E'))
    assert.not.ok(await exists(transientPath(ctx.dir, 'B')), 'E evicted the least recently used idle one')
    assert.is(await sizeOr0(partial), HOLD_AT, 'eviction leaves the download alone')

    held.open()
    await until(() => am.activeStreams === 0, 'the download to finish')
    await until(() => !existsSync(partial), 'the .partial to be renamed')
    await use(store, 'A')
    assert.is(am.fetchCount, 2, 'the completed download is the transient: no third fetch')
    await monitor.assertWithin(max)
  } finally {
    held.open()
    await monitor.stop()
    await store.close()
  }
})

// ---- 7. restart -----------------------------------------------------------------------------------

test('restart: existing transients count against the bound (the least recently modified is evicted first); orphans are removed at start', async (ctx) => {
  const max = roomFor(4)
  const gc = { maxTransientsBytes: max, ...tight(4) }
  const s1 = await open(ctx.dir, gc)
  try {
    for (const key of ['A', 'B', 'C', 'D']) await s1.store.register(key, mountFor(key))
  } finally {
    await s1.store.close()
  }
  // Modification times say C is the oldest, then A, D, B.
  const base = Date.now() / 1000 - 3600
  for (const [i, key] of ['C', 'A', 'D', 'B'].entries()) await utimes(transientPath(ctx.dir, key), base + i * 60, base + i * 60)
  const orphans = [join(transientsDir(ctx.dir), 'orphan.car'), join(transientsDir(ctx.dir), 'f00d.car.partial')]
  await writeFile(at(orphans, 0), new Uint8Array(3 * S))
  await writeFile(at(orphans, 1), new Uint8Array(S))

  const instantiated: StreamMount[] = []
  const s2 = await open(ctx.dir, gc, { stream: { onInstantiate: (m) => { instantiated.push(m) } } })
  const monitor = new DirMonitor(ctx.dir)
  try {
    for (const o of orphans) assert.not.ok(await exists(o), `orphan ${o} removed at start`)
    assert.ok(s2.reported.some((r) => r.context === 'transients cleanup'))
    for (const key of ['A', 'B', 'C', 'D']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} kept across the restart`)

    await s2.store.register('E', mountFor('E'))
    assert.not.ok(await exists(transientPath(ctx.dir, 'C')), 'C (oldest) evicted rather than exceeding the bound')
    for (const key of ['A', 'B', 'D', 'E']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} kept`)
    await s2.store.register('F', mountFor('F'))
    assert.not.ok(await exists(transientPath(ctx.dir, 'A')), 'then A')
    for (const key of ['B', 'D', 'E', 'F']) await use(s2.store, key)
    assert.is(instantiated.reduce((n, m) => n + m.fetchCount, 0), 0, 'the kept transients were not fetched again')
    await use(s2.store, 'C')
    assert.is(instantiated.reduce((n, m) => n + m.fetchCount, 0), 1, 'C fetched again')
    await monitor.assertWithin(max)
  } finally {
    await monitor.stop()
    await s2.store.close()
  }
})

// ---- 8. load ---------------------------------------------------------------------------------------

/** A tiny LCG (Numerical Recipes constants): each worker makes the same choices on every run. */
function lcg (seed: number): () => number {
  let x = seed >>> 0
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    return x
  }
}

test('GC under load: 20 shards, room for 5, 8 workers: the dir stays under its bound and no acquired shard fails to serve', async (ctx) => {
  // Room for 5 with 8 workers, chosen over a bound that fits 8 pinned shards: refusal under load
  // is part of what is tested. At times more shards are pinned (held, or downloading) than fit,
  // so some acquires are refused; those must be ERR_TRANSIENTS_FULL and nothing else, and every
  // shard handed out must serve. A refused shard is errored; the worker recovers it before it is
  // used again (a recovery can be refused too, or find another worker's recovery under way).
  // Half the shards are registered eagerly, half lazily (their first acquire fetches and indexes).
  const max = roomFor(5)
  const { store, reported } = await open(ctx.dir, { maxTransientsBytes: max })
  const monitor = new DirMonitor(ctx.dir)
  const mounts = KEYS.map((key) => mountFor(key))
  const TOTAL_OPS = 300
  const WORKERS = 8
  let next = 0
  let served = 0
  let refused = 0
  let recovered = 0
  let racedRecovery = 0
  const unexpected: string[] = []
  try {
    for (const [i, key] of KEYS.entries()) await store.register(key, at(mounts, i), { lazy: i >= 10 })

    const worker = async (id: number): Promise<void> => {
      const rand = lcg(0x5eed + id)
      while (next < TOTAL_OPS) {
        next++
        const key = at(KEYS, rand() % KEYS.length)
        const block = at(carOf(key).blocks, rand() % BLOCKS_PER_CAR)
        let acc: ShardAccessor
        try {
          acc = await store.acquire(key)
        } catch (err) {
          if (codeChain(err).join() === 'ERR_SHARD_ERRORED,ERR_INDEX_NOT_FOUND') {
            // A known src defect, reproduced deterministically above ("an acquire accepted before
            // its shard failed, whose open overlaps the recovery"): an acquire whose shard was
            // refused a download under it and is being recovered fails with the recovery's
            // missing index instead of ERR_TRANSIENTS_FULL. Counted, not failed on here, so this
            // test stays deterministic; it asserts everything else.
            racedRecovery++
            continue
          }
          if (!isFull(err)) { unexpected.push(`acquire ${key}: ${codeChain(err).join(' → ')} ${String(err)}`); continue }
          refused++
          // Recover before use (another worker may be at it already: not errored then).
          await store.recover(key).then(() => { recovered++ }, (e: unknown) => {
            if (!isFull(e) && (e as { code?: string }).code !== 'ERR_SHARD_NOT_ERRORED') {
              unexpected.push(`recover ${key}: ${codeChain(e).join(' → ')} ${String(e)}`)
            }
          })
          await monitor.sample()
          continue
        }
        try {
          assert.equal(new Uint8Array(await acc.blockstore().get(block.cid)), block.bytes)
          served++
        } catch (err) {
          unexpected.push(`get from acquired ${key}: ${codeChain(err).join(' → ')} ${String(err)}`)
        } finally {
          await acc.close()
        }
        await monitor.sample()
      }
    }
    await Promise.all(Array.from({ length: WORKERS }, async (_, id) => { await worker(id) }))

    assert.equal(unexpected, [], 'only ERR_TRANSIENTS_FULL refusals, and every acquired shard served')
    assert.ok(served > TOTAL_OPS / 3, `many operations served (${served} served, ${refused} refused, ${recovered} recovered, ${racedRecovery} raced a recovery)`)
    const fetches = mounts.reduce((n, m) => n + m.fetchCount, 0)
    assert.ok(fetches > KEYS.length, `evictions forced re-fetches (${fetches} fetches)`)

    // Quiet now: recover whatever is errored, then every shard serves every block.
    for (const key of KEYS) if (store.getShardInfo(key).state === 'errored') await store.recover(key)
    for (const key of KEYS) await use(store, key)
    await monitor.sample()
    const stats = store.stats()
    assert.is(stats.available, KEYS.length, JSON.stringify(stats))
    assert.is(Object.values(stats).reduce((a, b) => a + b, 0), KEYS.length)
    for (const [key, info] of store.allShardsInfo()) assert.is(info.refs, 0, `${key} holds no refs`)
    // An accessor serves its shard while the shard downloads, so the last re-fetches may still
    // be finishing once every accessor is closed: wait for them (a leaked .partial never goes).
    const deadline = Date.now() + 10_000
    while ((await partials(ctx.dir)).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    assert.equal(await partials(ctx.dir), [])
    const files = await readdir(transientsDir(ctx.dir))
    assert.ok(files.length <= 5, `${files.length} transients left`)
    await monitor.assertWithin(max)
    assert.equal(reported.map((r) => `${r.context}: ${String(r.err)}`), [])
  } finally {
    await monitor.stop()
    await store.close()
  }
})

// ---- found under load: an acquire in flight when its shard fails and is recovered ----------------------

/** A MemoryIndexRepo whose next get() of `key`, once armed, waits until let go. */
class GatedIndexRepo extends MemoryIndexRepo {
  armed: string | undefined
  waiting = 0
  readonly #gate = latch()

  override async get (key: string): Promise<ShardIndex> {
    if (this.armed === key) {
      this.armed = undefined
      this.waiting++
      await this.#gate.promise
    }
    return await super.get(key)
  }

  letGo (): void { this.#gate.open() }
}

async function acquireRacingRecovery (
  dir: string, letGoWhen: 'index dropped' | 'recovered'
): Promise<{ outcome: unknown, store: DAGStore, recovered: Promise<void> }> {
  const indexRepo = new GatedIndexRepo()
  const { store } = await open(dir, { maxTransientsBytes: roomFor(4), ...tight(4) }, { indexRepo })
  const mount = mountFor('D', { chunkSize: 8 * 1024 })
  await store.register('D', mount)
  await store.gc()
  // A's acquire fetches D again; the download is held at HOLD_AT and fails when let go.
  const failing = latch()
  mount.options.pause = (served) => served === HOLD_AT ? failing.promise : undefined
  mount.options.failAfter = HOLD_AT
  const a = await store.acquire('D')
  // B's acquire is accepted (D is serving) and its accessor's open waits in indexRepo.get.
  indexRepo.armed = 'D'
  const b = store.acquire('D').then((acc) => acc, (err: unknown) => err)
  await until(() => indexRepo.waiting === 1, "B's open to reach the index")
  failing.open()
  await until(() => store.getShardInfo('D').state === 'errored', 'D to fail')
  // Recovery's own download is held, so "index dropped" is a stable point.
  const recovering = latch()
  mount.options.failAfter = undefined
  mount.options.pause = (served) => served === HOLD_AT ? recovering.promise : undefined
  const recovered = store.recover('D')
  recovered.catch(() => {})
  if (letGoWhen === 'index dropped') {
    await until(() => mount.activeStreams === 1 && store.getShardInfo('D').state === 'recovering', 'the recovery to be downloading')
    indexRepo.letGo()
    const outcome = await b
    recovering.open()
    await a.close()
    return { outcome, store, recovered }
  }
  recovering.open()
  await recovered
  indexRepo.letGo()
  const outcome = await b
  await a.close()
  return { outcome, store, recovered }
}

test('an acquire accepted before its shard failed, whose open overlaps the recovery, fails with the shard\'s error (not ERR_INDEX_NOT_FOUND) or serves', async (ctx) => {
  const { outcome, store, recovered } = await acquireRacingRecovery(ctx.dir, 'index dropped')
  try {
    if (outcome instanceof Error) {
      const chain = codeChain(outcome)
      assert.not.ok(chain.includes('ERR_INDEX_NOT_FOUND'), `acquire failed with ${chain.join(' → ')}: ${outcome.message}`)
      assert.ok(chain.includes('EINJECTED'), `the shard's own failure as the cause: ${chain.join(' → ')}`)
    } else {
      const acc = outcome as ShardAccessor
      await assertServes(acc, 'D')
      await acc.close()
    }
    await recovered
    await use(store, 'D')
  } finally {
    await store.close()
  }
})

test('an acquire accepted before its shard failed, whose open completes after the recovery, serves or fails with the shard\'s error', async (ctx) => {
  const { outcome, store } = await acquireRacingRecovery(ctx.dir, 'recovered')
  try {
    if (outcome instanceof Error) {
      const chain = codeChain(outcome)
      assert.ok(chain.includes('EINJECTED'), `the shard's own failure as the cause: ${chain.join(' → ')}: ${outcome.message}`)
    } else {
      const acc = outcome as ShardAccessor
      try {
        await assertServes(acc, 'D')
      } finally {
        await acc.close()
      }
    }
    await use(store, 'D')
  } finally {
    await store.close()
  }
})

// ---- 9. GCResult -------------------------------------------------------------------------------------

test('gc(): reclaimedBytes equals the bytes of the files it removed', async (ctx) => {
  const { store } = await open(ctx.dir, { maxTransientsBytes: roomFor(4), ...tight(4) })
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    const b = await store.acquire('B')
    const before = await dirBytes(ctx.dir)
    const result = await store.gc()
    const after = await dirBytes(ctx.dir)
    assert.equal([...result.shards.keys()].sort(), ['A', 'C', 'D'])
    for (const err of result.shards.values()) assert.is(err, null)
    assert.ok(await exists(transientPath(ctx.dir, 'B')), 'the acquired one stays')
    assert.is(before - after, 3 * S, 'three transients removed')
    assert.is(result.reclaimedBytes, before - after, 'reclaimedBytes reports all three')
    await b.close()
  } finally {
    await store.close()
  }
})

test('gc(): the transients it removes are taken off the bound: as many new ones fit without evicting', async (ctx) => {
  const { store } = await open(ctx.dir, { maxTransientsBytes: roomFor(4), ...tight(4) })
  try {
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    const b = await store.acquire('B')
    await store.gc()
    assert.is(await dirBytes(ctx.dir), S)
    // Were A, C and D still charged, E could only be refused (nothing idle left to evict).
    for (const key of ['E', 'F', 'G']) await store.register(key, mountFor(key))
    for (const key of ['B', 'E', 'F', 'G']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} present`)
    await assertServes(b, 'B')
    await b.close()
    // And a single transient's reclaimedBytes (no concurrent deletions) is its size.
    await store.gc()
    assert.is(await dirBytes(ctx.dir), 0)
    await store.register('H', mountFor('H'))
    const one = await store.gc()
    assert.is(one.reclaimedBytes, S)
  } finally {
    await store.close()
  }
})

test('destroy takes its transient off the bound; a user\'s existingTransient is never charged nor evicted', async (ctx) => {
  const userCopy = join(ctx.dir, 'user-copy.car')
  await writeFile(userCopy, carOf('T').bytes)
  const { store } = await open(ctx.dir, { maxTransientsBytes: roomFor(4), ...tight(4) })
  try {
    // T's bytes are the user's file, outside the transients dir: not the store's to count or evict.
    await store.register('T', mountFor('T'), { existingTransient: userCopy })
    for (const key of ['A', 'B', 'C', 'D']) await store.register(key, mountFor(key))
    for (const key of ['A', 'B', 'C', 'D']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} fits beside T`)
    await store.destroy('B')
    assert.not.ok(await exists(transientPath(ctx.dir, 'B')))
    // Were B still charged, E would evict A.
    await store.register('E', mountFor('E'))
    for (const key of ['A', 'C', 'D', 'E']) assert.ok(await exists(transientPath(ctx.dir, key)), `${key} present`)
    await store.register('F', mountFor('F'))
    assert.not.ok(await exists(transientPath(ctx.dir, 'A')), 'A (least recently used) evicted for F')
    await store.gc()
    assert.ok(await exists(userCopy), 'the user\'s copy is never deleted')
    await use(store, 'T')
  } finally {
    await store.close()
  }
})

test('restart with a smaller bound: the transients already there are collected down to the low watermark at start', async (ctx) => {
  const s1 = await open(ctx.dir, { maxTransientsBytes: roomFor(4), ...tight(4) })
  try {
    for (const key of ['A', 'B', 'C', 'D']) await s1.store.register(key, mountFor(key))
  } finally {
    await s1.store.close()
  }
  const max = roomFor(2)
  const low = Math.floor(max * 0.7)
  const s2 = await open(ctx.dir, { maxTransientsBytes: max })
  try {
    await eventually(async () => await dirBytes(ctx.dir) <= low, 'the collection at start to bring usage down to the low watermark')
    const monitor = new DirMonitor(ctx.dir)
    try {
      for (const key of ['A', 'B', 'C', 'D']) await use(s2.store, key)
      await monitor.assertWithin(max)
    } finally {
      await monitor.stop()
    }
    assert.equal(s2.reported.map((r) => r.context), [])
  } finally {
    await s2.store.close()
  }
})

// ---- HTTP -----------------------------------------------------------------------------------------

test('HTTP shards: Content-Length is reserved up front; a chunked body (no length) in steps; both evict LRU and serve', async (ctx) => {
  const bodies = new Map(['A', 'B', 'C'].map((k) => [`/${k}.car`, carOf(k).bytes]))
  const srv = await serve((req, res, n) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const body = bodies.get(path.replace('/chunked', ''))
    if (body === undefined) { res.writeHead(404); res.end(); return }
    if (path.startsWith('/chunked')) {
      // No Content-Length: the size is unknown until the body ends.
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' })
      if (req.method === 'HEAD') { res.end(); return }
      for (let i = 0; i < body.byteLength; i += 8192) res.write(body.subarray(i, i + 8192))
      res.end()
      return
    }
    standard(body)(req, res, n)
  })
  const max = roomFor(2)
  // Small steps (1 KiB, well under the 4 KiB of slack and of the room above the high watermark):
  // however the body is chunked, a reservation rounded up to whole steps still fits beside one
  // other shard without crossing the high watermark, so C's growth evicts exactly one (B).
  const { store } = await open(ctx.dir, { maxTransientsBytes: max, ...tight(2), reservationBytes: 1024 })
  const base = srv.url.replace(/\/[^/]*$/, '')
  const monitor = new DirMonitor(ctx.dir)
  try {
    await store.register('A', new HttpMount(`${base}/A.car`))
    await store.register('B', new HttpMount(`${base}/B.car`))
    await use(store, 'A')
    await store.register('C', new HttpMount(`${base}/chunked/C.car`))
    assert.not.ok(await exists(transientPath(ctx.dir, 'B')), 'B (least recently used) evicted')
    assert.ok(await exists(transientPath(ctx.dir, 'A')))
    await use(store, 'C')
    await use(store, 'B')
    const gets = srv.log.filter((r) => r.method === 'GET').length
    assert.ok(gets >= 4, `B fetched again (${gets} GETs)`)
    await monitor.assertWithin(max)
  } finally {
    await monitor.stop()
    await store.close()
    await srv.close()
  }
})

// ---- 10. options -----------------------------------------------------------------------------------

test('option validation: bad bounds, fractions and steps fail the constructor with RangeError', async (ctx) => {
  const make = (gc: GCOptions): DAGStore => new DAGStore({ dir: ctx.dir, gc })
  for (const gc of [
    { maxTransientsBytes: 0 },
    { maxTransientsBytes: -1 },
    { maxTransientsBytes: 1.5 },
    { maxTransientsBytes: Number.NaN },
    { maxTransientsBytes: Infinity },
    { maxTransientsBytes: 1024, highWatermark: 0.5, lowWatermark: 0.5 },
    { maxTransientsBytes: 1024, highWatermark: 0.5, lowWatermark: 0.6 },
    { maxTransientsBytes: 1024, lowWatermark: 0.95 }, // above the default high (0.9)
    { maxTransientsBytes: 1024, highWatermark: 1.5 },
    { maxTransientsBytes: 1024, highWatermark: 0 },
    { maxTransientsBytes: 1024, lowWatermark: -0.1, highWatermark: 0.5 },
    { maxTransientsBytes: 1024, reservationBytes: 0 },
    { maxTransientsBytes: 1024, reservationBytes: 1.5 }
  ]) {
    assert.throws(() => make(gc), (err: unknown) => err instanceof RangeError, JSON.stringify(gc))
  }
  const ok = make({ maxTransientsBytes: 1024, highWatermark: 1, lowWatermark: 0.1, reservationBytes: 1 })
  await ok.close()
})

test.run()
