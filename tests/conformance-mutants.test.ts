// The conformance suites catch what they are for: each runs here against implementations
// broken on purpose (one fault each), and must fail — in the check meant to catch that fault.
// A suite that passed a mutant would pass an implementation with that bug.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { MemoryLevel } from 'memory-level'
import { CID } from 'multiformats/cid'
import type { Blockstore } from 'interface-blockstore'
import { BlockNotFoundError } from '../src/base/errors.js'
import type { IndexEntry, ShardIndex } from '../src/base/index-types.js'
import type { Mount, MountReader } from '../src/base/mount-types.js'
import type { ReadBlockstore } from '../src/base/types.js'
import { SortedIndexBuilder } from '../src/format/index/sorted-index.js'
import { toInterfaceBlockstore } from '../src/read/adapter.js'
import { BytesMount } from '../src/storage/mount/bytes.js'
import { LevelStateStore, type AnyLevel, type StateStore } from '../src/storage/state/state-store.js'
import type { ShardRecord } from '../src/storage/state/record.js'
import {
  interfaceBlockstoreReadConformance, mountConformance, readBlockstoreConformance, shardIndexConformance,
  stateStoreConformance, type MountUnderTest, type Opened, type RegisterTest, type StateStoreFactory
} from '../src/testing/index.js'
import { shardBlockstoreOver } from './helpers/shard-blockstore.js'
import { flipBits } from './helpers/file-reader.js'

/** Names of the suite's checks (those whose name includes `only`, if given) that fail. */
async function failing (register: (test: RegisterTest) => void, only = ''): Promise<string[]> {
  const checks: Array<[string, () => Promise<void>]> = []
  register((name, fn) => { if (name.includes(only)) checks.push([name, fn]) })
  assert.ok(checks.length > 0, `the suite has checks named "${only}…"`)
  const failed: string[] = []
  for (const [name, fn] of checks) {
    try {
      await fn()
    } catch {
      failed.push(name)
    }
  }
  return failed
}

/** The checks named `check` fail on the implementation with `fault`. */
async function caught (register: (test: RegisterTest) => void, check: string, fault: string): Promise<void> {
  const failed = await failing(register, check)
  assert.ok(failed.length > 0, `${fault}: no check named "${check}…" failed`)
}

const test = suite('conformance suites catch broken implementations')

// ── ReadBlockstore ───────────────────────────────────────────────────────────────────────

const isIdentity = (cid: CID): boolean => cid.multihash.code === 0x00

/** The real shard blockstore over the CAR, with `fault` overriding some of its calls. */
function mutant (fault: (bs: ReadBlockstore) => Partial<ReadBlockstore>): (car: Uint8Array) => Promise<Opened<ReadBlockstore>> {
  return async (car) => {
    const opened = await shardBlockstoreOver(car)
    const bs = opened.blockstore
    const base: ReadBlockstore = {
      has: async (cid) => await bs.has(cid),
      get: async (cid) => await bs.get(cid),
      getSize: async (cid) => await bs.getSize(cid),
      allKeys: () => bs.allKeys()
    }
    return { blockstore: { ...base, ...fault(bs) }, close: opened.close }
  }
}

async function listed (bs: ReadBlockstore): Promise<CID[]> {
  const out: CID[] = []
  for await (const cid of bs.allKeys()) out.push(cid)
  return out
}

const blockstoreFaults: Array<[string, string, (bs: ReadBlockstore) => Partial<ReadBlockstore>]> = [
  ['get returns a wrong byte', 'every block', (bs) => ({
    get: async (cid) => {
      const b = (await bs.get(cid)).slice()
      if (b.length > 0 && !isIdentity(cid)) flipBits(b, b.length - 1, 1)
      return b
    }
  })],
  ['getSize is one too many', 'every block', (bs) => ({ getSize: async (cid) => (await bs.getSize(cid)) + (isIdentity(cid) ? 0 : 1) })],
  ['blocks match by the whole CID, not the multihash', 'every block', (bs) => {
    const exact = async (cid: CID): Promise<void> => {
      if (isIdentity(cid)) return
      if (!(await listed(bs)).some((c) => c.equals(cid))) throw new BlockNotFoundError(`block not found: ${cid}`)
    }
    return {
      has: async (cid) => await exact(cid).then(async () => await bs.has(cid), () => false),
      get: async (cid) => await exact(cid).then(async () => await bs.get(cid)),
      getSize: async (cid) => await exact(cid).then(async () => await bs.getSize(cid))
    }
  }],
  ['get hands out one cached buffer per block', 'every block', (bs) => {
    const cache = new Map<string, Uint8Array>()
    return {
      get: async (cid) => {
        const k = cid.multihash.toString()
        const hit = cache.get(k)
        if (hit !== undefined) return hit
        const b = await bs.get(cid)
        cache.set(k, b)
        return b
      }
    }
  }],
  ['a missing block fails with a plain Error', 'not found', (bs) => ({
    get: async (cid) => { try { return await bs.get(cid) } catch (err) { throw new Error(String(err)) } }
  })],
  ['has says true for anything', 'not found', () => ({ has: async () => true })],
  ['identity CIDs are looked up in the CAR', 'identity', (bs) => ({
    has: async (cid) => isIdentity(cid) ? (await listed(bs)).some((c) => c.equals(cid)) : await bs.has(cid)
  })],
  ['an identity block is the CID\'s own digest', 'identity', (bs) => ({
    get: async (cid) => isIdentity(cid) ? cid.multihash.digest : await bs.get(cid)
  })],
  ['keys listed in reverse', 'keys listed', (bs) => ({
    allKeys: async function * () { yield * (await listed(bs)).reverse() }
  })],
  ['a repeated block listed once', 'keys listed', (bs) => ({
    allKeys: async function * () {
      const seen = new Set<string>()
      for (const cid of await listed(bs)) {
        if (seen.has(cid.toString())) continue
        seen.add(cid.toString())
        yield cid
      }
    }
  })],
  ['identity CIDs left out of the listing', 'keys listed', (bs) => ({
    allKeys: async function * () { for (const cid of await listed(bs)) if (!isIdentity(cid)) yield cid }
  })],
  ['the listing rewrites CIDs as CIDv1 raw', 'keys listed', (bs) => ({
    allKeys: async function * () { for (const cid of await listed(bs)) yield CID.createV1(0x55, cid.multihash) }
  })]
]

test('ReadBlockstore: the wrapper without a fault passes every check', async () => {
  assert.equal(await failing((t) => { readBlockstoreConformance(t, { open: mutant(() => ({})) }) }), [])
})

for (const [fault, check, make] of blockstoreFaults) {
  test(`ReadBlockstore: ${fault}`, async () => {
    await caught((t) => { readBlockstoreConformance(t, { open: mutant(make) }) }, check, fault)
  })
}

/** The adapter over the real shard blockstore, with `fault` overriding some of its calls. */
function adapterMutant (fault: (bs: Blockstore) => Partial<Blockstore>): (car: Uint8Array) => Promise<Opened<Blockstore>> {
  return async (car) => {
    const opened = await shardBlockstoreOver(car)
    const bs = toInterfaceBlockstore(opened.blockstore)
    const wrapped = Object.assign(Object.create(bs) as Blockstore, fault(bs))
    return { blockstore: wrapped, close: opened.close }
  }
}

const adapterFaults: Array<[string, string, (bs: Blockstore) => Partial<Blockstore>]> = [
  ['getMany yields in CAR order, not input order', 'getMany', (bs) => ({
    getMany: async function * (source) {
      const wanted = new Set<string>()
      for await (const cid of source) wanted.add(cid.toString())
      for await (const pair of bs.getAll()) if (wanted.has(pair.cid.toString())) yield pair
    }
  })],
  ['a missing block fails as BlockNotFoundError, not NotFoundError', 'not found', (bs) => ({
    get: async function * (cid) {
      try {
        yield * bs.get(cid)
      } catch (err) {
        throw new BlockNotFoundError(String(err))
      }
    }
  })]
]

test('interface-blockstore: the wrapper without a fault passes every check', async () => {
  assert.equal(await failing((t) => { interfaceBlockstoreReadConformance(t, { open: adapterMutant(() => ({})) }) }), [])
})

for (const [fault, check, make] of adapterFaults) {
  test(`interface-blockstore: ${fault}`, async () => {
    await caught((t) => { interfaceBlockstoreReadConformance(t, { open: adapterMutant(make) }) }, check, fault)
  })
}

// ── ShardIndex ──────────────────────────────────────────────────────────────────────────────

function sorted (entries: IndexEntry[]): ShardIndex {
  const b = new SortedIndexBuilder()
  for (const e of entries) b.add(e.multihash, e.offset)
  return b.build()
}

const startsWith = (a: Uint8Array, b: Uint8Array): boolean => b.length <= a.length && b.every((x, i) => a[i] === x)

const indexFaults: Array<[string, string, (entries: IndexEntry[]) => ShardIndex]> = [
  ['offsets kept in 32 bits', 'past 4 GiB', (entries) => sorted(entries.map((e) => ({ ...e, offset: e.offset % 2 ** 32 })))],
  ['size counts one too many', 'one entry', (entries) => {
    const index = sorted(entries)
    return { get: (mh) => index.get(mh), size: index.size + 1, [Symbol.iterator]: () => index[Symbol.iterator]() }
  }],
  ['iteration yields the first entry twice', 'one entry', (entries) => {
    const index = sorted(entries)
    return {
      get: (mh) => index.get(mh),
      size: index.size,
      * [Symbol.iterator] () {
        yield * index
        yield * [...index].slice(0, 1)
      }
    }
  }],
  ['iteration reuses one buffer for every multihash', '5,000 entries', (entries) => {
    const index = sorted(entries)
    return {
      get: (mh) => index.get(mh),
      size: index.size,
      * [Symbol.iterator] () {
        const scratch = new Uint8Array(256)
        for (const e of index) {
          scratch.set(e.multihash)
          yield { multihash: scratch.subarray(0, e.multihash.length), offset: e.offset }
        }
      }
    }
  }],
  ['a lookup matches a multihash by prefix', 'one entry', (entries) => {
    const index = sorted(entries)
    return {
      get: (mh) => {
        if (mh.length === 0) return undefined
        for (const e of index) if (startsWith(e.multihash, mh) || startsWith(mh, e.multihash)) return e.offset
        return undefined
      },
      size: index.size,
      [Symbol.iterator]: () => index[Symbol.iterator]()
    }
  }],
  ['a lookup reads the key from the start of its buffer', 'views into larger buffers', (entries) => {
    const index = sorted(entries)
    return { get: (mh) => index.get(new Uint8Array(mh.buffer, 0, mh.length)), size: index.size, [Symbol.iterator]: () => index[Symbol.iterator]() }
  }],
  ['iterable only once', 'more than once', (entries) => {
    const it = sorted(entries)[Symbol.iterator]()
    const index = sorted(entries)
    return { get: (mh) => index.get(mh), size: index.size, [Symbol.iterator]: () => it }
  }],
  ['a multihash code collapses into another', '5,000 entries', (entries) => sorted(entries.map((e) => {
    // 0x1012 stored under 0x12: its digests answer to the wrong code.
    if (e.multihash[0] !== 0x92 || e.multihash[1] !== 0x20) return e
    return { multihash: Uint8Array.of(0x12, ...e.multihash.subarray(2)), offset: e.offset }
  }))]
]

test('ShardIndex: the sorted index passes every check', async () => {
  assert.equal(await failing((t) => { shardIndexConformance(t, sorted) }), [])
})

for (const [fault, check, build] of indexFaults) {
  test(`ShardIndex: ${fault}`, async () => {
    await caught((t) => { shardIndexConformance(t, build) }, check, fault)
  })
}

// ── StateStore ──────────────────────────────────────────────────────────────────────────────

/** A LevelStateStore on MemoryLevel, with `fault` overriding some of its calls. */
function stateMutant (fault: (store: StateStore) => Partial<StateStore>, options: { amnesia?: boolean } = {}): StateStoreFactory {
  const dbs = new WeakMap<StateStore, AnyLevel>()
  const wrap = (db: AnyLevel): StateStore => {
    const real = new LevelStateStore(db)
    const store: StateStore = {
      writeBatch: async (puts, deletes, tombstones) => { await real.writeBatch(puts, deletes, tombstones) },
      loadAll: (onBad) => real.loadAll(onBad),
      loadTombstones: () => real.loadTombstones(),
      ...fault(real)
    }
    dbs.set(store, db)
    return store
  }
  const fresh = async (): Promise<AnyLevel> => {
    const db = new MemoryLevel() as unknown as AnyLevel
    await db.open()
    return db
  }
  return {
    open: async () => wrap(await fresh()),
    reopen: async (store) => {
      const db = dbs.get(store) as AnyLevel
      await db.close()
      if (options.amnesia === true) return wrap(await fresh())
      await db.open()
      return wrap(db)
    },
    close: async (store) => { await dbs.get(store)?.close() }
  }
}

async function * pages (it: AsyncIterable<ShardRecord[]>, limit: number): AsyncIterable<ShardRecord[]> {
  let n = 0
  for await (const page of it) {
    if (n++ >= limit) return
    yield page
  }
}

const stateFaults: Array<[string, string, StateStoreFactory]> = [
  ['puts applied before deletes', 'both deleted and put', stateMutant((real) => ({
    writeBatch: async (puts, deletes) => {
      await real.writeBatch(puts, [])
      await real.writeBatch([], deletes)
    }
  }))],
  ['deletes ignored', 'delete removes', stateMutant((real) => ({ writeBatch: async (puts) => { await real.writeBatch(puts, []) } }))],
  ['a put merges into the old record', 'later batch overrides', stateMutant((real) => {
    const last = new Map<string, ShardRecord>()
    return {
      writeBatch: async (puts, deletes) => {
        const merged = [...puts].map((r) => ({ ...last.get(r.key), ...r }))
        for (const r of merged) last.set(r.key, r)
        await real.writeBatch(merged, deletes)
      }
    }
  })],
  ['optional fields dropped', 'every field', stateMutant((real) => ({
    writeBatch: async (puts, deletes) => { await real.writeBatch([...puts].map(({ key, url, state, lazy }) => ({ key, url, state, lazy })), deletes) }
  }))],
  ['keys folded to lower case', 'untrusted keys', stateMutant((real) => ({
    writeBatch: async (puts, deletes) => {
      await real.writeBatch([...puts].map((r) => ({ ...r, key: r.key.toLowerCase() })), [...deletes].map((k) => k.toLowerCase()))
    }
  }))],
  ['loadAll stops after its first page', '5,000 records', stateMutant((real) => ({ loadAll: (onBad) => pages(real.loadAll(onBad), 1) }))],
  ['nothing survives a reopen', 'survive close and reopen', stateMutant(() => ({}), { amnesia: true })],
  ['tombstones ignored', 'tombstone', stateMutant((real) => ({ writeBatch: async (puts, deletes) => { await real.writeBatch(puts, deletes) } }))],
  ['a record delete also clears its tombstone', 'live apart', stateMutant((real) => ({
    writeBatch: async (puts, deletes, tombstones = []) => {
      const gone = [...deletes]
      await real.writeBatch(puts, gone, [...tombstones, ...gone.map((k): [string, boolean] => [k, false])])
    }
  }))],
  ['tombstones never survive a reopen', 'tombstones survive', stateMutant(() => ({}), { amnesia: true })]
]

test('StateStore: the wrapper without a fault passes every check', async () => {
  assert.equal(await failing((t) => { stateStoreConformance(t, stateMutant(() => ({}))) }), [])
})

for (const [fault, check, factory] of stateFaults) {
  test(`StateStore: ${fault}`, async () => {
    await caught((t) => { stateStoreConformance(t, factory) }, check, fault)
  })
}

// ── Mount ──────────────────────────────────────────────────────────────────────────────────

const sample = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff)

function mountMutant (fault: (reader: MountReader) => Partial<MountReader>): Mount {
  const real = new BytesMount(sample)
  return {
    info: () => real.info(),
    stat: async (signal) => await real.stat(signal),
    serialize: () => real.serialize(),
    fetch: async (signal) => {
      const reader = await real.fetch(signal)
      return Object.assign(Object.create(reader) as MountReader, fault(reader))
    }
  }
}

const mountFaults: Array<[string, string, (reader: MountReader) => Partial<MountReader>]> = [
  ['stream(start) ignores start', 'stream(start)', (reader) => ({ stream: () => reader.stream(0) })],
  ['read past the end pads with zeros', 'read(position, length)', (reader) => ({
    read: async (position, length) => {
      const got = await (reader.read as NonNullable<MountReader['read']>)(position, length)
      const out = new Uint8Array(length)
      out.set(got)
      return out
    }
  })]
]

test('Mount: the wrapper without a fault passes every check', async () => {
  const honest = async (): Promise<MountUnderTest> => ({ mount: mountMutant(() => ({})), expected: sample, cleanup: async () => {} })
  assert.equal(await failing((t) => { mountConformance(t, honest) }), [])
})

for (const [fault, check, make] of mountFaults) {
  test(`Mount: ${fault}`, async () => {
    await caught((t) => { mountConformance(t, async () => ({ mount: mountMutant(make), expected: sample, cleanup: async () => {} })) }, check, fault)
  })
}

test.run()
