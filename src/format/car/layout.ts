import { CID } from 'multiformats/cid'
import { InvalidCarError, abortErrorFrom } from '../../base/errors.js'
import type { MountReader } from '../../base/mount-types.js'
import { MAX_VARINT_BYTES, VarintError, readVarint } from '../varint.js'
import type { VarintOut } from '../varint.js'

/** `0x0a` (length 10) then dag-cbor `{"version": 2}`: the first 11 bytes of every CARv2. */
const CARV2_PRAGMA: Readonly<Uint8Array> = Uint8Array.of(0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02)
/** Pragma + characteristics (16) + dataOffset, dataSize, indexOffset (u64le each). */
const CARV2_HEADER_END = 51
const DEFAULT_MAX_HEADER_SIZE = 32 * 1024 * 1024

export interface CarLayout {
  version: 1 | 2
  /** Absolute offset of the CARv1 payload: its header's length varint. */
  payloadOffset: number
  /** CARv2 only: bytes of CARv1 payload (header included) starting at payloadOffset. */
  payloadSize?: number
  /** CARv2 only, and only when an index is present (non-zero in the header). */
  indexOffset?: number
  roots: CID[]
  /** Bytes of the CARv1 header including its length varint: the first section starts at payloadOffset + headerLength. */
  headerLength: number
}

export interface CarLayoutOptions {
  /** Upper bound on the CARv1 header's declared length; default 32 MiB. */
  maxHeaderSize?: number | undefined
  /** Size of the whole CAR when known (`MountReader.size`): a CARv2 payload must lie inside it. */
  size?: number | undefined
}

/** Throws the signal's AbortError if it has fired (a function, so TS does not narrow `aborted` away across awaits). */
export function checkAborted (signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortErrorFrom(signal)
}

/**
 * A copy of bytes[start, end) as a plain Uint8Array. Not `.slice()`: on a Node Buffer that is
 * a view, which would pin the whole (possibly pooled) chunk.
 */
export function copyBytes (bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const out = new Uint8Array(end - start)
  out.set(bytes.subarray(start, end), 0)
  return out
}

export function invalidCar (what: string, offset: number, cause?: unknown): InvalidCarError {
  return new InvalidCarError(`invalid CAR: ${what} at byte ${offset}`, cause === undefined ? undefined : { cause })
}

// ---------------------------------------------------------------------------------------------
// Byte sources: the header parser needs "at least n contiguous bytes from here", whether the
// mount offers positional reads or only a stream. The indexer keeps using the stream source after
// the header, so its leftover bytes and iterator are reachable.

export interface HeadSource {
  /** Absolute offset of the first unconsumed byte. */
  readonly position: number
  /** The unconsumed bytes from `position`: at least `n` of them unless the data ends first. */
  ensure: (n: number) => Promise<Uint8Array>
  consume: (n: number) => void
  skipTo: (position: number) => Promise<void>
}

/**
 * Pulls chunks from an async iterator. Only the head is ever concatenated; afterwards the
 * caller pulls raw chunks (the leftover first) with `next()`.
 */
export class StreamSource implements HeadSource {
  position: number
  private readonly iterator: AsyncIterator<Uint8Array>
  private readonly signal: AbortSignal | undefined
  private buffered: Uint8Array = new Uint8Array(0)
  private eof = false
  /** Rejects the pull in flight, if any. */
  private rejectPull: ((err: Error) => void) | undefined
  private onAbort: (() => void) | undefined

  constructor (source: AsyncIterable<Uint8Array>, signal?: AbortSignal, startPosition = 0) {
    this.iterator = source[Symbol.asyncIterator]()
    this.signal = signal
    this.position = startPosition
    if (signal != null && !signal.aborted) {
      // A stalled stream (slow HTTP, a transient still downloading) must not pin an aborted
      // job: one listener fails whichever pull is waiting. (Promise.race per chunk would
      // leave a reaction on a never-settling promise for every chunk.)
      this.onAbort = () => { this.rejectPull?.(abortErrorFrom(signal)) }
      signal.addEventListener('abort', this.onAbort, { once: true })
    }
  }

  private async pull (): Promise<IteratorResult<Uint8Array>> {
    if (this.onAbort === undefined) return await this.iterator.next()
    return await new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
      this.rejectPull = reject
      this.iterator.next().then(resolve, reject)
    }).finally(() => { this.rejectPull = undefined })
  }

  /** The next raw chunk (the leftover first), or undefined at the end of the data. */
  async next (): Promise<Uint8Array | undefined> {
    if (this.buffered.length > 0) {
      const b = this.takeBuffered()
      this.position += b.length
      return b
    }
    if (this.eof) return undefined
    checkAborted(this.signal)
    const result = await this.pull()
    if (result.done === true) {
      this.eof = true
      return undefined
    }
    const chunk = result.value
    this.position += chunk.length
    return chunk
  }

  private takeBuffered (): Uint8Array {
    const b = this.buffered
    this.buffered = new Uint8Array(0)
    return b
  }

  /** Hands back the unused tail of a chunk obtained from `next()`. */
  unshift (bytes: Uint8Array): void {
    if (bytes.length === 0) return
    if (this.buffered.length > 0) throw new Error('StreamSource.unshift: buffer not empty')
    this.buffered = bytes
    this.position -= bytes.length
  }

  async ensure (n: number): Promise<Uint8Array> {
    while (this.buffered.length < n && !this.eof) {
      const have = this.buffered
      this.buffered = new Uint8Array(0)
      const chunk = await this.next()
      if (chunk === undefined) {
        this.buffered = have
        break
      }
      this.position -= chunk.length
      if (have.length === 0) {
        this.buffered = chunk
      } else {
        const joined = new Uint8Array(have.length + chunk.length)
        joined.set(have, 0)
        joined.set(chunk, have.length)
        this.buffered = joined
      }
    }
    return this.buffered
  }

  consume (n: number): void {
    this.buffered = this.buffered.subarray(n)
    this.position += n
  }

  async skipTo (position: number): Promise<void> {
    while (this.position < position) {
      if (this.buffered.length > 0) {
        this.consume(Math.min(this.buffered.length, position - this.position))
        continue
      }
      const chunk = await this.next()
      if (chunk === undefined) return
      const over = this.position - position
      if (over > 0) this.unshift(chunk.subarray(chunk.length - over))
    }
  }

  /** Absolute offset of the end of what has been pulled so far (including buffered bytes). */
  get pulledEnd (): number { return this.position + this.buffered.length }

  get ended (): boolean { return this.eof && this.buffered.length === 0 }

  async close (): Promise<void> {
    if (this.signal != null && this.onAbort != null) this.signal.removeEventListener('abort', this.onAbort)
    this.eof = true
    this.buffered = new Uint8Array(0)
    try {
      await this.iterator.return?.()
    } catch {}
  }
}

/** Positional reads: skipping is free and nothing but the head is read. */
export class ReadSource implements HeadSource {
  position: number
  private buffered: Uint8Array = new Uint8Array(0)
  private eof = false

  constructor (
    private readonly read: (position: number, length: number) => Promise<Uint8Array>,
    private readonly signal?: AbortSignal,
    startPosition = 0,
    private readonly readSize = 4096
  ) {
    this.position = startPosition
  }

  async ensure (n: number): Promise<Uint8Array> {
    if (this.buffered.length >= n || this.eof) return this.buffered
    checkAborted(this.signal)
    const want = Math.max(n, this.readSize)
    const got = await this.read(this.position, want)
    checkAborted(this.signal)
    if (got.length < want) this.eof = true
    this.buffered = got
    return got
  }

  consume (n: number): void {
    this.buffered = this.buffered.subarray(n)
    this.position += n
  }

  async skipTo (position: number): Promise<void> {
    if (position <= this.position) return
    const delta = position - this.position
    if (delta <= this.buffered.length) {
      this.consume(delta)
      return
    }
    this.buffered = new Uint8Array(0)
    this.eof = false
    this.position = position
  }
}

// ---------------------------------------------------------------------------------------------
// The CARv1 header: dag-cbor `{roots: [CID...], version: 1}`. A general dag-cbor decoder is far
// more than this needs; this one reads definite-length items only, with a depth bound, so a
// hostile header can neither recurse deeply nor allocate more than its own bytes.

const MAX_CBOR_DEPTH = 16
const textDecoder = new TextDecoder('utf-8', { fatal: true })

interface Cursor { bytes: Uint8Array, pos: number, end: number, base: number }

function cborError (c: Cursor, what: string, at = c.pos): InvalidCarError {
  return invalidCar(`malformed CAR header (${what})`, c.base + at)
}

/** Reads an item's initial byte and argument: [major type, argument (length/value), item start]. */
function readHead (c: Cursor): [major: number, arg: number, start: number] {
  const start = c.pos
  if (c.pos >= c.end) throw cborError(c, 'unexpected end')
  // Cursor reads stay below c.end, which is within c.bytes.
  const ib = c.bytes[c.pos++]!
  const major = ib >> 5
  const info = ib & 0x1f
  if (info < 24) return [major, info, start]
  let n: number
  if (info === 24) n = 1
  else if (info === 25) n = 2
  else if (info === 26) n = 4
  else if (info === 27) n = 8
  else throw cborError(c, info === 31 ? 'indefinite length' : 'reserved additional info', start)
  if (c.pos + n > c.end) throw cborError(c, 'unexpected end', start)
  let arg = 0
  for (let i = 0; i < n; i++) arg = arg * 256 + c.bytes[c.pos++]!
  if (arg > Number.MAX_SAFE_INTEGER) throw cborError(c, 'integer too large', start)
  return [major, arg, start]
}

function skipItem (c: Cursor, depth: number): void {
  if (depth > MAX_CBOR_DEPTH) throw cborError(c, 'nesting too deep')
  const [major, arg, start] = readHead(c)
  switch (major) {
    case 0: case 1: case 7: return
    case 2: case 3:
      if (c.pos + arg > c.end) throw cborError(c, 'unexpected end', start)
      c.pos += arg
      return
    case 4:
      for (let i = 0; i < arg; i++) skipItem(c, depth + 1)
      return
    case 5:
      for (let i = 0; i < arg; i++) { skipItem(c, depth + 1); skipItem(c, depth + 1) }
      return
    case 6:
      skipItem(c, depth + 1)
  }
}

function readCidLink (c: Cursor): CID {
  const [major, tag, start] = readHead(c)
  if (major !== 6 || tag !== 42) throw cborError(c, 'root is not a CID link', start)
  const [bmajor, len, bstart] = readHead(c)
  if (bmajor !== 2) throw cborError(c, 'CID link is not a byte string', bstart)
  if (c.pos + len > c.end) throw cborError(c, 'unexpected end', bstart)
  if (len < 2 || c.bytes[c.pos] !== 0x00) throw cborError(c, 'CID link lacks the identity multibase prefix', c.pos)
  // Copied: the head buffer may be a pooled or reused chunk.
  const cidBytes = copyBytes(c.bytes, c.pos + 1, c.pos + len)
  const at = c.pos + 1
  c.pos += len
  try {
    return CID.decode(cidBytes)
  } catch (err) {
    throw invalidCar('malformed CID in CAR header', c.base + at, err)
  }
}

interface CarV1Header { version: number, roots?: CID[] }

/** Decodes the CARv1 header block occupying exactly bytes[start, end); `base` maps positions to file offsets for messages. */
function decodeCarHeader (bytes: Uint8Array, start: number, end: number, base = 0): CarV1Header {
  const c: Cursor = { bytes, pos: start, end, base }
  const [major, entries, mstart] = readHead(c)
  if (major !== 5) throw cborError(c, 'not a map', mstart)
  let version: number | undefined
  let roots: CID[] | undefined
  for (let i = 0; i < entries; i++) {
    const [kmajor, klen, kstart] = readHead(c)
    if (kmajor !== 3) throw cborError(c, 'map key is not a string', kstart)
    if (c.pos + klen > c.end) throw cborError(c, 'unexpected end', kstart)
    let key: string
    try {
      key = textDecoder.decode(bytes.subarray(c.pos, c.pos + klen))
    } catch (err) {
      throw invalidCar('malformed CAR header (invalid UTF-8 key)', base + c.pos, err)
    }
    c.pos += klen
    if (key === 'version') {
      const [vmajor, v, vstart] = readHead(c)
      if (vmajor !== 0) throw cborError(c, 'version is not an unsigned integer', vstart)
      version = v
    } else if (key === 'roots') {
      const [amajor, count, astart] = readHead(c)
      if (amajor !== 4) throw cborError(c, 'roots is not an array', astart)
      roots = []
      for (let r = 0; r < count; r++) roots.push(readCidLink(c))
    } else {
      skipItem(c, 1)
    }
  }
  if (c.pos !== end) throw cborError(c, 'trailing bytes')
  if (version === undefined) throw cborError(c, 'no version', start)
  return roots === undefined ? { version } : { version, roots }
}

const varintScratch: VarintOut = { value: 0, length: 0 }

/** Reads the CARv1 header at `src.position` and consumes it. */
async function readCarV1Header (src: HeadSource, maxHeaderSize = DEFAULT_MAX_HEADER_SIZE): Promise<CarV1Header & { headerLength: number }> {
  const start = src.position
  let b = await src.ensure(MAX_VARINT_BYTES)
  const out = varintScratch
  try {
    if (!readVarint(b, 0, b.length, out)) throw invalidCar('truncated header length', start + b.length)
  } catch (err) {
    if (err instanceof VarintError) throw invalidCar(`malformed header length (${err.message})`, start, err)
    throw err
  }
  const varintLen = out.length
  const len = out.value
  if (len === 0) throw invalidCar('empty header', start)
  if (len > maxHeaderSize) throw invalidCar(`header length ${len} exceeds the limit of ${maxHeaderSize}`, start)
  const total = varintLen + len
  b = await src.ensure(total)
  if (b.length < total) throw invalidCar(`truncated header (declares ${len} bytes, ${b.length - varintLen} present)`, start + b.length)
  const header = decodeCarHeader(b, varintLen, total, start)
  src.consume(total)
  return { ...header, headerLength: total }
}

function readU64 (view: DataView, at: number, base: number, name: string): number {
  const lo = view.getUint32(at, true)
  const hi = view.getUint32(at + 4, true)
  if (hi >= 0x200000) throw invalidCar(`CARv2 ${name} exceeds Number.MAX_SAFE_INTEGER`, base + at)
  return hi * 0x100000000 + lo
}

/** Whether `b` starts with the CARv2 pragma (its first 11 bytes). */
export function isPragma (b: Uint8Array): boolean {
  if (b.length < CARV2_PRAGMA.length) return false
  for (let i = 0; i < CARV2_PRAGMA.length; i++) if (b[i] !== CARV2_PRAGMA[i]) return false
  return true
}

/** Parses the start of a CAR from `src` (positioned at byte 0); leaves it positioned at the first section. */
export async function readCarHead (src: HeadSource, options: CarLayoutOptions = {}): Promise<CarLayout> {
  const maxHeaderSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE
  let b = await src.ensure(CARV2_PRAGMA.length)
  if (b.length >= CARV2_PRAGMA.length && isPragma(b)) {
    b = await src.ensure(CARV2_HEADER_END)
    if (b.length < CARV2_HEADER_END) throw invalidCar('truncated CARv2 header', b.length)
    const view = new DataView(b.buffer, b.byteOffset, CARV2_HEADER_END)
    const dataOffset = readU64(view, 27, 0, 'data offset')
    const dataSize = readU64(view, 35, 0, 'data size')
    const indexOffset = readU64(view, 43, 0, 'index offset')
    if (dataOffset < CARV2_HEADER_END) throw invalidCar(`CARv2 data offset ${dataOffset} overlaps the CARv2 header`, 27)
    if (dataOffset + dataSize > Number.MAX_SAFE_INTEGER) throw invalidCar('CARv2 data offset + size exceed Number.MAX_SAFE_INTEGER', 35)
    if (indexOffset !== 0 && indexOffset < CARV2_HEADER_END) throw invalidCar(`CARv2 index offset ${indexOffset} overlaps the CARv2 header`, 43)
    const size = options.size
    // Positional reads never notice a jump past the end on their own: check before any.
    if (size !== undefined && dataOffset >= size) throw invalidCar(`CARv2 data offset ${dataOffset} is past the end of the file (${size} bytes)`, 27)
    if (size !== undefined && dataOffset + dataSize > size) {
      throw invalidCar(`CARv2 data (offset ${dataOffset}, size ${dataSize}) extends past the end of the file (${size} bytes)`, 35)
    }
    src.consume(CARV2_HEADER_END)
    await src.skipTo(dataOffset)
    if (src.position !== dataOffset) throw invalidCar(`CARv2 data offset ${dataOffset} is past the end of the data`, src.position)
    const inner = await readCarV1Header(src, maxHeaderSize)
    if (inner.version !== 1) throw invalidCar(`CARv2 payload has CAR version ${inner.version}, expected 1`, dataOffset)
    if (inner.headerLength > dataSize) throw invalidCar(`CARv2 data size ${dataSize} is smaller than its CARv1 header`, 35)
    const layout: CarLayout = {
      version: 2,
      payloadOffset: dataOffset,
      payloadSize: dataSize,
      roots: inner.roots ?? [],
      headerLength: inner.headerLength
    }
    if (indexOffset !== 0) layout.indexOffset = indexOffset
    return layout
  }
  const header = await readCarV1Header(src, maxHeaderSize)
  if (header.version === 2) throw invalidCar('CAR version 2 without the CARv2 pragma', 0)
  if (header.version !== 1) throw invalidCar(`unsupported CAR version ${header.version}`, 0)
  if (header.roots === undefined) throw invalidCar('malformed CAR header (no roots)', 0)
  return { version: 1, payloadOffset: 0, roots: header.roots, headerLength: header.headerLength }
}

/**
 * Reads the start of a CAR and describes where its CARv1 payload is. Uses positional reads
 * when the reader has them, otherwise the first chunks of `stream()` (then closes it).
 */
export async function readCarLayout (reader: MountReader, signal?: AbortSignal, options: CarLayoutOptions = {}): Promise<CarLayout> {
  checkAborted(signal)
  if (reader.read !== undefined) {
    return await readCarHead(new ReadSource(reader.read.bind(reader), signal), options)
  }
  const src = new StreamSource(reader.stream(0), signal)
  try {
    return await readCarHead(src, options)
  } finally {
    await src.close()
  }
}
