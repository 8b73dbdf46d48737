/**
 * The bar (docs/PERFORMANCE.md): "Acquire+release cycles on available local shards: ≥ 50,000 per second, durable."
 *
 * The store: SHARDS FileMount shards of tests/fixtures/sample-v1.car, registered eagerly (so
 * they are indexed and available), then WORKERS concurrent workers each doing
 * `const a = await store.acquire(key); await a.close()` on random shards, for DURATION_MS after
 * a warm-up. Every drain of the store's loop writes its dirty shard records in one LevelDB batch
 * with {sync: true} (src/storage/state/state-store.ts), so each cycle is durable: available→serving on
 * acquire, serving→available on the last release.
 *
 * The peer, measured in the same run on the same disk: a bare LevelDB (`level`) that writes the
 * very records the store writes (same keys, same JSON) with {sync: true}
 *   - in chained batches of the store's measured average batch size, one batch at a time (the group
 *     commit floor: what the store could reach if its loop cost nothing), and
 *   - as singly awaited puts (the no-group-commit floor).
 * A cycle persists 2 records, so "cycles/s equivalent" = puts/s / 2.
 *
 * The store's batch sizes are measured from outside: the store is given a `level` database at
 * exactly the path it would open by default (<dir>/state), and a 'write' listener on it counts
 * the batches. The listener makes abstract-level clone each operation, so it is attached only
 * during a separate sampling phase, never during the headline measurement.
 *
 * Env: LOOP_SHARDS (1000), LOOP_WORKERS (256), LOOP_DURATION_MS (5000), LOOP_WARMUP_MS (1500), LOOP_SAMPLE_MS (2000),
 * LOOP_PEER_MS (3000).
 */
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { Level } from 'level'
import { DAGStore, FileMount, type DAGStoreOptions } from '../src/index.js'
import {
  envInt, fixture, fmt, fmtAuto, header, note, now, report, shardKey, tempDir
} from './util.js'

const SHARDS = envInt('LOOP_SHARDS', 1000)
const WORKERS = envInt('LOOP_WORKERS', 256)
const DURATION_MS = envInt('LOOP_DURATION_MS', 5000)
const WARMUP_MS = envInt('LOOP_WARMUP_MS', 1500)
const SAMPLE_MS = envInt('LOOP_SAMPLE_MS', 2000)
const PEER_MS = envInt('LOOP_PEER_MS', 3000)
const TARGET = { atLeast: 50_000 }
const KEY_WIDTH = 6
/** Where LevelStateStore keeps records: sublevel 'shards' of the state db. */
const SUBLEVEL_PREFIX = '!shards!'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Level<any, any>

interface WriteStats { batches: number, ops: number, keyBytes: number, valueBytes: number, sizes: Map<number, number>, samples: Map<string, string> }

interface PhaseResult { cycles: number, ms: number, perSec: number }

/**
 * WORKERS workers, each acquiring and releasing random shards until `ms` have passed. Workers
 * check the clock themselves rather than wait for a timer: a store whose cycles never leave the
 * microtask queue would starve a timer and never stop.
 */
async function runWorkers (store: DAGStore, keys: string[], ms: number): Promise<PhaseResult> {
  let cycles = 0
  const started = now()
  const deadline = started + ms
  const worker = async (): Promise<void> => {
    while (now() < deadline) {
      const key = keys[(Math.random() * keys.length) | 0]
      const a = await store.acquire(key)
      await a.close()
      if (now() <= deadline) cycles++
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, worker))
  const elapsed = Math.min(now() - started, ms)
  return { cycles, ms: elapsed, perSec: cycles / (elapsed / 1000) }
}

async function measureStore (): Promise<{ main: PhaseResult, sampled: PhaseResult, writes: WriteStats, url: string }> {
  const { dir, cleanup } = await tempDir('dagstore-bench-loop-')
  const db: AnyDb = new Level(join(dir, 'state'))
  const store = new DAGStore({ dir, datastore: db as unknown as DAGStoreOptions['datastore'] })
  try {
    await store.start()
    const car = fixture('sample-v1.car')
    const keys = Array.from({ length: SHARDS }, (_, i) => shardKey(i, KEY_WIDTH))
    const t0 = now()
    await Promise.all(keys.map(async (k) => { await store.register(k, new FileMount(car)) }))
    note('setup', `${fmt(SHARDS)} shards registered + indexed in ${fmt(now() - t0)} ms (${car})`)
    const s0 = store.stats()
    if (s0.available !== SHARDS) throw new Error(`expected ${SHARDS} available shards, got ${JSON.stringify(s0)}`)

    const warm = await runWorkers(store, keys, WARMUP_MS)
    note('store warm-up', `${fmt(warm.cycles)} cycles in ${fmt(warm.ms)} ms (${fmt(warm.perSec)} cycles/s)`)
    const main = await runWorkers(store, keys, DURATION_MS)
    note('store measured', `${fmt(main.cycles)} cycles in ${fmt(main.ms)} ms, ${WORKERS} workers, ${fmt(SHARDS)} shards`)

    // Sampling phase: same workload, a 'write' listener counts the store's batches.
    const writes: WriteStats = { batches: 0, ops: 0, keyBytes: 0, valueBytes: 0, sizes: new Map(), samples: new Map() }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const onWrite = (ops: Array<{ type: string, key: unknown, value?: unknown }>): void => {
      let puts = 0
      for (const op of ops) {
        if (op.type !== 'put') continue
        puts++
        const k = String(op.key)
        const v = String(op.value)
        writes.keyBytes += Buffer.byteLength(k)
        writes.valueBytes += Buffer.byteLength(v)
        if (writes.samples.size < 4 && !writes.samples.has(v)) writes.samples.set(v, k)
      }
      if (puts === 0) return
      writes.batches++
      writes.ops += puts
      writes.sizes.set(puts, (writes.sizes.get(puts) ?? 0) + 1)
    }
    db.on('write', onWrite)
    const sampled = await runWorkers(store, keys, SAMPLE_MS)
    db.off('write', onWrite)

    const s1 = store.stats()
    if (s1.available !== SHARDS || s1.serving !== 0) throw new Error(`after the run: ${JSON.stringify(s1)}`)
    const url = new FileMount(car).serialize().href
    return { main, sampled, writes, url }
  } finally {
    await store.close()
    await db.close()
    await cleanup()
  }
}

/** The records the store writes: same key bytes (sublevel prefix included), same JSON. */
function peerRecords (url: string): { keys: string[], values: [string, string][] } {
  const keys: string[] = []
  const values: [string, string][] = []
  for (let i = 0; i < SHARDS; i++) {
    const k = shardKey(i, KEY_WIDTH)
    keys.push(SUBLEVEL_PREFIX + k)
    values.push([
      JSON.stringify({ k, u: url, s: 'serving' }),
      JSON.stringify({ k, u: url, s: 'available' })
    ])
  }
  return { keys, values }
}

/** Bare LevelDB: awaited chained batches of `size` synced puts for `ms`. Returns puts/s. */
async function peerBatches (db: AnyDb, recs: ReturnType<typeof peerRecords>, size: number, ms: number): Promise<{ puts: number, batches: number, perSec: number }> {
  let puts = 0
  let batches = 0
  let flip = 0
  const started = now()
  let elapsed = 0
  while ((elapsed = now() - started) < ms) {
    // A chained batch: the fastest plain way (abstract-level's array form normalises every op
    // object in JS, several times slower per op).
    const batch = db.batch()
    for (let j = 0; j < size; j++) {
      const i = (Math.random() * recs.keys.length) | 0
      batch.put(recs.keys[i], recs.values[i][flip++ & 1])
    }
    await batch.write({ sync: true })
    puts += size
    batches++
  }
  return { puts, batches, perSec: puts / (elapsed / 1000) }
}

/** Bare LevelDB: singly awaited synced puts for `ms`. Returns puts/s. */
async function peerSingles (db: AnyDb, recs: ReturnType<typeof peerRecords>, ms: number): Promise<{ puts: number, perSec: number }> {
  let puts = 0
  let flip = 0
  const started = now()
  let elapsed = 0
  while ((elapsed = now() - started) < ms) {
    const i = (Math.random() * recs.keys.length) | 0
    await db.put(recs.keys[i], recs.values[i][flip++ & 1], { sync: true })
    puts++
  }
  return { puts, perSec: puts / (elapsed / 1000) }
}

async function measurePeer (url: string, batchSize: number): Promise<{ batched: { puts: number, batches: number, perSec: number }, single: { puts: number, perSec: number }, recordBytes: number }> {
  const { dir, cleanup } = await tempDir('dagstore-bench-loop-peer-')
  const db: AnyDb = new Level(join(dir, 'state'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  try {
    await db.open()
    const recs = peerRecords(url)
    // Seed every key once (the store's records exist before its measured phase too).
    await db.batch(recs.keys.map((key, i) => ({ type: 'put' as const, key, value: recs.values[i][1] })), { sync: true })
    await peerBatches(db, recs, batchSize, Math.min(1000, PEER_MS / 3)) // warm-up
    const batched = await peerBatches(db, recs, batchSize, PEER_MS)
    await peerSingles(db, recs, Math.min(500, PEER_MS / 6)) // warm-up
    const single = await peerSingles(db, recs, PEER_MS)
    const recordBytes = Buffer.byteLength(recs.keys[0]) + Buffer.byteLength(recs.values[0][0])
    return { batched, single, recordBytes }
  } finally {
    await db.close()
    await cleanup()
  }
}

function loadNote (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

async function main (): Promise<void> {
  header('bench/loop: durable acquire+release cycles')
  note('parameters', `${fmt(SHARDS)} shards, ${WORKERS} workers, ${fmt(WARMUP_MS)} ms warm-up, ${fmt(DURATION_MS)} ms measured, peer ${fmt(PEER_MS)} ms per loop`)
  note('load average (1/5/15 min)', loadNote())

  const store = await measureStore()
  const w = store.writes
  const avgBatch = w.ops / Math.max(1, w.batches)
  const putsPerCycle = w.ops / Math.max(1, store.sampled.cycles)
  const topSizes = [...w.sizes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([s, n]) => `${s}×${n}`).join(', ')
  note('store sampling phase (write listener on)', `${fmt(store.sampled.perSec)} cycles/s; ${fmt(w.batches)} batches, ${fmt(w.ops)} puts in ${fmt(store.sampled.ms)} ms`)
  note('store batches', `avg ${fmtAuto(avgBatch)} puts/batch, ${fmtAuto(w.batches / (store.sampled.ms / 1000))} batches/s, ${fmtAuto(putsPerCycle)} puts/cycle; most common sizes: ${topSizes}`)
  const avgRecord = (w.keyBytes + w.valueBytes) / Math.max(1, w.ops)
  note('store record', `avg ${fmtAuto(w.valueBytes / Math.max(1, w.ops))} B value + ${fmtAuto(w.keyBytes / Math.max(1, w.ops))} B key (key incl. the sublevel prefix, as the root db sees it); e.g. ${[...w.samples.keys()][0] ?? '-'}`)

  // A store that persisted nothing in the sampling phase has no batch size to match: fall back
  // to the most a drain could hold (every worker's acquire and release).
  const batchSize = w.batches > 0 ? Math.max(1, Math.round(avgBatch)) : 2 * WORKERS
  if (w.batches === 0) note('store batches', `none observed: peer uses batches of 2 × ${WORKERS} workers = ${batchSize}`)
  const peer = await measurePeer(store.url, batchSize)
  note('peer record', `${peer.recordBytes} B (key with '${SUBLEVEL_PREFIX}' prefix + JSON value); store avg ${fmtAuto(avgRecord)} B`)
  note('peer batched', `${fmt(peer.batched.puts)} puts in ${fmt(peer.batched.batches)} batches of ${batchSize}: ${fmt(peer.batched.perSec)} puts/s, ${fmt(peer.batched.perSec / 2)} cycles/s equivalent`)
  note('peer single puts', `${fmt(peer.single.puts)} puts: ${fmt(peer.single.perSec)} puts/s, ${fmt(peer.single.perSec / 2)} cycles/s equivalent`)
  note('load average at end', loadNote())
  console.log()
  report('acquire+release (durable)', store.main.perSec, 'cycles/s',
    `bare LevelDB chained sync batches of ${batchSize} (2 puts/cycle)`, peer.batched.perSec / 2, TARGET)
  report('acquire+release (durable)', store.main.perSec, 'cycles/s',
    'bare LevelDB awaited single sync puts (2 puts/cycle)', peer.single.perSec / 2, TARGET)
  report('store puts persisted (sampling phase)', store.sampled.perSec * putsPerCycle, 'puts/s',
    `bare LevelDB chained sync batches of ${batchSize}`, peer.batched.perSec)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
