/**
 * The store's Prometheus metrics (README, Metrics), on a prom-client Registry of its own (several
 * stores in one process must not collide in the global one). `dagstore serve` exposes it on
 * /metrics next to the server's own series.
 *
 * The op counter is on the loop's hot path (two ops per acquire+release cycle): it counts in
 * plain numbers and hands prom-client the difference at scrape time. prom-client's `inc` hashes
 * and validates the labels on every call (its `labels()` children too), which cost about a
 * quarter of the durable acquire+release rate in bench/loop.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { OpType, ShardState } from '../../base/types.js'
import type { SectionCacheStats } from '../../storage/remote/types.js'

/**
 * 'applied': the op changed (or kept) state as the machine says; 'rejected': the caller got an
 * error (recover of a healthy shard, acquire of an errored one, destroy in use).
 */
export type OpOutcome = 'applied' | 'rejected'

export interface MetricsSources {
  stats: () => Record<ShardState, number>
  /** Bytes of store-owned transients, reservations and the budget, when automated GC keeps count. */
  transients: () => { bytes: number, reserved: number, limit: number } | undefined
  /** The section cache of shards read in place. */
  sections: () => SectionCacheStats
}

/** A counter whose running total lives elsewhere: prom-client gets the difference at scrape time. */
function totalCounter (name: string, help: string, registers: Registry[], total: () => number): void {
  let reported = 0
  new Counter({ // eslint-disable-line no-new
    name,
    help,
    registers,
    collect () {
      const now = total()
      if (now > reported) this.inc(now - reported)
      reported = now
    }
  })
}

const DURATION_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 120, 600]

export class StoreMetrics {
  readonly registry: Registry
  /** Per op: [applied, rejected] since start. */
  readonly #opCounts = new Map<OpType, [number, number]>()
  readonly #fetchSeconds: Histogram<'outcome'>
  readonly #fetchBytes: Counter
  readonly #indexSeconds: Histogram<'outcome'>
  readonly #indexBlocks: Counter

  constructor (registry: Registry, sources: MetricsSources) {
    this.registry = registry
    const registers = [registry]
    const opCounts = this.#opCounts
    const reported = new Map<string, number>()
    new Counter({ // eslint-disable-line no-new
      name: 'dagstore_ops_total',
      help: 'Shard ops processed by the event loop, by op and outcome.',
      labelNames: ['op', 'outcome'],
      registers,
      collect () {
        for (const [op, counts] of opCounts) {
          counts.forEach((n, i) => {
            const outcome = i === 0 ? 'applied' : 'rejected'
            const key = op + ' ' + outcome
            const delta = n - (reported.get(key) ?? 0)
            if (delta > 0 || !reported.has(key)) this.inc({ op, outcome }, delta)
            reported.set(key, n)
          })
        }
      }
    })
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
    new Gauge({ // eslint-disable-line no-new
      name: 'dagstore_transients_limit_bytes',
      help: 'The transients budget, gc.maxTransientsBytes (when set).',
      registers,
      collect () {
        const t = sources.transients()
        if (t !== undefined) this.set(t.limit)
      }
    })
    this.remoteMetrics(registers, sources.sections)
    this.#fetchSeconds = new Histogram({
      name: 'dagstore_fetch_duration_seconds',
      help: 'Transient downloads, by outcome.',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers
    })
    this.#fetchBytes = new Counter({ name: 'dagstore_fetch_bytes_total', help: 'Bytes written to transients by downloads.', registers })
    this.#indexSeconds = new Histogram({
      name: 'dagstore_index_duration_seconds',
      help: 'Indexing jobs (fetch included when streaming), by outcome.',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers
    })
    this.#indexBlocks = new Counter({ name: 'dagstore_index_blocks_total', help: 'Blocks indexed.', registers })
  }

  private remoteMetrics (registers: Registry[], sections: () => SectionCacheStats): void {
    totalCounter('dagstore_remote_bytes_fetched_total', 'Bytes fetched by ranged reads of shards read in place.', registers,
      () => sections().bytesFetched)
    totalCounter('dagstore_remote_ranged_requests_total', 'Ranged reads asked of origins (a retry inside one is not another).', registers,
      () => sections().rangedRequests)
    totalCounter('dagstore_remote_cache_hits_total', 'Reads in place answered from the section cache alone.', registers, () => sections().hits)
    totalCounter('dagstore_remote_cache_misses_total', 'Reads in place that waited on a request (new or shared).', registers, () => sections().misses)
    totalCounter('dagstore_remote_cache_evictions_total', 'Sections evicted from the section cache.', registers, () => sections().evictions)
    const gauges: Array<[string, string, (s: SectionCacheStats) => number]> = [
      ['dagstore_remote_cache_bytes', 'Bytes held in the section cache.', (s) => s.cachedBytes],
      ['dagstore_remote_cache_limit_bytes', 'The section cache budget (remote.cacheBytes).', (s) => s.cacheBytes],
      ['dagstore_remote_inflight_requests', 'Ranged requests in flight.', (s) => s.inFlightRequests],
      ['dagstore_remote_inflight_bytes', 'Bytes reserved by ranged requests in flight.', (s) => s.inFlightBytes],
      ['dagstore_remote_read_ahead_bytes', 'Current read-ahead of the open streams, summed.', (s) => s.readAheadBytes]
    ]
    for (const [name, help, pick] of gauges) {
      new Gauge({ name, help, registers, collect () { this.set(pick(sections())) } }) // eslint-disable-line no-new
    }
    new Gauge({ // eslint-disable-line no-new
      name: 'dagstore_remote_source_bytes_fetched',
      help: 'Bytes fetched per source read in place (URL shown redacted), for the sources the cache knows now.',
      labelNames: ['source'],
      registers,
      collect () {
        this.reset()
        for (const s of sections().sources) this.set({ source: s.label }, s.bytesFetched)
      }
    })
  }

  op (op: OpType, outcome: OpOutcome): void {
    let counts = this.#opCounts.get(op)
    if (counts === undefined) {
      counts = [0, 0]
      this.#opCounts.set(op, counts)
    }
    counts[outcome === 'applied' ? 0 : 1]++
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
