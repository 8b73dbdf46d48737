/**
 * The stream buffer (docs/REMOTE.md): one per store, shared by every source read in place.
 *
 * One budget, `cacheBytes`, bounds the cached entries, the buffers of requests in flight and
 * the spare section buffers kept for reuse together, at all times: a request reserves its
 * bytes before it starts; when they do not fit, spare buffers are let go, then cached entries
 * are evicted (those of sources closed longer than `keepAfterCloseMs` first,
 * then least recently used), and if that is not enough it waits, first come first served,
 * for requests in flight to finish.
 */
import { stoppedBy } from './flight.js'
import { resolveCacheOptions, type ResolvedCacheOptions, type SectionCacheOptions } from './options.js'
import { Source, type CacheCore, type Entry } from './source.js'
import type { SectionCacheStats, SourceSpec } from './types.js'

interface Waiter { bytes: number, resolve: () => void, reject: (err: Error) => void, signal: AbortSignal, onAbort: () => void }

export class SectionCache {
  readonly #o: ResolvedCacheOptions
  readonly #sources = new Map<string, Source>()
  /** Every cached entry, least recently used first (a Set keeps insertion order; touching re-inserts). */
  readonly #lru = new Set<Entry>()
  readonly #queue: Waiter[] = []
  readonly #core: CacheCore
  #cached = 0
  #reserved = 0
  #requests = 0
  #hits = 0
  #misses = 0
  #evictions = 0
  #readAhead = 0
  /** Section buffers given back, for the next sections to arrive in (see #giveBuffer). */
  readonly #free: Uint8Array[] = []
  /** While #makeRoom evicts: the bytes it makes room for (an evicted entry's buffer must not take that room). */
  #makingRoomFor = 0
  /** Counters of sources the cache has forgotten, so totals never go backwards. */
  #gone = { bytesFetched: 0, rangedRequests: 0 }

  constructor (options: SectionCacheOptions = {}) {
    this.#o = resolveCacheOptions(options)
    const cache = this
    this.#core = {
      sectionBytes: this.#o.sectionBytes,
      cacheBytes: this.#o.cacheBytes,
      reserve: async (bytes, signal) => { await cache.#reserve(bytes, signal) },
      tryReserve: (bytes) => cache.#tryReserve(bytes),
      release: (bytes) => { cache.#reserved -= bytes; cache.#pump() },
      takeBuffer: () => cache.#free.pop() ?? new Uint8Array(cache.#o.sectionBytes),
      giveBuffer: (buffer) => { cache.#giveBuffer(buffer) },
      store: (entry) => { cache.#store(entry) },
      touch: (entry) => { cache.#lru.delete(entry); cache.#lru.add(entry) },
      drop: (entry) => { cache.#evict(entry); cache.#pump() },
      counted: (hit) => { if (hit) cache.#hits++; else cache.#misses++ },
      requestStarted: () => { cache.#requests++ },
      requestEnded: () => { cache.#requests-- },
      settled: (source) => { cache.#forgetIfIdle(source) }
    }
  }

  get sectionBytes (): number {
    return this.#o.sectionBytes
  }

  get cacheBytes (): number {
    return this.#o.cacheBytes
  }

  get maxReadAheadBytes (): number {
    return this.#o.maxReadAheadBytes
  }

  /** Opens (or reopens, keeping what is cached) the source `spec.key` for one more reader. */
  open (spec: SourceSpec): Source {
    let source = this.#sources.get(spec.key)
    if (source === undefined) {
      source = new Source(spec, this.#core)
      this.#sources.set(spec.key, source)
    }
    source.refs++
    source.transport ??= spec.transport()
    return source
  }

  /** One reader of `source` is done; the last one lets go of the transport and starts the keep-after-close clock. */
  async close (source: Source): Promise<void> {
    source.refs--
    if (source.refs > 0) return
    source.closedAt = this.#o.clock()
    const transport = source.transport
    source.transport = undefined
    this.#forgetIfIdle(source)
    await transport?.close()
  }

  /**
   * Drops what is cached of `source` (its bytes are not what they were: the origin changed):
   * requests in flight finish for their readers, nothing of it is served from the cache again.
   */
  discard (source: Source): void {
    for (const entries of [source.sections, source.extents]) {
      for (const entry of [...entries.values()]) this.#evict(entry)
    }
    this.#pump()
  }

  /** A stream's read-ahead changed by `delta` bytes. */
  readAheadChanged (delta: number): void {
    this.#readAhead += delta
  }

  stats (): SectionCacheStats {
    let bytesFetched = this.#gone.bytesFetched
    let rangedRequests = this.#gone.rangedRequests
    const sources = []
    for (const s of this.#sources.values()) {
      bytesFetched += s.bytesFetched
      rangedRequests += s.rangedRequests
      sources.push(s.stats())
    }
    return {
      cacheBytes: this.#o.cacheBytes,
      cachedBytes: this.#cached,
      inFlightRequests: this.#requests,
      inFlightBytes: this.#reserved,
      pooledBytes: this.#free.length * this.#o.sectionBytes,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      readAheadBytes: this.#readAhead,
      bytesFetched,
      rangedRequests,
      sources
    }
  }

  async #reserve (bytes: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw stoppedBy(signal)
    if (this.#tryReserve(bytes)) return
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#queue.indexOf(waiter)
          if (i >= 0) this.#queue.splice(i, 1)
          reject(stoppedBy(signal))
          // The head may have been what held the others back.
          this.#pump()
        }
      }
      signal.addEventListener('abort', waiter.onAbort, { once: true })
      this.#queue.push(waiter)
    })
  }

  #tryReserve (bytes: number): boolean {
    if (this.#queue.length > 0 || !this.#makeRoom(bytes)) return false
    this.#reserved += bytes
    return true
  }

  /** Grants waiting reservations, in order, while they fit. */
  #pump (): void {
    for (let head = this.#queue[0]; head !== undefined && this.#makeRoom(head.bytes); head = this.#queue[0]) {
      this.#queue.shift()
      this.#reserved += head.bytes
      head.signal.removeEventListener('abort', head.onAbort)
      head.resolve()
    }
  }

  /** Evicts until `bytes` more fit; false (evicting nothing) when even an empty cache would not make room. */
  #makeRoom (bytes: number): boolean {
    const cap = this.#o.cacheBytes
    const section = this.#o.sectionBytes
    const fits = (): boolean => this.#cached + this.#reserved + this.#free.length * section + bytes <= cap
    if (fits()) return true
    if (this.#reserved + bytes > cap) return false
    // Spare section buffers first: they hold nothing anyone reads.
    while (this.#free.length > 0 && !fits()) this.#free.pop()
    if (fits()) return true
    this.#makingRoomFor = bytes
    try {
      return this.#evictUntil(fits)
    } finally {
      this.#makingRoomFor = 0
    }
  }

  /** Evicts, sources closed longer than keepAfterCloseMs first, then least recently used, until `fits()`. */
  #evictUntil (fits: () => boolean): boolean {
    const now = this.#o.clock()
    for (const source of this.#sources.values()) {
      if (source.refs > 0 || now - source.closedAt < this.#o.keepAfterCloseMs) continue
      for (const entries of [source.sections, source.extents]) {
        for (const entry of entries.values()) {
          this.#evict(entry)
          if (fits()) return true
        }
      }
    }
    for (const entry of this.#lru) {
      this.#evict(entry)
      if (fits()) return true
    }
    return fits()
  }

  /**
   * Keeps a section buffer for reuse, up to a stream's read-ahead and a little more: new
   * memory for every section would be page faults, and buffers the collector must find dead
   * (docs/REMOTE.md). Beyond that the buffer is left to the collector.
   */
  #giveBuffer (buffer: Uint8Array): void {
    const section = this.#o.sectionBytes
    const keep = Math.ceil(this.#o.maxReadAheadBytes / section) + 2
    // Kept buffers count against the budget like cached bytes, and are the first to go.
    const fits = this.#cached + this.#reserved + this.#makingRoomFor + (this.#free.length + 1) * section <= this.#o.cacheBytes
    if (buffer.byteLength === section && this.#free.length < keep && fits) this.#free.push(buffer)
  }

  #evict (entry: Entry): void {
    const { source } = entry
    const n = entry.data.byteLength
    this.#lru.delete(entry)
    if (typeof entry.slot === 'number') source.sections.delete(entry.slot)
    else source.extents.delete(entry.slot)
    source.cachedBytes -= n
    this.#cached -= n
    // After the bytes left the count: the buffer may then stay as a spare in their room.
    entry.recycle?.()
    this.#evictions++
    this.#forgetIfIdle(source)
  }

  #store (entry: Entry): void {
    const { source } = entry
    const n = entry.data.byteLength
    this.#reserved -= n
    const slots: Map<number | string, Entry> = typeof entry.slot === 'number' ? source.sections : source.extents
    if (!slots.has(entry.slot)) {
      slots.set(entry.slot, entry)
      this.#lru.add(entry)
      source.cachedBytes += n
      this.#cached += n
    } else {
      entry.recycle?.()
    }
    // Now evictable, or released: either way a waiter may fit.
    this.#pump()
  }

  /** A source nobody reads, with nothing cached and nothing in flight, is forgotten. */
  #forgetIfIdle (source: Source): void {
    if (source.refs > 0 || source.cachedBytes > 0 || source.flights.size > 0) return
    if (this.#sources.get(source.key) !== source) return
    this.#sources.delete(source.key)
    this.#gone.bytesFetched += source.bytesFetched
    this.#gone.rangedRequests += source.rangedRequests
  }
}
