/**
 * The store's Prometheus metrics (DESIGN §7), on a prom-client Registry of its own (several
 * stores in one process must not collide in the global one). `dagstore serve` exposes it on
 * /metrics next to the server's own series.
 *
 * The op counter is on the loop's hot path (two ops per acquire+release cycle), so its
 * label children are resolved once and cached: `inc()` on a child is a field update, while
 * `inc(labels)` hashes the labels every call.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { OpType, ShardState } from './types.js'

/** 'applied': the op changed (or kept) state as the machine says; 'rejected': the caller got an error (recover of a healthy shard, acquire of an errored one, destroy in use). */
export type OpOutcome = 'applied' | 'rejected'

export interface MetricsSources {
  stats: () => Record<ShardState, number>
  /** Bytes of store-owned transients (plus reservations), when automated GC keeps count. */
  transients: () => { bytes: number, reserved: number } | undefined
}

const DURATION_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 120, 600]

export class StoreMetrics {
  readonly registry: Registry
  readonly #ops: Counter<'op' | 'outcome'>
  readonly #opChildren = new Map<string, { inc: () => void }>()
  readonly #fetchSeconds: Histogram<'outcome'>
  readonly #fetchBytes: Counter
  readonly #indexSeconds: Histogram<'outcome'>
  readonly #indexBlocks: Counter

  constructor (registry: Registry, sources: MetricsSources) {
    this.registry = registry
    const registers = [registry]
    this.#ops = new Counter({ name: 'dagstore_ops_total', help: 'Shard ops processed by the event loop, by op and outcome.', labelNames: ['op', 'outcome'], registers })
    new Gauge({ // eslint-disable-line no-new
      name: 'dagstore_shards',
      help: 'Shards by state.',
      labelNames: ['state'],
      registers,
      collect () {
        for (const [state, n] of Object.entries(sources.stats())) this.set({ state }, n)
      }
    })
    new Gauge({ // eslint-disable-line no-new
      name: 'dagstore_transients_bytes',
      help: 'Bytes of store-owned transient copies (counted when gc.maxTransientsBytes is set).',
      registers,
      collect () {
        const t = sources.transients()
        if (t !== undefined) this.set(t.bytes)
      }
    })
    new Gauge({ // eslint-disable-line no-new
      name: 'dagstore_transients_reserved_bytes',
      help: 'Bytes reserved by downloads in progress (when gc.maxTransientsBytes is set).',
      registers,
      collect () {
        const t = sources.transients()
        if (t !== undefined) this.set(t.reserved)
      }
    })
    this.#fetchSeconds = new Histogram({ name: 'dagstore_fetch_duration_seconds', help: 'Transient downloads, by outcome.', labelNames: ['outcome'], buckets: DURATION_BUCKETS, registers })
    this.#fetchBytes = new Counter({ name: 'dagstore_fetch_bytes_total', help: 'Bytes written to transients by downloads.', registers })
    this.#indexSeconds = new Histogram({ name: 'dagstore_index_duration_seconds', help: 'Indexing jobs (fetch included when streaming), by outcome.', labelNames: ['outcome'], buckets: DURATION_BUCKETS, registers })
    this.#indexBlocks = new Counter({ name: 'dagstore_index_blocks_total', help: 'Blocks indexed.', registers })
  }

  op (op: OpType, outcome: OpOutcome): void {
    const key = op + outcome
    let child = this.#opChildren.get(key)
    if (child === undefined) {
      child = this.#ops.labels(op, outcome)
      this.#opChildren.set(key, child)
    }
    child.inc()
  }

  fetched (bytes: number, seconds: number, ok: boolean): void {
    this.#fetchSeconds.labels(ok ? 'ok' : 'error').observe(seconds)
    this.#fetchBytes.inc(bytes)
  }

  indexed (blocks: number, seconds: number, ok: boolean): void {
    this.#indexSeconds.labels(ok ? 'ok' : 'error').observe(seconds)
    if (blocks > 0) this.#indexBlocks.inc(blocks)
  }
}
