import { setMaxListeners } from 'node:events'
import type { MountReader } from '../../base/mount-types.js'
import { ReaderClosedError } from './errors.js'
import { waitFor, type Flight } from './flight.js'
import { copiesFrom } from './chunks.js'
import { ReadAhead } from './read-ahead.js'
import type { SectionCache } from './section-cache.js'
import type { Source } from './source.js'
import type { SourceSpec, SourceStats } from './types.js'

/** Bytes a stream yields at a time: what a socket read brings, so a consumer sees what a plain GET would give it. */
const STREAM_CHUNK = 64 * 1024

/**
 * A mount reader over a source read in place through the section cache. `read()` is a random
 * get: it fetches exactly its bytes unless cached sections or requests in flight cover them.
 * `stream()` walks aligned sections with read-ahead. Readers of one source share everything.
 */
export class InPlaceReader implements MountReader {
  readonly size: number
  readonly #cache: SectionCache
  readonly #source: Source
  readonly #life = new AbortController()
  readonly #readAhead: ReadAhead
  /** Where the last stream stopped: a stream starting anywhere else is a seek. */
  #expectedStart = 0
  #closed = false

  constructor (cache: SectionCache, spec: SourceSpec) {
    // Every read in progress listens to it: many at once are normal, not a leak.
    setMaxListeners(0, this.#life.signal)
    this.#cache = cache
    this.#source = cache.open(spec)
    this.size = this.#source.size
    const section = cache.sectionBytes
    // Read-ahead beyond half the budget would evict its own sections before they are read.
    const fitting = Math.max(0, Math.floor(cache.cacheBytes / section / 2) - 1)
    this.#readAhead = new ReadAhead(Math.min(Math.floor(cache.maxReadAheadBytes / section), fitting))
  }

  /** `length` bytes at `position`, fewer only at the end of the source. */
  async read (position: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkOffset('position', position)
    checkOffset('length', length)
    if (this.#closed) throw this.#closedError()
    const life = this.#life.signal
    return await this.#source.read(position, length, signal === undefined ? life : AbortSignal.any([life, signal]))
  }

  /** The bytes from `start` to the end, section by section, reading ahead while the caller stays sequential. */
  stream (start = 0): AsyncIterable<Uint8Array> {
    checkOffset('start', start)
    return this.#stream(start)
  }

  /** This reader's source: bytes fetched, requests and cached bytes shared by all its readers. */
  stats (): SourceStats {
    const s = this.#source
    return s.stats()
  }

  /** Drops the cached bytes of this reader's source: the origin changed, they may not be what it serves now. */
  discardCached (): void {
    this.#cache.discard(this.#source)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#life.abort(this.#closedError())
    await this.#cache.close(this.#source)
  }

  #closedError (): ReaderClosedError {
    return new ReaderClosedError(`mount reader of ${this.#source.label} closed`)
  }

  async * #stream (start: number): AsyncGenerator<Uint8Array> {
    if (this.#closed) throw this.#closedError()
    const source = this.#source
    const size = this.size
    if (start >= size) return
    const sectionBytes = this.#cache.sectionBytes
    const lastIndex = Math.floor((size - 1) / sectionBytes)
    const readAhead = this.#readAhead
    if (start !== this.#expectedStart) readAhead.reset()
    const signal = this.#life.signal
    /** Sections read ahead: flights this stream has joined. */
    const ahead = new Map<number, Flight>()
    /**
     * The run (the stream's long request) the stream is in, joined for as long as the stream
     * lives: between two sections it may hold no piece of it (its next grant waits for room),
     * and a run nobody has joined is aborted.
     */
    let run: Flight | undefined
    let counted = readAhead.sections * sectionBytes
    this.#cache.readAheadChanged(counted)
    let pos = start
    try {
      while (pos < size) {
        const index = Math.floor(pos / sectionBytes)
        // The section itself first: read-ahead never takes room from what the reader waits for.
        const answer = source.section(index)
        if ('flight' in answer && answer.flight.gated && answer.flight !== run) {
          answer.flight.join()
          run?.leave()
          run = answer.flight
        }
        const last = Math.min(lastIndex, index + readAhead.sections)
        for (let i = index + 1; i <= last;) {
          if (ahead.has(i)) { i++; continue }
          const got = source.prefetch(i, last - i + 1)
          if (got === 'full') break
          if (got === 'cached') { i++; continue }
          for (let k = 0; k < got.count; k++) ahead.set(i + k, got.flight)
          i += got.count
        }
        const base = index * sectionBytes
        const from = pos - base
        // Copied as soon as it is there, before any await: the section's buffer is the cache's
        // to reuse, and a consumer may keep what it is given as long as it likes.
        let copies: Uint8Array[]
        let length: number
        if ('data' in answer) {
          copies = copiesFrom(answer.data, from, STREAM_CHUNK)
          length = answer.data.byteLength
        } else {
          try {
            // A request may have brought several sections: this step yields the one `pos` is in.
            const { flight } = answer
            const data = await waitFor(flight, (base - flight.start) / flight.pieceBytes, signal)
            copies = copiesFrom(data, from, STREAM_CHUNK)
            length = data.byteLength
          } finally {
            answer.flight.leave()
          }
        }
        ahead.get(index)?.leave()
        ahead.delete(index)
        pos = base + length
        readAhead.grow()
        this.#cache.readAheadChanged(readAhead.sections * sectionBytes - counted)
        counted = readAhead.sections * sectionBytes
        yield * copies
        source.passed(index)
      }
    } finally {
      for (const flight of ahead.values()) flight.leave()
      run?.leave()
      this.#cache.readAheadChanged(-counted)
      this.#expectedStart = pos
    }
  }
}

function checkOffset (name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative safe integer, got ${String(n)}`)
}
