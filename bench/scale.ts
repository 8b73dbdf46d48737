/**
 * The bar (docs/PERFORMANCE.md): "1,000,000 registered shards in one process: ≤ 250 bytes of heap per shard;
 * restart (load all records) ≤ 3 s; register 1,000,000 lazy shards ≤ 30 s."
 *
 * Run with `node --expose-gc` (heap is read after forced full GCs).
 *
 * 1. Heap floor (peer for heap/shard): a bare Map<key, url string> holding exactly the two
 *    strings every shard must keep (its key and its mount URL), built the same way.
 * 2. Register SCALE_SHARDS (default 1,000,000) lazy shards, keys `shard-0000001`…, each with its
 *    own FileMount path (`/data/cars/<key>.car`; lazy registration never touches the mount),
 *    issued with registerShard(…, { lazy: true }) in windows of SCALE_WINDOW (10,000) calls,
 *    each window awaiting its callbacks. Heap/shard = (heapUsed after GC − heapUsed after
 *    start() on the empty store) / shards.
 *    Peer (a): a bare LevelDB writing the same number of records of the same size (the store's
 *    exact key and JSON) in chained sync batches of SCALE_WINDOW: the persistence floor.
 * 3. close(), then a new store on the same dir: start() time (opens LevelDB, loads every record)
 *    and heap/shard again; stats().new must equal the count.
 *    Peer (b): open the peer's LevelDB (written and closed in (a), so it too replays its log)
 *    and read every record with iterator.nextv(4096): the floor for restart.
 *
 * Env: SCALE_SHARDS (1000000), SCALE_WINDOW (10000).
 */
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { Level } from 'level'
import { DAGStore, FileMount } from '../src/index.js'
import {
  envInt, fmt, fmtAuto, fmtBytes, header, note, now, registerLazy, report, settledHeap, shardKey, tempDir
} from './util.js'

const SHARDS = envInt('SCALE_SHARDS', 1_000_000)
const WINDOW = envInt('SCALE_WINDOW', 10_000)
const KEY_WIDTH = 7
const SUBLEVEL_PREFIX = '!shards!'
const TARGET_HEAP = { atMost: 250 }
const TARGET_RESTART_MS = { atMost: 3_000 }
const TARGET_REGISTER_MS = { atMost: 30_000 }

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Level<any, any>

function keyOf (i: number): string {
  return shardKey(i + 1, KEY_WIDTH)
}

function pathOf (key: string): string {
  return `/data/cars/${key}.car`
}

/** What LevelStateStore writes for a lazily registered FileMount shard (src/storage/state/record.ts). */
function recordOf (key: string): string {
  return JSON.stringify({ k: key, u: `file://${pathOf(key)}`, s: 'new', l: 1 })
}

/** Peer: the two strings every shard must keep, in a bare Map. Returns bytes/shard. */
async function heapFloor (): Promise<number> {
  const base = await settledHeap()
  let map: Map<string, string> | undefined = new Map()
  for (let i = 0; i < SHARDS; i++) {
    const key = keyOf(i)
    map.set(key, new FileMount(pathOf(key)).serialize().href)
  }
  const used = await settledHeap()
  const size = map.size
  map = undefined
  await settledHeap()
  return (used - base) / size
}

/** Registers every shard lazily, WINDOW calls at a time, each window awaiting its callbacks. */
async function registerAll (store: DAGStore): Promise<void> {
  await registerLazy(store, SHARDS, WINDOW, keyOf, pathOf)
}

/** Peer (a): SHARDS records of the store's shape, in chained sync batches of WINDOW. */
async function peerWrite (location: string): Promise<number> {
  const db: AnyDb = new Level(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  await db.open()
  try {
    const t0 = now()
    for (let start = 0; start < SHARDS; start += WINDOW) {
      const end = Math.min(SHARDS, start + WINDOW)
      // A chained batch: abstract-level's array form normalises every op object in JS and is
      // several times slower; the floor is the fastest plain way to write these records.
      const batch = db.batch()
      for (let i = start; i < end; i++) {
        const key = keyOf(i)
        batch.put(SUBLEVEL_PREFIX + key, recordOf(key))
      }
      await batch.write({ sync: true })
    }
    return now() - t0
  } finally {
    await db.close()
  }
}

/** Peer (b): open the peer db and read every record with nextv. */
async function peerLoad (location: string): Promise<{ ms: number, openMs: number, count: number }> {
  const t0 = now()
  const db: AnyDb = new Level(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  await db.open()
  const openMs = now() - t0
  let count = 0
  try {
    const it = db.iterator({ gte: SUBLEVEL_PREFIX, lt: '!shards"' })
    try {
      for (;;) {
        const entries = await it.nextv(4096)
        if (entries.length === 0) break
        count += entries.length
      }
    } finally {
      await it.close()
    }
    return { ms: now() - t0, openMs, count }
  } finally {
    await db.close()
  }
}

function loadNote (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

async function main (): Promise<void> {
  header('bench/scale: 1M lazy shards — register, heap, restart')
  note('parameters', `${fmt(SHARDS)} shards, windows of ${fmt(WINDOW)}; load average (1/5/15 min) ${loadNote()}`)
  const { dir, cleanup } = await tempDir('dagstore-bench-scale-')
  try {
    // Heap floor first, while the heap is small.
    const floor = await heapFloor()
    note('peer heap floor', `${fmtAuto(floor)} B/shard (Map<key, mount URL> of the same strings)`)

    // 1. Register.
    const storeDir = join(dir, 'store')
    let store: DAGStore | undefined = new DAGStore({ dir: storeDir })
    await store.start()
    const base = await settledHeap()
    const t0 = now()
    await registerAll(store)
    const registerMs = now() - t0
    const counted = store.stats()
    if (counted.new !== SHARDS) throw new Error(`after register: stats().new = ${counted.new}, expected ${SHARDS}`)
    const heapRegistered = await settledHeap()
    const perShardRegistered = (heapRegistered - base) / SHARDS
    note('store register', `${fmt(SHARDS)} lazy shards in ${fmt(registerMs)} ms (${fmt(SHARDS / (registerMs / 1000))} registers/s); heap ${fmtBytes(base)} → ${fmtBytes(heapRegistered)}`)
    const c0 = now()
    await store.close()
    note('store close', `${fmt(now() - c0)} ms`)
    store = undefined

    // Peer (a) then (b): written and closed, then reopened and read, like the store's db.
    const peerDir = join(dir, 'peer')
    const peerWriteMs = await peerWrite(peerDir)
    note('peer (a) LevelDB batch-put', `${fmt(SHARDS)} records (${Buffer.byteLength(SUBLEVEL_PREFIX + keyOf(0)) + Buffer.byteLength(recordOf(keyOf(0)))} B each, e.g. ${recordOf(keyOf(0))}) in chained sync batches of ${fmt(WINDOW)}: ${fmt(peerWriteMs)} ms (${fmt(SHARDS / (peerWriteMs / 1000))} puts/s)`)
    const peerRead = await peerLoad(peerDir)
    if (peerRead.count !== SHARDS) throw new Error(`peer read ${peerRead.count} records, expected ${SHARDS}`)
    note('peer (b) LevelDB open + nextv', `${fmt(peerRead.count)} records in ${fmt(peerRead.ms)} ms (open ${fmt(peerRead.openMs)} ms)`)

    // 2. Restart on the same dir.
    const base2 = await settledHeap()
    const restarted = new DAGStore({ dir: storeDir })
    const r0 = now()
    await restarted.start()
    const restartMs = now() - r0
    const stats = restarted.stats()
    const heapRestarted = await settledHeap()
    const perShardRestarted = (heapRestarted - base2) / SHARDS
    note('store restart', `start() loaded ${fmt(stats.new)} shards in ${fmt(restartMs)} ms; heap ${fmtBytes(base2)} → ${fmtBytes(heapRestarted)}`)
    if (stats.new !== SHARDS) throw new Error(`after restart: stats().new = ${stats.new}, expected ${SHARDS}`)
    note('verified', `stats().new === ${fmt(SHARDS)} after restart: ok`)
    await restarted.close()
    note('load average at end', loadNote())

    console.log()
    const scaleTo1M = 1_000_000 / SHARDS
    const registerTarget = { atMost: TARGET_REGISTER_MS.atMost / scaleTo1M }
    const restartTarget = { atMost: TARGET_RESTART_MS.atMost / scaleTo1M }
    if (SHARDS !== 1_000_000) note('note', `targets scaled linearly to ${fmt(SHARDS)} shards (quick run; the bars are for 1,000,000)`)
    report(`register ${fmt(SHARDS)} lazy shards`, registerMs, 'ms', 'bare LevelDB chained sync batch-put, same records', peerWriteMs, registerTarget)
    report('heap per shard after register', perShardRegistered, 'B', 'Map<key, URL> floor', floor, TARGET_HEAP)
    report(`restart: start() loading ${fmt(SHARDS)} shards`, restartMs, 'ms',
      'bare LevelDB open + nextv(4096) over the same records', peerRead.ms, restartTarget)
    report('heap per shard after restart', perShardRestarted, 'B', 'Map<key, URL> floor', floor, TARGET_HEAP)
  } finally {
    await cleanup()
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
