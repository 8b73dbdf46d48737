import { DAGStoreError } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'
import { ReaderClosedError, RemoteReadTooLargeError } from './errors.js'
import { Flight, waitFor } from './flight.js'
import type { RangeTransport, SourceSpec, SourceStats } from './types.js'
import { copyChunks, joinChunks, type Chunks } from './chunks.js'

/** Bytes of a source the cache holds: an aligned section (slot = its index) or an exact random get (slot = `${start}:${length}`). */
export interface Entry {
  readonly source: Source
  readonly start: number
  readonly data: Chunks
  readonly slot: number | string
  /**
   * For an entry whose data lies in one of the cache's reusable buffers (a section): called
   * once when the entry leaves the cache, to give the buffer back.
   */
  readonly recycle?: (() => void) | undefined
}

/** What a source asks of the cache it lives in: the budget, the LRU order and the counters. */
export interface CacheCore {
  readonly sectionBytes: number
  readonly cacheBytes: number
  /** Waits, in FIFO order, until `bytes` fit (evicting cached entries as needed). */
  reserve: (bytes: number, signal: AbortSignal) => Promise<void>
  /** Reserves `bytes` if they fit now and nobody is waiting; never waits. */
  tryReserve: (bytes: number) => boolean
  release: (bytes: number) => void
  /**
   * A section-sized buffer to receive a section, and its return. A buffer given back may be
   * handed out again only when bytes arrive (an I/O callback), never in the same turn: whoever
   * read an entry's data copies it before awaiting anything, and so never sees it overwritten.
   */
  takeBuffer: () => Uint8Array
  giveBuffer: (buffer: Uint8Array) => void
  /** Turns the entry's reservation into cached bytes. */
  store: (entry: Entry) => void
  touch: (entry: Entry) => void
  /** Drops a cached entry now (a section a lone stream of a big source has passed). */
  drop: (entry: Entry) => void
  counted: (hit: boolean) => void
  requestStarted: () => void
  requestEnded: () => void
  settled: (source: Source) => void
}

/** A section a stream asked for: its bytes when cached, else a flight it has joined (and must leave). */
export type SectionAnswer = { data: Chunks } | { flight: Flight }

/**
 * One version of one origin (URL + validator): its cached entries and its requests in flight,
 * shared by all its readers. `refs` counts open readers; the transport lives while refs > 0.
 */
export class Source {
  readonly key: string
  readonly label: string
  readonly size: number
  refs = 0
  /** When the last reader closed (the cache's clock). */
  closedAt = 0
  transport: RangeTransport | undefined
  readonly sections = new Map<number, Entry>()
  readonly extents = new Map<string, Entry>()
  readonly flights = new Set<Flight>()
  bytesFetched = 0
  rangedRequests = 0
  cachedBytes = 0
  readonly #core: CacheCore

  constructor (spec: SourceSpec, core: CacheCore) {
    this.key = spec.key
    this.label = spec.label
    this.size = spec.size
    this.#core = core
  }

  /**
   * Exactly the bytes [position, position + length) (fewer only at the end of the source):
   * from cached sections and flights that cover them, and one request of their own for the rest.
   */
  async read (position: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
    const core = this.#core
    const end = Math.min(this.size, position + length)
    if (end <= position) return new Uint8Array(0)
    const n = end - position
    if (n > core.cacheBytes) throw new RemoteReadTooLargeError(`a read of ${n} bytes from ${this.label} exceeds remote.cacheBytes (${core.cacheBytes})`)
    const exact = this.extents.get(`${position}:${n}`)
    if (exact !== undefined) {
      core.touch(exact)
      core.counted(true)
      return joinChunks(exact.data)
    }
    const pieces: Array<{ start: number, data?: Chunks, flight?: Flight }> = []
    for (let x = position; x < end;) {
      const section = this.sections.get(Math.floor(x / core.sectionBytes))
      if (section !== undefined) {
        core.touch(section)
        pieces.push({ start: section.start, data: section.data })
        x = section.start + section.data.byteLength
        continue
      }
      const flight = this.#covering(x)
      if (flight !== undefined) {
        pieces.push({ start: flight.start, flight })
        x = flight.end
        continue
      }
      pieces.push({ start: x, flight: this.#fly(x, end, `${x}:${end - x}`, false) })
      x = end
    }
    core.counted(pieces.every((p) => p.flight === undefined))
    for (const p of pieces) p.flight?.join()
    try {
      const out = new Uint8Array(n)
      // Cached bytes first, before any await (see CacheCore.takeBuffer).
      for (const p of pieces) if (p.data !== undefined) copyChunks(p.data, p.start, out, position, end)
      for (const p of pieces) {
        if (p.flight === undefined) continue
        // Only the pieces this read overlaps, each copied as soon as it has arrived.
        const flight = p.flight
        const size = flight.pieceBytes
        const first = Math.floor((Math.max(position, flight.start) - flight.start) / size)
        const last = Math.floor((Math.min(end, flight.end) - 1 - flight.start) / size)
        for (let k = first; k <= last; k++) copyChunks(await waitFor(flight, k, signal), flight.start + k * size, out, position, end)
      }
      return out
    } finally {
      for (const p of pieces) p.flight?.leave()
    }
  }

  /**
   * Section `index` for a stream. `need`: its bytes, or a flight (new ones wait for room).
   * `prefetch`: a flight only when room is free now; 'cached' when it is there, 'full' when not.
   */
  section (index: number, mode: 'need'): SectionAnswer
  section (index: number, mode: 'prefetch'): Flight | 'cached' | 'full'
  section (index: number, mode: 'need' | 'prefetch'): SectionAnswer | Flight | 'cached' | 'full' {
    const core = this.#core
    const entry = this.sections.get(index)
    if (entry !== undefined) {
      if (mode === 'prefetch') return 'cached'
      core.touch(entry)
      core.counted(true)
      return { data: entry.data }
    }
    let flight = this.#sectionFlight(index)
    if (flight === undefined) {
      const start = index * core.sectionBytes
      const end = Math.min(this.size, start + core.sectionBytes)
      if (mode === 'prefetch' && !core.tryReserve(end - start)) return 'full'
      flight = this.#fly(start, end, index, mode === 'prefetch')
    }
    flight.join()
    if (mode === 'prefetch') return flight
    core.counted(false)
    return { flight }
  }

  /**
   * Read-ahead of up to `count` sections from `first` in ONE request: the sections from `first`
   * on that are neither cached nor in flight, stopping at the first that is. A sequential
   * stream in full swing asks for several sections at a time, so an origin answers fewer,
   * larger requests (each request costs it an open and a response of its own). Each section is
   * cached on its own when the request completes. The flight is joined once per section
   * (`count` of the answer); 'cached' / 'full' as for `section(first, 'prefetch')`.
   */
  prefetch (first: number, count: number): { flight: Flight, count: number } | 'cached' | 'full' {
    const core = this.#core
    if (this.sections.has(first)) return 'cached'
    const covering = this.#sectionFlight(first)
    if (covering !== undefined) {
      covering.join()
      return { flight: covering, count: 1 }
    }
    const lastIndex = Math.floor((this.size - 1) / core.sectionBytes)
    let n = 1
    while (n < count && first + n <= lastIndex && !this.sections.has(first + n) && this.#sectionFlight(first + n) === undefined) n++
    const start = first * core.sectionBytes
    const end = Math.min(this.size, start + n * core.sectionBytes)
    if (!core.tryReserve(end - start)) return n === 1 ? 'full' : this.prefetch(first, 1)
    const flight = this.#fly(start, end, first, true)
    for (let k = 0; k < n; k++) flight.join()
    return { flight, count: n }
  }

  /** The section request (one or more whole sections) covering section `index`, if any. */
  #sectionFlight (index: number): Flight | undefined {
    const at = index * this.#core.sectionBytes
    for (const f of this.flights) if (typeof f.slot === 'number' && f.start <= at && at < f.end) return f
    return undefined
  }

  /**
   * A stream has read past section `index`. A source larger than a quarter of the cache read
   * by this one reader does not keep what the stream has passed (scan resistance, as
   * PostgreSQL's ring buffers for big sequential scans): one pass over a 32 GiB shard would
   * otherwise push every other shard's sections out, and holding memory it will not read
   * again costs page faults on every new section.
   */
  passed (index: number): void {
    const core = this.#core
    if (this.refs !== 1 || this.size <= core.cacheBytes / 4) return
    const entry = this.sections.get(index)
    if (entry !== undefined) core.drop(entry)
  }

  stats (): SourceStats {
    const { label, size, refs: readers, bytesFetched, rangedRequests, cachedBytes } = this
    return { label, size, readers, bytesFetched, rangedRequests, cachedBytes }
  }

  /** A flight already covering offset `x`. */
  #covering (x: number): Flight | undefined {
    for (const f of this.flights) if (f.start <= x && x < f.end) return f
    return undefined
  }

  /** A new request for [start, end); `reserved` when its bytes are reserved already. */
  #fly (start: number, end: number, slot: number | string, reserved: boolean): Flight {
    const core = this.#core
    const n = end - start
    const section = core.sectionBytes
    // Section requests come in one buffer per section; an exact random get in one piece.
    const pieceBytes = typeof slot === 'number' ? section : n
    const flight = new Flight(start, end, slot, pieceBytes, async (signal, deliver) => {
      let held = reserved
      // Bytes of this request's reservation already turned into cached pieces.
      let stored = 0
      // Sections arrive in the cache's reusable buffers (an exact get keeps the response's chunks).
      const buffers = new Map<number, Uint8Array>()
      // Until the request has ended and every reader that joined it has left, a reader may be
      // handed a piece it delivered earlier: a buffer whose entry left the cache meanwhile is
      // given back only then.
      const parked: Uint8Array[] = []
      const recycler = (buffer: Uint8Array) => (): void => {
        if (flight.idle) core.giveBuffer(buffer)
        else parked.push(buffer)
      }
      const into = typeof slot !== 'number'
        ? undefined
        : (k: number): Uint8Array => {
            let buffer = buffers.get(k)
            if (buffer === undefined) {
              buffer = core.takeBuffer()
              buffers.set(k, buffer)
            }
            return buffer
          }
      const cache = (k: number, piece: Chunks): void => {
        const buffer = buffers.get(k)
        buffers.delete(k)
        const recycle = buffer === undefined ? undefined : recycler(buffer)
        core.store({ source: this, start: start + k * pieceBytes, data: piece, slot: typeof slot === 'number' ? slot + k : slot, recycle })
        stored += piece.byteLength
      }
      try {
        // Nothing below may run before the constructor returns and the flight is registered.
        await Promise.resolve()
        if (!held) {
          await core.reserve(n, signal)
          held = true
        }
        const transport = this.transport
        if (transport === undefined) throw new ReaderClosedError(`${this.label}: every reader is closed`)
        this.rangedRequests++
        core.requestStarted()
        let pieces: Chunks[]
        // Each section is cached (and evicted) on its own, as soon as it has arrived.
        let given = 0
        try {
          pieces = await transport.read(start, n, pieceBytes, signal, (k, piece) => {
            if (k !== given || !fits(piece, k, n, pieceBytes)) return
            given++
            cache(k, piece)
            this.bytesFetched += piece.byteLength
            deliver(k, piece)
          }, into)
        } finally {
          core.requestEnded()
        }
        checkPieces(this.label, pieces, n, pieceBytes)
        for (let k = given; k < pieces.length; k++) {
          cache(k, pieces[k] as Chunks)
          this.bytesFetched += (pieces[k] as Chunks).byteLength
        }
        held = false
        return pieces
      } finally {
        this.flights.delete(flight)
        // Buffers of pieces that never arrived whole (no reader was handed them), and, once
        // the flight is idle, of entries already gone.
        for (const buffer of buffers.values()) core.giveBuffer(buffer)
        flight.onIdle(() => { for (const buffer of parked.splice(0)) core.giveBuffer(buffer) })
        if (held) core.release(n - stored)
        core.settled(this)
      }
    })
    this.flights.add(flight)
    return flight
  }
}

/** Piece `k` of a request for `n` bytes is `pieceBytes` long, the last one the rest. */
function fits (piece: Chunks, k: number, n: number, pieceBytes: number): boolean {
  return piece.byteLength === Math.min(pieceBytes, n - k * pieceBytes)
}

/** A transport's answer must be exactly the pieces asked for. */
function checkPieces (label: string, pieces: Chunks[], n: number, pieceBytes: number): void {
  let total = 0
  for (let k = 0; k < pieces.length; k++) {
    const len = (pieces[k] as Chunks).byteLength
    if (len !== Math.min(pieceBytes, n - k * pieceBytes)) total = -1
    if (total >= 0) total += len
  }
  if (total !== n) throw new DAGStoreError(`${label}: the transport returned ${pieces.length} pieces that do not make the ${n} bytes asked for`, CODE.ERR_HTTP_LENGTH_MISMATCH)
}
