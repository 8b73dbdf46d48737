import type { ShardIndexContext, ShardIndexer } from '../../base/index-types.js'
import type { MountReader } from '../../base/mount-types.js'
import { SortedIndex, SortedIndexBuilder } from '../index/sorted-index.js'
import { decodeCarIndexInto } from '../index/multihash-index-sorted.js'
import { abortErrorFrom } from '../../base/errors.js'
import { ReadSource, StreamSource, checkAborted, invalidCar, readCarHead } from './layout.js'
import type { CarLayout } from './layout.js'
import { SectionParser } from './sections.js'
import { IDENTITY_CODE } from '../multihash.js'
import type { SectionHeader } from './sections.js'
import { HashVerifier, SectionVerifier } from './verify.js'
import type { BlockHasher } from './verify.js'

export type { BlockHasher } from './verify.js'

/**
 * How the indexer reads a MountReader. `auto` (the default) uses positional reads when the
 * reader has them and its stream otherwise; `stream` always streams; `positional` requires
 * `read`.
 */
export type IndexReadMode = 'auto' | 'stream' | 'positional'

export interface ShardIndexerOptions {
  /** Upper bound on the CARv1 header's declared length; default 32 MiB. */
  maxHeaderSize?: number
  /** Upper bound on one section's declared length; default 32 MiB. */
  maxSectionSize?: number
  /**
   * Upper bound on the byte length of an indexed CID, as go-car's MaxIndexCidSize; default
   * 2 KiB. Without it a CAR of huge multihashes could make its index far larger than the CAR
   * needs. Identity CIDs are not indexed, so they are not bounded by this.
   */
  maxCidSize?: number
  /** Adopt a CARv2's embedded index when it agrees with the payload; default true. */
  useEmbeddedIndex?: boolean
  /** Embedded indices larger than this are ignored in favour of the scanned one; default 1 GiB. */
  maxEmbeddedIndexSize?: number
  /**
   * Hash every block's data and compare it with its CID's digest. A mismatch fails with
   * InvalidCarError, a hash function without a hasher with UnsupportedHashError. Reads every
   * byte of the payload (no skipping) and costs the hashing. Default: for a ShardIndexer made
   * by createShardIndexer, what the store asks for the shard (its `verifyHashes` option
   * against the mount's kind); otherwise false.
   */
  verifyHashes?: boolean
  /**
   * Hashers for verifyHashes besides the built-in sha2-256, sha2-512, blake2b-256 and identity;
   * one with a built-in's code replaces it.
   */
  hashers?: BlockHasher[]
  /** Default `auto`: see IndexReadMode. */
  readMode?: IndexReadMode
  /**
   * Positional reads: bytes read at once while sections are small (the whole window is
   * parsed, data included, and the next window is read while this one is parsed); default 1 MiB.
   */
  windowSize?: number
  /**
   * Positional reads: bytes read at a section start while sections are large, enough for the
   * length varint and the CID (the block data is jumped over); default 4 KiB.
   */
  probeSize?: number
  /**
   * Positional reads: sections averaging at least this many bytes (a running average) are
   * read with probes and their data jumped over; below it, windows. A read costs a fixed
   * overhead plus a little per byte, so jumping pays from a few tens of KiB. Default 64 KiB.
   */
  skipThreshold?: number
}

export type EmbeddedIndexOutcome = 'adopted' | 'rejected' | 'absent' | 'ignored'

export interface CarIndexResult {
  index: SortedIndex
  layout: CarLayout
  /**
   * What became of a CARv2 embedded index: `adopted` (it matched the payload), `rejected`
   * (unreadable or inconsistent; see embeddedIndexError), `absent`, or `ignored`
   * (useEmbeddedIndex false).
   */
  embeddedIndex: EmbeddedIndexOutcome
  embeddedIndexError?: Error
  /** Sections read, identity CIDs included. */
  sections: number
  /** How the payload was read. */
  readMode: 'stream' | 'positional'
  /** Calls to `read` (positional) or chunks pulled (stream), the CARv2 index included. */
  reads: number
  /** Bytes read or pulled, the CAR's head and a CARv2 index included. */
  bytesRead: number
}

const DEFAULT_MAX_EMBEDDED_INDEX_SIZE = 1024 * 1024 * 1024
const DEFAULT_MAX_CID_SIZE = 2048
const DEFAULT_WINDOW_SIZE = 1024 * 1024
const DEFAULT_PROBE_SIZE = 4096
const DEFAULT_SKIP_THRESHOLD = 64 * 1024
/** Running average of section lengths: weight of the newest section. */
const AVERAGE_WEIGHT = 1 / 8
/** Probes issued ahead on guessed positions; a libuv threadpool has 4 threads by default. */
const GUESS_DEPTH = 4

type IndexOptions = ShardIndexerOptions & { signal?: AbortSignal }

function isMountReader (source: AsyncIterable<Uint8Array> | MountReader): source is MountReader {
  return typeof (source as MountReader).stream === 'function'
}

function positiveInt (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${String(value)}`)
  return value
}

/**
 * Indexes a CAR: header, then every section of the payload (a CARv2's dataSize bytes only),
 * then, for a CARv2 with an index, the embedded index.
 *
 * `source` is either the CAR's bytes as a stream from byte 0, or a MountReader. A reader with
 * positional reads is read by position (see IndexReadMode): small sections in large windows,
 * with the next window read while the current one is parsed; large sections by reading only
 * their headers and jumping over the block data, so a CAR of big blocks is indexed in a
 * fraction of the time reading it would take.
 *
 * The payload is always scanned, because an embedded index is only as trustworthy as its
 * writer: it is adopted only when it decodes and holds exactly the (multihash, offset) pairs
 * the scan found. An index that lies (offsets pointing at other blocks or into block data,
 * entries missing or added) is rejected and the scanned index used.
 *
 * Identity-multihash CIDs are not indexed (blockstores answer them from the CID itself).
 * Corrupt input throws InvalidCarError naming the byte offset; an aborted signal throws an
 * AbortError.
 *
 * The result is all or nothing: the index is built in memory and only returned once the whole
 * CAR has been read, so a failure never leaves a partial index anywhere. The store hands an
 * index to its FullIndexRepo only after the indexer has returned it, and FsIndexRepo writes
 * each index file atomically, so repos only ever receive and hold complete indices.
 */
export async function indexCar (source: AsyncIterable<Uint8Array> | MountReader, options: IndexOptions = {}): Promise<CarIndexResult> {
  const signal = options.signal
  checkAborted(signal)
  const mode = options.readMode ?? 'auto'
  if (isMountReader(source)) {
    if (mode === 'positional' && source.read === undefined) throw new TypeError('readMode positional needs a reader with read()')
    if (mode !== 'stream' && source.read !== undefined) return await indexPositional(source, options)
    return await indexStream(source.stream(0), options, source.size)
  }
  if (mode === 'positional') throw new TypeError('readMode positional needs a MountReader with read(), not a stream')
  return await indexStream(source, options, undefined)
}

type ScanResult = Pick<CarIndexResult, 'index' | 'embeddedIndex' | 'embeddedIndexError' | 'sections'>

/** What both read paths share: the parser's visitor, the builder, verification. */
class Scan {
  readonly builder = new SortedIndexBuilder()
  readonly parser: SectionParser
  readonly verifier: SectionVerifier | undefined
  sections = 0
  /** Running average section length (positional reads choose their size from it). */
  average = 0
  lastLength = 0
  previousLength = -1

  constructor (readonly layout: CarLayout, options: IndexOptions, trackAverage: boolean) {
    const builder = this.builder
    const maxCidSize = positiveInt('maxCidSize', options.maxCidSize, DEFAULT_MAX_CID_SIZE)
    const base = layout.payloadOffset
    const tooLong = (h: SectionHeader): never => {
      throw invalidCar(`CID of ${h.cidEnd - h.cidStart} bytes exceeds the limit of ${maxCidSize}`, base + h.offset)
    }
    if (options.verifyHashes === true) {
      this.verifier = new SectionVerifier(new HashVerifier(options.hashers), base, layout.payloadSize)
    }
    const verifier = this.verifier
    // One visitor per need: this runs once per section, so the default one does no more
    // than counting and adding.
    let visit: (h: SectionHeader) => void
    if (verifier !== undefined) {
      visit = (h) => {
        this.sections++
        const identity = h.bytes[h.mhStart] === IDENTITY_CODE
        if (!identity && h.cidEnd - h.cidStart > maxCidSize) tooLong(h)
        verifier.onSection(h)
        if (!identity) builder.addRange(h.bytes, h.mhStart, h.cidEnd, h.offset)
      }
    } else if (trackAverage) {
      visit = (h) => {
        const n = this.sections++
        const length = h.sectionLength
        this.average = n === 0 ? length : this.average + (length - this.average) * AVERAGE_WEIGHT
        this.previousLength = this.lastLength
        this.lastLength = length
        if (h.bytes[h.mhStart] === IDENTITY_CODE) return
        if (h.cidEnd - h.cidStart > maxCidSize) tooLong(h)
        builder.addRange(h.bytes, h.mhStart, h.cidEnd, h.offset)
      }
    } else {
      visit = (h) => {
        this.sections++
        if (h.bytes[h.mhStart] === IDENTITY_CODE) return
        if (h.cidEnd - h.cidStart > maxCidSize) tooLong(h)
        builder.addRange(h.bytes, h.mhStart, h.cidEnd, h.offset)
      }
    }
    this.parser = new SectionParser(visit, {
      maxSectionSize: options.maxSectionSize,
      startOffset: layout.headerLength,
      limit: layout.payloadSize,
      baseOffset: layout.payloadOffset
    })
  }

  /** Parses a chunk that starts at the parser's position; returns the bytes that were payload. */
  push (chunk: Uint8Array): number {
    this.verifier?.beginChunk(chunk, this.parser.position)
    return this.parser.push(chunk)
  }

  /**
   * The index, after comparing a decoded embedded index with the scan (the scanned index is
   * what is returned either way: adoption means they hold the same entries).
   */
  async finish (embedded: Promise<Uint8Array> | undefined, options: IndexOptions, signal: AbortSignal | undefined): Promise<ScanResult> {
    // The embedded index is read while this sorts.
    const index = this.builder.build()
    const out: ScanResult = { index, embeddedIndex: 'absent', sections: this.sections }
    if (this.layout.indexOffset === undefined) return out
    if (options.useEmbeddedIndex === false || embedded === undefined) {
      out.embeddedIndex = 'ignored'
      return out
    }
    try {
      const bytes = await embedded
      const builder = new SortedIndexBuilder(Math.max(16, Math.floor(bytes.length / 40)))
      decodeCarIndexInto(bytes, builder, { skipIdentity: true, baseOffset: this.layout.indexOffset })
      // Exact, never a hash of the entries: a crafted index could be made to collide with one.
      // Writers differ on duplicate blocks (go-car lists every copy, a de-duplicating writer
      // one); building keeps the first copy of each, so both compare equal.
      if (!sameEntries(builder.build(), index)) throw new Error('embedded index does not match the payload')
      out.embeddedIndex = 'adopted'
    } catch (err) {
      checkAborted(signal)
      out.embeddedIndex = 'rejected'
      out.embeddedIndexError = err as Error
    }
    checkAborted(signal)
    return out
  }
}

async function indexStream (source: AsyncIterable<Uint8Array>, options: IndexOptions, size: number | undefined): Promise<CarIndexResult> {
  const signal = options.signal
  const src = new StreamSource(source, signal)
  let reads = 0
  try {
    const layout = await readCarHead(src, { maxHeaderSize: options.maxHeaderSize, size })
    const scan = new Scan(layout, options, false)
    const { parser, verifier } = scan
    while (!parser.done) {
      const chunk = await src.next()
      if (chunk === undefined) {
        parser.end()
        break
      }
      reads++
      const used = scan.push(chunk)
      if (verifier !== undefined) await verifier.settle()
      if (used < chunk.length) src.unshift(chunk.subarray(used))
    }
    let embedded: Promise<Uint8Array> | undefined
    if (layout.indexOffset !== undefined && options.useEmbeddedIndex !== false) {
      embedded = readEmbeddedIndexFromStream(src, layout, options.maxEmbeddedIndexSize ?? DEFAULT_MAX_EMBEDDED_INDEX_SIZE)
    }
    const result = await scan.finish(embedded, options, signal)
    return { ...result, layout, readMode: 'stream', reads, bytesRead: src.pulledEnd }
  } finally {
    await src.close()
  }
}

async function indexPositional (reader: MountReader, options: IndexOptions): Promise<CarIndexResult> {
  const signal = options.signal
  let reads = 0
  let bytesRead = 0
  const readFn = (reader.read as NonNullable<MountReader['read']>).bind(reader)
  const read = async (position: number, length: number): Promise<Uint8Array> => {
    reads++
    const got = await readFn(position, length)
    bytesRead += got.length
    return got
  }
  const readNowFn = reader.readNow?.bind(reader)
  const readNow = readNowFn === undefined
    ? undefined
    : (position: number, length: number, into?: Uint8Array): Uint8Array | undefined => {
        const got = readNowFn(position, length, into)
        if (got !== undefined) {
          reads++
          bytesRead += got.length
        }
        return got
      }
  // A read that stalls (a slow or hung device) must not pin an aborted job: one listener fails
  // whichever read is being waited for, as StreamSource does for a stalled stream.
  let rejectWait: ((err: Error) => void) | undefined
  const onAbort = (): void => { rejectWait?.(abortErrorFrom(signal as AbortSignal)) }
  signal?.addEventListener('abort', onAbort, { once: true })
  const wait = async (bytes: Promise<Uint8Array>): Promise<Uint8Array> => {
    if (signal === undefined) return await bytes
    checkAborted(signal)
    return await new Promise<Uint8Array>((resolve, reject) => {
      rejectWait = reject
      bytes.then(resolve, reject)
    }).finally(() => { rejectWait = undefined })
  }
  const readIntoFn = reader.readInto?.bind(reader)
  const windowSize = positiveInt('windowSize', options.windowSize, DEFAULT_WINDOW_SIZE)
  const ring = readIntoFn === undefined ? undefined : new WindowRing()
  const readWindow = ring === undefined || readIntoFn === undefined
    ? read
    : async (position: number, length: number): Promise<Uint8Array> => {
      if (length > windowSize) return await read(position, length)
      reads++
      const bytes = await ring.fill(length, async (target) => await readIntoFn(position, target))
      bytesRead += bytes.byteLength
      return bytes
    }
  try {
    return await scanPositional(reader, options, { read, readNow, readWindow, wait }, () => ({ reads, bytesRead }))
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * Window buffers used in turn, for a reader with `readInto`: a fresh megabyte per window costs
 * more than reading it (page faults, and the collector counts every new buffer as external
 * memory). Two suffice: the window being parsed (and hash-verified) and the next one being
 * read. A read-ahead dropped by a jump may still be filling its buffer: it is waited for before
 * that buffer is used again.
 */
class WindowRing {
  private readonly buffers: Array<Uint8Array | undefined> = [undefined, undefined]
  /** Per buffer, the last read given it: the next one starts only once it has settled. */
  private readonly reads: Array<Promise<unknown> | undefined> = [undefined, undefined]
  private turn = 0

  /** `length` bytes read by `readInto` into the next buffer in turn; the bytes it got. */
  async fill (length: number, readInto: (target: Uint8Array) => Promise<number>): Promise<Uint8Array> {
    const i = this.turn
    this.turn = (i + 1) % this.buffers.length
    const previous = this.reads[i]
    const read = (async () => {
      if (previous !== undefined) await previous.catch(() => {})
      let buffer = this.buffers[i]
      // Allocated on first use and at the size asked: a small CAR never needs whole windows.
      if (buffer === undefined || buffer.byteLength < length) {
        buffer = new Uint8Array(length)
        this.buffers[i] = buffer
      }
      return buffer.subarray(0, await readInto(buffer.subarray(0, length)))
    })()
    this.reads[i] = read
    return await read
  }
}

/**
 * How the positional scan reads: `read` + `wait` always; `readNow` when the reader can answer
 * small reads synchronously; `readWindow` for windows, whose bytes stay valid until the
 * window after the next is asked for (buffers are reused).
 */
interface PositionalReads {
  read: (position: number, length: number) => Promise<Uint8Array>
  readNow: ((position: number, length: number, into?: Uint8Array) => Uint8Array | undefined) | undefined
  readWindow: (position: number, length: number) => Promise<Uint8Array>
  wait: (bytes: Promise<Uint8Array>) => Promise<Uint8Array>
}

/** Synchronous probing hands the event loop back this often. */
const READ_NOW_SLICE_MS = 2

async function scanPositional (
  reader: MountReader,
  options: IndexOptions,
  reads: PositionalReads,
  counts: () => { reads: number, bytesRead: number }
): Promise<CarIndexResult> {
  const { read, readNow, readWindow, wait } = reads
  const signal = options.signal
  const windowSize = positiveInt('windowSize', options.windowSize, DEFAULT_WINDOW_SIZE)
  const probeSize = positiveInt('probeSize', options.probeSize, DEFAULT_PROBE_SIZE)
  const skipThreshold = positiveInt('skipThreshold', options.skipThreshold, DEFAULT_SKIP_THRESHOLD)
  const source = new ReadSource(async (position, length) => await wait(read(position, length)), signal)
  const layout = await readCarHead(source, { maxHeaderSize: options.maxHeaderSize, size: reader.size })
  const verify = options.verifyHashes === true
  const scan = new Scan(layout, options, !verify)
  const { parser, verifier } = scan
  const base = layout.payloadOffset
  const limit = layout.payloadSize ?? (reader.size !== undefined ? reader.size - base : Number.POSITIVE_INFINITY)
  // Reads issued before they are needed are dropped (never awaited) when the scan goes
  // elsewhere, so their rejections are pre-handled.
  const early = (position: number, size: number, window = false): Promise<Uint8Array> => {
    const bytes = window ? readWindow(base + position, size) : read(base + position, size)
    bytes.catch(() => {})
    return bytes
  }
  // Windows: the next one is read while this one is parsed.
  let ahead: { position: number, size: number, bytes: Promise<Uint8Array> } | undefined
  // Probes: one read's latency per section is what bounds probing, so while sections keep one
  // length (fixed-size chunkers make most big-block CARs like that) the probes for the next
  // few are issued at once, at the positions that length predicts. A wrong guess costs one
  // small read.
  const guesses = new Map<number, Promise<Uint8Array>>()
  // Probes answered synchronously (a file in the page cache) need no guesses; the scan still
  // yields to the event loop every slice, so other work is never held up for long.
  let answeredNow = false
  let sliceStart = performance.now()
  /** Where probes and windows read at once go: parsed (and hash-verified) before the next is read. */
  let nowWindow = new Uint8Array(0)
  while (!parser.done) {
    checkAborted(signal)
    const position = parser.position
    // Verification must see every byte, so it never probes.
    const probing = !verify && scan.average >= skipThreshold
    let size = Math.min(probing ? probeSize : windowSize, limit - position)
    if (size <= 0) {
      // A jump went to (or past) the end of a file of known size: nothing left to read.
      parser.end()
      break
    }
    let chunk: Uint8Array
    const guess = guesses.get(position)
    if (guess !== undefined) {
      size = Math.min(probeSize, limit - position)
      chunk = await wait(guess)
    } else if (ahead !== undefined && ahead.position <= position && position < ahead.position + ahead.size) {
      // Also after a jump that lands inside the window already on its way.
      const skipped = position - ahead.position
      size = ahead.size - skipped
      chunk = await wait(ahead.bytes)
      if (skipped > 0) chunk = chunk.subarray(Math.min(skipped, chunk.length))
    } else {
      // Windows too are read at once when the pages are in memory, and both into a buffer of
      // the scan's own: a thread-pool read per window left the scan waiting (parsing is the
      // faster), and a fresh buffer per probe or window is memory the collector must reclaim.
      if (readNow !== undefined && nowWindow.byteLength < size) nowWindow = new Uint8Array(size)
      const now = readNow?.(base + position, size, nowWindow)
      answeredNow = now !== undefined
      if (now !== undefined) {
        chunk = now
        if (performance.now() - sliceStart > READ_NOW_SLICE_MS) {
          await new Promise<void>((resolve) => { setImmediate(resolve) })
          sliceStart = performance.now()
        }
      } else {
        chunk = await wait(probing ? read(base + position, size) : readWindow(base + position, size))
        sliceStart = performance.now()
      }
    }
    ahead = undefined
    for (const p of guesses.keys()) if (p <= position) guesses.delete(p)
    checkAborted(signal)
    if (chunk.length === 0) {
      parser.end()
      break
    }
    const next = position + chunk.length
    if (!probing && !answeredNow && chunk.length === size && next < limit) {
      const n = Math.min(windowSize, limit - next)
      ahead = { position: next, size: n, bytes: early(next, n, true) }
    }
    scan.push(chunk)
    if (verifier !== undefined) await verifier.settle()
    // A short read is the end of the data (MountReader.read's contract).
    if (chunk.length < size) {
      parser.end()
      break
    }
    if (verify) continue
    const skip = parser.pendingSkip
    // The last byte of the data is read, not jumped: a read that comes back empty there is
    // what tells a truncated file from a complete one.
    if (skip >= skipThreshold || (probing && skip > 1)) parser.skipAhead(skip - 1)
    const length = scan.lastLength
    if (probing && !answeredNow && parser.pendingSkip === 1 && length === scan.previousLength) {
      // Now at the last byte of a section of `length`: if the next ones are as long, the
      // probe after each starts `length` further on.
      for (let k = 1, p = parser.position + length; k <= GUESS_DEPTH && p < limit; k++, p += length) {
        if (!guesses.has(p)) guesses.set(p, early(p, Math.min(probeSize, limit - p)))
      }
    }
  }
  let embedded: Promise<Uint8Array> | undefined
  if (layout.indexOffset !== undefined && options.useEmbeddedIndex !== false) {
    const maxSize = options.maxEmbeddedIndexSize ?? DEFAULT_MAX_EMBEDDED_INDEX_SIZE
    embedded = readEmbeddedIndexAt(async (position, length) => await wait(read(position, length)), reader.size, layout, maxSize)
  }
  const result = await scan.finish(embedded, options, signal)
  return { ...result, layout, readMode: 'positional', ...counts() }
}

function sameEntries (a: SortedIndex, b: SortedIndex): boolean {
  if (a.size !== b.size) return false
  for (let i = 0; i < a.size; i++) {
    if (a.offsetAt(i) !== b.offsetAt(i)) return false
    const x = a.multihashAt(i)
    const y = b.multihashAt(i)
    if (x.length !== y.length) return false
    for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return false
  }
  return true
}

function checkIndexOffset (layout: CarLayout): number {
  const indexOffset = layout.indexOffset as number
  const payloadEnd = layout.payloadOffset + (layout.payloadSize as number)
  if (indexOffset < payloadEnd) throw new Error(`index offset ${indexOffset} lies inside the payload (which ends at ${payloadEnd})`)
  return indexOffset
}

async function readEmbeddedIndexFromStream (src: StreamSource, layout: CarLayout, maxSize: number): Promise<Uint8Array> {
  const indexOffset = checkIndexOffset(layout)
  await src.skipTo(indexOffset)
  if (src.position < indexOffset) throw new Error(`index offset ${indexOffset} is past the end of the data`)
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const chunk = await src.next()
    if (chunk === undefined) break
    total += chunk.length
    if (total > maxSize) throw new Error(`embedded index larger than ${maxSize} bytes`)
    chunks.push(chunk)
  }
  return concat(chunks, total)
}

const INDEX_READ_SIZE = 1024 * 1024

async function readEmbeddedIndexAt (
  read: (position: number, length: number) => Promise<Uint8Array>, size: number | undefined, layout: CarLayout, maxSize: number
): Promise<Uint8Array> {
  const indexOffset = checkIndexOffset(layout)
  if (size !== undefined) {
    if (indexOffset > size) throw new Error(`index offset ${indexOffset} is past the end of the data`)
    const length = size - indexOffset
    if (length > maxSize) throw new Error(`embedded index larger than ${maxSize} bytes`)
    const bytes = await read(indexOffset, length)
    if (bytes.length < length) throw new Error(`embedded index cut short (${bytes.length} of ${length} bytes)`)
    return bytes
  }
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const chunk = await read(indexOffset + total, INDEX_READ_SIZE)
    total += chunk.length
    if (total > maxSize) throw new Error(`embedded index larger than ${maxSize} bytes`)
    if (chunk.length > 0) chunks.push(chunk)
    if (chunk.length < INDEX_READ_SIZE) break
  }
  if (total === 0) throw new Error(`index offset ${indexOffset} is past the end of the data`)
  return concat(chunks, total)
}

function concat (chunks: Uint8Array[], total: number): Uint8Array {
  const [only] = chunks
  if (chunks.length === 1 && only !== undefined) return only
  const bytes = new Uint8Array(total)
  let p = 0
  for (const c of chunks) {
    bytes.set(c, p)
    p += c.length
  }
  return bytes
}

/**
 * A ShardIndexer with the given options: positional reads when the reader has them (see
 * IndexReadMode); hashes verified as the store asks unless `verifyHashes` says otherwise.
 */
export function createShardIndexer (options: ShardIndexerOptions = {}): ShardIndexer {
  // Checked now so that a bad option fails at configuration, not at the first shard.
  positiveInt('maxCidSize', options.maxCidSize, DEFAULT_MAX_CID_SIZE)
  positiveInt('windowSize', options.windowSize, DEFAULT_WINDOW_SIZE)
  positiveInt('probeSize', options.probeSize, DEFAULT_PROBE_SIZE)
  positiveInt('skipThreshold', options.skipThreshold, DEFAULT_SKIP_THRESHOLD)
  if (options.hashers !== undefined) void new HashVerifier(options.hashers)
  return async (_key: string, reader: MountReader, signal: AbortSignal, context?: ShardIndexContext) => {
    const verifyHashes = options.verifyHashes ?? context?.verifyHashes ?? false
    const { index } = await indexCar(reader, { ...options, verifyHashes, signal })
    return index
  }
}

export const defaultShardIndexer: ShardIndexer = createShardIndexer()
