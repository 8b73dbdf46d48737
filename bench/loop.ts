/**
 * The bar (docs/PERFORMANCE.md): acquire+release cycles on available local shards, 256 callers, ≥ 250,000 per
 * second, next to the JS floor for the same API shape.
 *
 * The store: SHARDS FileMount shards of tests/fixtures/sample-v1.car, registered eagerly (so
 * they are indexed and available), then WORKERS concurrent workers each doing
 * `const a = await store.acquire(key); await a.close()` on random shards, for DURATION_MS after
 * a warm-up. Acquire and release of an available shard leave its restart form unchanged
 * (docs/CONTRACT.md), so the hot path writes nothing: a sampling phase counts the state DB's writes to
 * show it (the 'write' listener costs a clone per op, so it is never on while measuring).
 *
 * The peer, measured in the same run with the same workers: the JS floor for this API shape —
 * a `Map` of refcounts behind an async acquire (resolving to an object with an async close)
 * and that close, i.e. one awaited promise per acquire and per release and nothing else.
 *
 * Env: LOOP_SHARDS (1000), LOOP_WORKERS (256), LOOP_DURATION_MS (5000), LOOP_WARMUP_MS (5000), LOOP_SAMPLE_MS (2000).
 */
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { Level } from 'level'
import { DAGStore, FileMount, type DAGStoreOptions } from '../src/index.js'
import {
  envInt, fixture, fmt, header, note, now, report, shardKey, tempDir
} from './util.js'

const SHARDS = envInt('LOOP_SHARDS', 1000)
const WORKERS = envInt('LOOP_WORKERS', 256)
const DURATION_MS = envInt('LOOP_DURATION_MS', 5000)
// Long enough for LevelDB to finish compacting the setup's million top-level entries in the background:
// measured while it does, the figure is the setup's, not the hot path's.
const WARMUP_MS = envInt('LOOP_WARMUP_MS', 5000)
const SAMPLE_MS = envInt('LOOP_SAMPLE_MS', 2000)
const TARGET = { atLeast: 250_000 }
const KEY_WIDTH = 6

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Level<any, any>

interface PhaseResult { cycles: number, ms: number, perSec: number }

interface Acquirer { acquire: (key: string) => Promise<{ close: () => Promise<void> }> }

/**
 * WORKERS workers, each acquiring and releasing random shards until `ms` have passed. Workers
 * check the clock themselves rather than wait for a timer: a store whose cycles never leave the
 * microtask queue would starve a timer and never stop.
 */
async function runWorkers (store: Acquirer, keys: string[], ms: number): Promise<PhaseResult> {
  let cycles = 0
  const started = now()
  const deadline = started + ms
  const worker = async (): Promise<void> => {
    while (now() < deadline) {
      const key = keys[(Math.random() * keys.length) | 0] as string
      const a = await store.acquire(key)
      await a.close()
      if (now() <= deadline) cycles++
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, worker))
  const elapsed = Math.min(now() - started, ms)
  return { cycles, ms: elapsed, perSec: cycles / (elapsed / 1000) }
}

/** The floor: refcounts in a Map, one awaited promise per acquire and per release. */
class RefcountFloor implements Acquirer {
  readonly refs = new Map<string, number>()

  async acquire (key: string): Promise<{ close: () => Promise<void> }> {
    this.refs.set(key, (this.refs.get(key) ?? 0) + 1)
    let closed = false
    return {
      close: async () => {
        if (closed) return
        closed = true
        this.refs.set(key, (this.refs.get(key) ?? 1) - 1)
      }
    }
  }
}

async function measureStore (keys: string[]): Promise<{ main: PhaseResult, sampled: PhaseResult, writes: number }> {
  const { dir, cleanup } = await tempDir('dagstore-bench-loop-')
  const db: AnyDb = new Level(join(dir, 'state'))
  const store = new DAGStore({ dir, datastore: db as unknown as NonNullable<DAGStoreOptions['datastore']> })
  try {
    await store.start()
    const car = fixture('sample-v1.car')
    const t0 = now()
    await Promise.all(keys.map(async (k) => { await store.register(k, new FileMount(car)) }))
    note('setup', `${fmt(SHARDS)} shards registered + indexed in ${fmt(now() - t0)} ms (${car})`)
    const s0 = store.stats()
    if (s0.available !== SHARDS) throw new Error(`expected ${SHARDS} available shards, got ${JSON.stringify(s0)}`)

    const warm = await runWorkers(store, keys, WARMUP_MS)
    note('store warm-up', `${fmt(warm.cycles)} cycles in ${fmt(warm.ms)} ms (${fmt(warm.perSec)} cycles/s)`)
    const main = await runWorkers(store, keys, DURATION_MS)
    note('store measured', `${fmt(main.cycles)} cycles in ${fmt(main.ms)} ms, ${WORKERS} workers, ${fmt(SHARDS)} shards`)

    let writes = 0
    const onWrite = (): void => { writes++ }
    db.on('write', onWrite)
    const sampled = await runWorkers(store, keys, SAMPLE_MS)
    db.off('write', onWrite)

    const s1 = store.stats()
    if (s1.available !== SHARDS || s1.serving !== 0) throw new Error(`after the run: ${JSON.stringify(s1)}`)
    return { main, sampled, writes }
  } finally {
    await store.close()
    await db.close()
    await cleanup()
  }
}

function loadNote (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

async function main (): Promise<void> {
  header('bench/loop: acquire+release cycles on available shards')
  note('parameters', `${fmt(SHARDS)} shards, ${WORKERS} workers, ${fmt(WARMUP_MS)} ms warm-up, ${fmt(DURATION_MS)} ms measured`)
  note('load average (1/5/15 min)', loadNote())
  const keys = Array.from({ length: SHARDS }, (_, i) => shardKey(i, KEY_WIDTH))

  const store = await measureStore(keys)
  note('store sampling phase (write listener on)', `${fmt(store.sampled.perSec)} cycles/s; ${fmt(store.writes)} state DB writes in ${fmt(store.sampled.ms)} ms`)

  const floor = new RefcountFloor()
  await runWorkers(floor, keys, WARMUP_MS)
  const peer = await runWorkers(floor, keys, DURATION_MS)
  note('peer measured', `${fmt(peer.cycles)} cycles in ${fmt(peer.ms)} ms`)
  note('load average at end', loadNote())
  console.log()
  report('acquire+release', store.main.perSec, 'cycles/s',
    'Map of refcounts, one awaited promise per acquire and per release', peer.perSec, TARGET)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
