/**
 * The all-shards blockstore's cache of acquired shards: an LRU of at most `maxAccessors`
 * leases, each released after `ttlMs` idle, on eviction, or when the cache closes — but never
 * while a get still uses it. Concurrent first users of a shard share one acquire.
 */
import type { ShardIndex } from '../base/index-types.js'
import type { ShardAccessor, ShardKey } from '../base/types.js'

export interface Lease {
  readonly key: ShardKey
  accessor: ShardAccessor | undefined
  /** The shard's full index, when the source offers it: a synchronous "does it hold this?". */
  index: ShardIndex | undefined
  /** The acquire every concurrent first user of the shard waits on. */
  ready: Promise<void>
  /** Gets (and allKeys iterations) using the accessor right now: it is closed only at 0. */
  users: number
  /** Out of the cache; closed when its last user finishes. */
  evicted: boolean
  closed: boolean
  expiresAt: number
  closing?: Promise<void>
  onClosed?: Array<() => void> | undefined
}

export interface LeaseCacheOptions {
  acquire: (key: ShardKey) => Promise<ShardAccessor>
  /** Lets holders be found in cached shards without a top-level lookup. */
  indexOf: ((key: ShardKey) => Promise<ShardIndex>) | undefined
  maxAccessors: number
  ttlMs: number
  report: (err: unknown, context: string) => void
}

export class LeaseCache {
  private readonly options: LeaseCacheOptions
  /** Map order is the LRU order: a use moves the entry to the end. */
  private readonly entries = new Map<ShardKey, Lease>()
  /** Leases whose accessor is (or is being) acquired and not yet released, cached or not. */
  private readonly live = new Set<Lease>()
  private drained: Array<() => void> = []
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor (options: LeaseCacheOptions) {
    this.options = options
  }

  has (key: ShardKey): boolean {
    return this.entries.has(key)
  }

  /** Keys of the shards cached right now, least recently used first. */
  keys (): ShardKey[] {
    return [...this.entries.keys()]
  }

  /** A cached, acquired shard whose index holds `multihash`. */
  holderOf (multihash: Uint8Array): Lease | undefined {
    if (this.entries.size === 0) return undefined
    for (const entry of this.entries.values()) {
      if (entry.index !== undefined && entry.accessor !== undefined && entry.index.get(multihash) !== undefined) return entry
    }
    return undefined
  }

  /** Takes a use of a cached lease: most recently used moves to the end. */
  touch (entry: Lease): void {
    this.entries.delete(entry.key)
    this.entries.set(entry.key, entry)
    entry.users++
  }

  /** A use of `key`'s lease, acquiring the shard when it is not cached; give it back with unlease(). */
  async lease (key: ShardKey): Promise<Lease> {
    let entry = this.entries.get(key)
    if (entry !== undefined) {
      this.touch(entry)
    } else {
      const fresh: Lease = {
        key, accessor: undefined, index: undefined, ready: Promise.resolve(), users: 1, evicted: false, closed: false, expiresAt: 0
      }
      fresh.ready = this.options.acquire(key).then(async (accessor) => {
        fresh.accessor = accessor
        fresh.index = await this.options.indexOf?.(key).catch(() => undefined)
      }, (err: unknown) => {
        // Nothing was acquired: forget the entry so the next get tries again.
        if (this.entries.get(key) === fresh) this.entries.delete(key)
        fresh.evicted = true
        this.finish(fresh)
        throw err
      })
      entry = fresh
      this.entries.set(key, entry)
      this.live.add(entry)
      this.trim()
    }
    if (entry.accessor === undefined) {
      try {
        await entry.ready
      } catch (err) {
        entry.users--
        throw err
      }
    }
    return entry
  }

  unlease (entry: Lease): void {
    if (--entry.users > 0) return
    if (entry.evicted) {
      this.closeEntry(entry)
    } else if (this.options.ttlMs === 0) {
      this.evict(entry)
    } else if (this.options.ttlMs !== Number.POSITIVE_INFINITY) {
      entry.expiresAt = Date.now() + this.options.ttlMs
      this.scheduleSweep()
    }
  }

  /** Out of the cache; released once nobody uses it. */
  evict (entry: Lease): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key)
    if (entry.evicted) return
    entry.evicted = true
    if (entry.users === 0) this.closeEntry(entry)
  }

  /** Evicts `key`'s lease and resolves when it is released; at once when nothing is cached. */
  async evictKey (key: ShardKey): Promise<void> {
    const entry = this.entries.get(key)
    if (entry === undefined) return
    const done = this.whenClosed(entry)
    this.evict(entry)
    await done
  }

  /** Idempotent. Evicts every lease and resolves when all are released (those in use once their gets finish). */
  async close (): Promise<void> {
    if (!this.closed) {
      this.closed = true
      clearTimeout(this.timer)
      this.timer = undefined
      for (const entry of [...this.entries.values()]) this.evict(entry)
    }
    if (this.live.size > 0) await new Promise<void>((resolve) => { this.drained.push(resolve) })
  }

  private trim (): void {
    while (this.entries.size > this.options.maxAccessors) {
      const oldest = this.entries.values().next().value as Lease
      this.evict(oldest)
    }
  }

  /** Releases the accessor exactly once, and only when nobody uses it. */
  private closeEntry (entry: Lease): void {
    if (entry.closed) return
    entry.closed = true
    const accessor = entry.accessor
    if (accessor === undefined) {
      this.finish(entry)
      return
    }
    entry.closing = accessor.close()
      .catch((err: unknown) => { this.options.report(err, `releasing shard ${JSON.stringify(entry.key)} failed`) })
      .finally(() => { this.finish(entry) })
  }

  private finish (entry: Lease): void {
    entry.closed = true
    for (const resolve of entry.onClosed ?? []) resolve()
    entry.onClosed = undefined
    this.live.delete(entry)
    if (this.live.size === 0 && this.drained.length > 0) {
      const waiters = this.drained
      this.drained = []
      for (const resolve of waiters) resolve()
    }
  }

  private async whenClosed (entry: Lease): Promise<void> {
    if (!this.live.has(entry)) return
    await new Promise<void>((resolve) => { (entry.onClosed ??= []).push(resolve) })
  }

  // One timer for the earliest expiry, unref'd: an idle cache never keeps the process alive.
  private scheduleSweep (): void {
    if (this.timer !== undefined || this.closed) return
    let earliest = Number.POSITIVE_INFINITY
    for (const entry of this.entries.values()) {
      if (entry.users === 0 && entry.expiresAt < earliest) earliest = entry.expiresAt
    }
    if (earliest === Number.POSITIVE_INFINITY) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.sweep()
    }, Math.max(0, earliest - Date.now()) + 1)
    this.timer.unref()
  }

  private sweep (): void {
    const now = Date.now()
    for (const entry of [...this.entries.values()]) {
      if (entry.users === 0 && entry.expiresAt <= now) this.evict(entry)
    }
    this.scheduleSweep()
  }
}
