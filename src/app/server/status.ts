/**
 * GET /status: what the status page shows at a glance — shards by state, transients against
 * their budget, and a short series of rates (ops/s, requests/s, bytes sent/s) sampled by the
 * server, so a page opened now already plots the last minutes.
 */
import type { Registry } from 'prom-client'
import type { DAGStore } from '../../engine/store.js'
import type { ShardState } from '../../base/types.js'

/** Rates over the sampling interval that ended at `t` (ms since the epoch). */
export interface RatePoint { t: number, ops: number, requests: number, bytes: number }

export interface StatusJson {
  /** ms since the epoch, when this answer was made. */
  time: number
  /** Shards by state, as the store keeps them (O(1)). */
  counts: Record<ShardState, number>
  shards: number
  /** Store-owned transients against gc.maxTransientsBytes; null without that budget (nothing counts them). */
  transients: { bytes: number, reservedBytes: number, limitBytes: number } | null
  /** Ops the store's loop processed since the store started; requests answered and bytes sent since the server did. */
  totals: { ops: number, requests: number, bytesSent: number }
  /** Oldest first; at most RATE_POINTS. */
  rates: { intervalMs: number, points: RatePoint[] }
  /** This node's name when the store is part of a cluster (counts and shards are its own). */
  node?: string
}

/** The server's own counters (the store counts its ops). */
export interface ServerCounters {
  requests: () => number
  bytesSent: () => number
}

/** 150 points: five minutes at the default 2 s. */
export const RATE_POINTS = 150

interface Sample { t: number, ops: number, requests: number, bytes: number }

/** Sums a metric's values; 0 when it is not registered. get() runs the metric's collect(), so the figures are current. */
async function metricValue (registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) return 0
  const { values } = await metric.get()
  return values.reduce((sum, v) => sum + v.value, 0)
}

export class StatusSampler {
  readonly intervalMs: number
  readonly #store: DAGStore
  readonly #counters: ServerCounters
  readonly #points: RatePoint[] = []
  #last: Sample | undefined
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  readonly #onError: (err: unknown, context: string) => void

  constructor (store: DAGStore, counters: ServerCounters, intervalMs: number, onError: (err: unknown, context: string) => void) {
    this.#store = store
    this.#counters = counters
    this.intervalMs = intervalMs
    this.#onError = onError
  }

  start (): void {
    void this.#tick()
  }

  stop (): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }

  async status (): Promise<StatusJson> {
    // First: throws StoreClosedError (503) once the store is closed.
    const counts = this.#store.stats()
    const registry = this.#store.metrics
    const limitBytes = await metricValue(registry, 'dagstore_transients_limit_bytes')
    const transients = limitBytes > 0
      ? {
          bytes: await metricValue(registry, 'dagstore_transients_bytes'),
          reservedBytes: await metricValue(registry, 'dagstore_transients_reserved_bytes'),
          limitBytes
        }
      : null
    const out: StatusJson = {
      time: Date.now(),
      counts,
      shards: Object.values(counts).reduce((a, b) => a + b, 0),
      transients,
      totals: { ops: await this.#ops(), requests: this.#counters.requests(), bytesSent: this.#counters.bytesSent() },
      rates: { intervalMs: this.intervalMs, points: [...this.#points] }
    }
    const node = this.#store.node
    if (node !== undefined) out.node = node
    return out
  }

  async #ops (): Promise<number> {
    return await metricValue(this.#store.metrics, 'dagstore_ops_total')
  }

  /** One sample, then the next timer: a slow read never overlaps the following one. */
  async #tick (): Promise<void> {
    try {
      await this.#sample()
    } catch (err) {
      this.#onError(err, 'status sampler')
    }
    if (this.#stopped) return
    this.#timer = setTimeout(() => { void this.#tick() }, this.intervalMs)
    // The sampler never keeps a process alive by itself.
    this.#timer.unref()
  }

  async #sample (): Promise<void> {
    const sample: Sample = { t: Date.now(), ops: await this.#ops(), requests: this.#counters.requests(), bytes: this.#counters.bytesSent() }
    const last = this.#last
    if (last !== undefined && sample.t > last.t) {
      const seconds = (sample.t - last.t) / 1000
      const rate = (now: number, before: number): number => Math.max(0, now - before) / seconds
      this.#points.push({
        t: sample.t,
        ops: rate(sample.ops, last.ops),
        requests: rate(sample.requests, last.requests),
        bytes: rate(sample.bytes, last.bytes)
      })
      if (this.#points.length > RATE_POINTS) this.#points.shift()
    }
    this.#last = sample
  }
}
