import { DAGStoreError } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'
import { ReaderClosedError, RemoteReadTooLargeError } from './errors.js'
import { Flight, settleBy } from './flight.js'
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
    // Each flight's pieces are asked for in the turn the flight is found (a run forgets a piece once delivered).
    const pieces: Array<{ start: number, data?: Chunks, flight?: Flight, waits?: Array<{ at: number, piece: Promise<Chunks> }> }> = []
    for (let x = position; x < end;) {
      const section = this.sections.get(Math.floor(x / core.sectionBytes))
      if (section !== undefined) {
        core.touch(section)
        pieces.push({ start: section.start, data: section.data })
        x = section.start + section.data.byteLength
        continue
      }
      const flight = this.#covering(x) ?? this.#fly(x, end, `${x}:${end - x}`, false, false)
      const size = flight.pieceBytes
      const to = Math.min(end, flight.coverEnd)
      const waits = []
      for (let k = Math.floor((x - flight.start) / size); k <= Math.floor((to - 1 - flight.start) / size); k++) {
        waits.push({ at: flight.start + k * size, piece: flight.piece(k) })
      }
      pieces.push({ start: x, flight, waits })
      x = to
    }
    core.counted(pieces.every((p) => p.flight === undefined))
    for (const p of pieces) p.flight?.join()
    try {
      const out = new Uint8Array(n)
      // Cached bytes first, before any await (see CacheCore.takeBuffer).
      for (const p of pieces) if (p.data !== undefined) copyChunks(p.data, p.start, out, position, end)
      // Then each piece of a flight, copied as soon as it has arrived.
      for (const p of pieces) for (const w of p.waits ?? []) copyChunks(await settleBy(w.piece, signal), w.at, out, position, end)
      return out
    } finally {
      for (const p of pieces) p.flight?.leave()
    }
  }

  /**
   * Section `index` for a stream: its bytes, or a flight it has joined (a run that covers it,
   * one extended to it, or a new run from it, which waits for room).
   */
  section (index: number): SectionAnswer {
    const core = this.#core
    const entry = this.sections.get(index)
    if (entry !== undefined) {
      core.touch(entry)
      core.counted(true)
      return { data: entry.data }
    }
    let flight = this.#sectionFlight(index)
    if (flight === undefined) {
      const run = this.#extendableAt(index)
      if (run !== undefined) {
        // The run the stream is in goes on (a new one would be another request, and the old
        // one's bytes in the socket would be thrown away), once there is room for the section.
        if (this.#grant(run, 1) === 0) this.#grantWhenRoom(run, this.#sectionLength(index))
        flight = run
      } else if (this.#runPassed(index)) {
        // A section a run brought and the budget let go before the stream read it: fetched
        // alone, while the run goes on ahead.
        const start = index * core.sectionBytes
        flight = this.#fly(start, start + this.#sectionLength(index), index, core.tryReserve(this.#sectionLength(index)), false)
      } else {
        flight = this.#run(index, core.tryReserve(this.#sectionLength(index)))
      }
    }
    flight.join()
    core.counted(false)
    return { flight }
  }

  /**
   * Read-ahead of up to `count` sections from `first`, for a stream: 'cached' when `first` is
   * there; a flight covering it (joined once, `count` 1); else the sections from `first` on that
   * are neither cached nor in flight, up to the first that is, granted to the run that ends at
   * `first` or to a new run from `first` (joined once per section, `count` of them). Only room
   * free now is taken: 'full' when there is none.
   */
  prefetch (first: number, count: number): { flight: Flight, count: number } | 'cached' | 'full' {
    if (this.sections.has(first)) return 'cached'
    const covering = this.#sectionFlight(first)
    if (covering !== undefined) {
      covering.join()
      return { flight: covering, count: 1 }
    }
    let run = this.#extendableAt(first)
    let n: number
    if (run !== undefined) {
      n = this.#grant(run, count)
      if (n === 0) return 'full'
    } else {
      if (!this.#core.tryReserve(this.#sectionLength(first))) return 'full'
      run = this.#run(first, true)
      n = 1 + this.#grant(run, count - 1)
    }
    for (let k = 0; k < n; k++) run.join()
    return { flight: run, count: n }
  }

  /** Bytes of section `index` (the last one may be short). */
  #sectionLength (index: number): number {
    const section = this.#core.sectionBytes
    return Math.min(this.size, (index + 1) * section) - index * section
  }

  /** A stream's request from section `first` to the end of the source, granted its first section (`reserved`: already paid for). */
  #run (first: number, reserved: boolean): Flight {
    return this.#fly(first * this.#core.sectionBytes, this.size, first, reserved, true)
  }

  /** Whether a run still going has brought section `index` already. */
  #runPassed (index: number): boolean {
    const at = index * this.#core.sectionBytes
    for (const f of this.flights) if (f.gated && !f.settled && f.start <= at && at < f.coverStart) return true
    return false
  }

  /** The run whose grant ends at section `index`, if one can still grow. */
  #extendableAt (index: number): Flight | undefined {
    const section = this.#core.sectionBytes
    for (const f of this.flights) if (f.extendable && f.coverEnd === index * section) return f
    return undefined
  }

  /**
   * Grants `run` up to `max` more sections, stopping at one that is cached or in flight, at the
   * end, or when the room is not free now. Returns how many.
   */
  #grant (run: Flight, max: number): number {
    const core = this.#core
    const section = core.sectionBytes
    let n = 0
    for (let next = run.coverEnd / section; n < max && run.coverEnd < run.end; next++) {
      if (this.sections.has(next) || this.#sectionFlight(next) !== undefined) break
      const bytes = this.#sectionLength(next)
      if (!core.tryReserve(bytes)) break
      run.reservedBytes += bytes
      run.promise(1)
      run.grant(1)
      n++
    }
    return n
  }

  /**
   * Promises `run` its next section now and grants it once `bytes` are reserved (waiting in the
   * budget's queue, first come first served, so grants stay in order).
   */
  #grantWhenRoom (run: Flight, bytes: number): void {
    const core = this.#core
    run.promise(1)
    core.reserve(bytes, run.signal).then(() => {
      // A run that ended meanwhile (it failed) takes no more bytes: the room goes back.
      if (run.settled) { core.release(bytes); return }
      run.reservedBytes += bytes
      run.grant(1)
    }, () => { /* the run was aborted: nothing was reserved */ })
  }

  /** The section request covering section `index`, if any. */
  #sectionFlight (index: number): Flight | undefined {
    const at = index * this.#core.sectionBytes
    for (const f of this.flights) if (typeof f.slot === 'number' && f.covers(at)) return f
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
    for (const f of this.flights) if (f.covers(x)) return f
    return undefined
  }

  /**
   * A new request for [start, end); `reserved` when its bytes (a run: its first section's) are
   * reserved already. A run (`gated`) starts granted its first section.
   */
  #fly (start: number, end: number, slot: number | string, reserved: boolean, gated: boolean): Flight {
    const core = this.#core
    const n = end - start
    const section = core.sectionBytes
    // Section requests come in one buffer per section; an exact random get in one piece.
    const pieceBytes = typeof slot === 'number' ? section : n
    const firstBytes = gated ? Math.min(n, section) : n
    const flight: Flight = new Flight(start, end, slot, pieceBytes, gated, async (signal, deliver) => {
      // Bytes of this request's reservation already turned into cached pieces.
      let stored = 0
      // Sections arrive in the cache's reusable buffers (an exact get keeps the response's chunks).
      const buffers = new Map<number, Uint8Array>()
      // Until the request has ended and every reader that joined it has left, a reader may be
      // handed a piece it delivered earlier: a buffer whose entry left the cache meanwhile is
      // given back only then. A run hands a piece over only in the turn it arrives.
      const parked: Uint8Array[] = []
      const recycler = (buffer: Uint8Array) => (): void => {
        if (gated || flight.idle) core.giveBuffer(buffer)
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
        if (!reserved) {
          await core.reserve(firstBytes, signal)
          flight.reservedBytes += firstBytes
          if (gated) flight.grant(1)
        }
        const transport = this.transport
        if (transport === undefined) throw new ReaderClosedError(`${this.label}: every reader is closed`)
        this.rangedRequests++
        core.requestStarted()
        let pieces: Chunks[]
        // Each section is cached (and evicted) on its own, as soon as it has arrived.
        let given = 0
        try {
          pieces = await transport.read(start, n, pieceBytes, signal, {
            onPiece: (k, piece) => {
              if (k !== given || !fits(piece, k, n, pieceBytes)) return
              given++
              cache(k, piece)
              this.bytesFetched += piece.byteLength
              deliver(k, piece)
            },
            into,
            gate: gated ? flight : undefined
          })
        } finally {
          core.requestEnded()
        }
        if (gated) {
          if (given * pieceBytes < n) {
            throw new DAGStoreError(`${this.label}: the transport ended a read of ${n} bytes after ${given} pieces`, CODE.ERR_HTTP_LENGTH_MISMATCH)
          }
          return []
        }
        checkPieces(this.label, pieces, n, pieceBytes)
        for (let k = given; k < pieces.length; k++) {
          cache(k, pieces[k] as Chunks)
          this.bytesFetched += (pieces[k] as Chunks).byteLength
        }
        return pieces
      } finally {
        this.flights.delete(flight)
        // Buffers of pieces that never arrived whole (no reader was handed them), and, once
        // the flight is idle, of entries already gone.
        for (const buffer of buffers.values()) core.giveBuffer(buffer)
        flight.onIdle(() => { for (const buffer of parked.splice(0)) core.giveBuffer(buffer) })
        core.release(flight.reservedBytes - stored)
        core.settled(this)
      }
    })
    if (reserved) flight.reservedBytes = firstBytes
    if (gated) {
      flight.promise(1)
      if (reserved) flight.grant(1)
    }
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
