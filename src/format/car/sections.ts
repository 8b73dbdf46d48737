import { StreamSource, checkAborted, copyBytes, invalidCar } from './layout.js'
import { MAX_VARINT_BYTES, VarintError, readVarint } from '../varint.js'
import type { VarintOut } from '../varint.js'
import { IDENTITY_CODE } from '../multihash.js'

export const DEFAULT_MAX_SECTION_SIZE = 32 * 1024 * 1024

/**
 * One section's header as the parser found it. The parser reuses a single instance and its
 * `bytes` may be a reused internal buffer: read what you need inside the callback and copy
 * anything you keep.
 */
export class SectionHeader {
  /** Buffer holding the CID at [cidStart, cidEnd). */
  bytes: Uint8Array = new Uint8Array(0)
  cidStart = 0
  /** Start of the multihash: the whole CID for v0, after version and codec for v1. */
  mhStart = 0
  cidEnd = 0
  /** Offset of the section's length varint, relative to the payload start. */
  offset = 0
  /** Bytes of the whole section, length varint included: the next section is at offset + sectionLength. */
  sectionLength = 0
  /** Offset of the block data, relative to the payload start. */
  dataOffset = 0
  dataLength = 0
  /** `bytes` is the parser's carry-over buffer (a header split across chunks), overwritten later. */
  transient = false

  get cid (): Uint8Array { return this.bytes.subarray(this.cidStart, this.cidEnd) }
  get multihash (): Uint8Array { return this.bytes.subarray(this.mhStart, this.cidEnd) }
  /** Identity multihash (code 0x00, a one-byte varint). */
  get isIdentity (): boolean { return this.bytes[this.mhStart] === IDENTITY_CODE }
}

export type SectionVisitor = (section: SectionHeader) => void

export interface SectionParserOptions {
  /** Upper bound on a section's declared length (CID + data); default 32 MiB. */
  maxSectionSize?: number | undefined
  /** Payload-relative offset of the first byte pushed (after the CARv1 header); default 0. */
  startOffset?: number | undefined
  /** Payload-relative offset where the payload ends (a CARv2's dataSize); default: the end of input. */
  limit?: number | undefined
  /** Absolute offset of payload byte 0 in the file; only used to name offsets in errors. */
  baseOffset?: number | undefined
}

const INCOMPLETE = -1
const ZERO_LENGTH = -2

/**
 * Incremental CAR section parser over arbitrary chunk boundaries. Push-based and synchronous
 * so a whole chunk is parsed without a promise per section, which is what makes it fast; only a
 * header split across chunks is copied (into a small carry-over buffer), block data never is.
 */
export class SectionParser {
  private readonly visitor: SectionVisitor
  private readonly maxSectionSize: number
  private readonly limit: number
  private readonly baseOffset: number
  private readonly header = new SectionHeader()
  private readonly v: VarintOut = { value: 0, length: 0 }
  /** Payload-relative offset of the next byte to be pushed. */
  private pos: number
  /** Block bytes of the current section not yet seen. */
  private skip = 0
  private sectionStart = 0
  private carry = new Uint8Array(256)
  private carryLen = 0
  private zeroLenVarint = 0
  private finished = false
  private sawZeroLength = false
  /** Some block data was jumped over (skipAhead), so its presence was never seen. */
  private jumped = false

  constructor (visitor: SectionVisitor, options: SectionParserOptions = {}) {
    this.visitor = visitor
    this.maxSectionSize = options.maxSectionSize ?? DEFAULT_MAX_SECTION_SIZE
    this.pos = options.startOffset ?? 0
    this.limit = options.limit ?? Number.POSITIVE_INFINITY
    this.baseOffset = options.baseOffset ?? 0
    if (this.pos >= this.limit) this.finished = true
  }

  /** True once the payload has ended: a zero-length section, or the limit reached. */
  get done (): boolean { return this.finished }
  /** True if the payload ended with a zero-length section. */
  get endedByZeroLength (): boolean { return this.sawZeroLength }
  /** Payload-relative offset of the next byte the parser expects. */
  get position (): number { return this.pos }
  /** Bytes of the current section's block data still to come before the next section header. */
  get pendingSkip (): number { return this.skip }

  /**
   * Advances over up to `n` bytes of pending block data without them being pushed: a reader
   * with positional reads jumps over payloads instead of reading them. Callers keep at least
   * the section's last byte to read, since only reading it proves the data is there.
   */
  skipAhead (n: number): void {
    if (this.finished) return
    if (n > this.skip) n = this.skip
    if (this.pos + n > this.limit) n = this.limit - this.pos
    if (n <= 0) return
    this.skip -= n
    this.jumped = true
    this.advance(n)
  }

  /**
   * Parses the next chunk. Returns how many of its bytes belong to the payload: all of them
   * unless the payload ended inside this chunk (the rest is whatever follows, e.g. a CARv2
   * index or padding).
   */
  push (chunk: Uint8Array): number {
    if (this.finished) return 0
    const base = this.pos
    let end = chunk.length
    if (base + end > this.limit) end = this.limit - base
    let i = 0
    if (this.skip > 0) {
      if (this.skip >= end) {
        this.skip -= end
        return this.advance(end)
      }
      i = this.skip
      this.skip = 0
    }
    if (this.carryLen > 0) {
      i = this.resumeCarry(chunk, i, end)
      if (i === INCOMPLETE) return this.advance(end)
      if (this.finished) {
        this.pos = base + i
        return i
      }
      if (this.skip > 0) return this.advance(end)
    }
    const h = this.header
    while (i < end) {
      const n = this.parseAt(chunk, i, end, base + i)
      if (n > 0) {
        this.visitor(h)
        const dataEnd = i + n + h.dataLength
        if (dataEnd <= end) {
          i = dataEnd
        } else {
          this.skip = dataEnd - end
          break
        }
      } else if (n === ZERO_LENGTH) {
        this.finished = true
        this.sawZeroLength = true
        i += this.zeroLenVarint
        this.pos = base + i
        return i
      } else {
        this.stash(chunk, i, end, base + i)
        break
      }
    }
    return this.advance(end)
  }

  /** Signals the end of input; throws InvalidCarError if it cut a section (or a bounded payload) short. */
  end (): void {
    if (this.finished) return
    this.checkComplete()
    if (this.limit !== Number.POSITIVE_INFINITY && this.pos < this.limit) {
      throw invalidCar(`truncated payload (${this.limit - this.pos} bytes missing)`, this.baseOffset + this.pos)
    }
    this.finished = true
  }

  private advance (consumed: number): number {
    this.pos += consumed
    if (this.pos >= this.limit) {
      this.checkComplete()
      this.finished = true
    }
    return consumed
  }

  private checkComplete (): void {
    if (this.skip > 0) {
      const missing = this.jumped ? 'block data ends early' : `${this.skip} bytes of block data missing`
      throw invalidCar(`truncated section (${missing})`, this.baseOffset + this.sectionStart)
    }
    if (this.carryLen > 0) throw invalidCar('truncated section', this.baseOffset + this.sectionStart)
  }

  private stash (chunk: Uint8Array, from: number, to: number, offset: number): void {
    const n = to - from
    if (this.carry.length < n) this.carry = new Uint8Array(Math.max(n, this.carry.length * 2))
    this.carry.set(chunk.subarray(from, to), 0)
    this.carryLen = n
    this.sectionStart = offset
  }

  /**
   * Completes a header split across chunks. Returns the index in `chunk` just past the header
   * (skip already set for the block data), or INCOMPLETE if the whole chunk went into the carry.
   */
  private resumeCarry (chunk: Uint8Array, from: number, end: number): number {
    const old = this.carryLen
    let i = from
    let step = 64
    for (;;) {
      const take = Math.min(end - i, step)
      step *= 2
      const need = this.carryLen + take
      if (this.carry.length < need) {
        const grown = new Uint8Array(Math.max(need, this.carry.length * 2))
        grown.set(this.carry.subarray(0, this.carryLen), 0)
        this.carry = grown
      }
      this.carry.set(chunk.subarray(i, i + take), this.carryLen)
      this.carryLen += take
      i += take
      const n = this.parseAt(this.carry, 0, this.carryLen, this.sectionStart)
      if (n === INCOMPLETE) {
        if (i >= end) return INCOMPLETE
        continue
      }
      this.carryLen = 0
      if (n === ZERO_LENGTH) {
        this.finished = true
        this.sawZeroLength = true
        return from + this.zeroLenVarint - old
      }
      this.visitor(this.header)
      const after = from + n - old
      const dataEnd = after + this.header.dataLength
      if (dataEnd <= end) return dataEnd
      this.skip = dataEnd - end
      return end
    }
  }

  private parseAt (buf: Uint8Array, i: number, end: number, offset: number): number {
    const n = parseSection(buf, i, end, offset, this.baseOffset, this.maxSectionSize, this.v, this.header)
    if (n > 0) {
      this.header.transient = buf === this.carry
      this.sectionStart = offset
      this.jumped = false
    } else if (n === ZERO_LENGTH) {
      this.zeroLenVarint = this.v.length
    }
    return n
  }
}

/**
 * Reads one of a CID's varints, which must end before `lim`; `sectEnd` tells running out of
 * section from running out of bytes. A padded varint (a last byte of 0 after the first) is
 * refused: multiformats and go-cid refuse such CIDs, the go-car index format cannot hold such
 * a multihash, and no lookup (by the minimal multihash a CID carries) could ever find it.
 */
function sectionVarint (buf: Uint8Array, p: number, lim: number, sectEnd: number, v: VarintOut, at: number, what: string): boolean {
  try {
    if (readVarint(buf, p, lim, v)) {
      if (v.length > 1 && buf[p + v.length - 1] === 0) throw invalidCar(`malformed ${what} (varint not minimally encoded)`, at)
      return true
    }
  } catch (err) {
    if (err instanceof VarintError) throw invalidCar(`malformed ${what} (${err.message})`, at)
    throw err
  }
  if (lim >= sectEnd) throw invalidCar(`${what} runs past the end of its section`, at)
  return false
}

/**
 * Parses the section header at buf[i..end) into `h`. Returns its length (varint + CID), or
 * ZERO_LENGTH (with the varint's length in v.length), or INCOMPLETE when `end` comes first.
 * `offset` is the payload-relative offset of buf[i]; `base` + offset is its file offset.
 */
function parseSection (
  buf: Uint8Array, i: number, end: number, offset: number, base: number, maxSectionSize: number, v: VarintOut, h: SectionHeader
): number {
  const abs = base + offset
  // One-byte lengths are decoded inline; readVarint handles the rest.
  let len: number
  let p: number
  if (i >= end) return INCOMPLETE
  const b0 = buf[i]! // i < end <= buf.length
  if (b0 < 0x80) {
    len = b0
    p = i + 1
  } else {
    try {
      if (!readVarint(buf, i, end, v)) return INCOMPLETE
    } catch (err) {
      if (err instanceof VarintError) throw invalidCar(`malformed section length (${err.message})`, abs)
      throw err
    }
    len = v.value
    p = i + v.length
  }
  if (len === 0) {
    v.length = p - i
    return ZERO_LENGTH
  }
  if (len > maxSectionSize) {
    throw invalidCar(`section length ${len} exceeds the limit of ${maxSectionSize}`, abs)
  }
  const cidStart = p
  const sectEnd = p + len
  const lim = sectEnd < end ? sectEnd : end
  let mhStart: number
  let cidEnd: number
  if (lim - p < 2) {
    if (lim >= sectEnd) throw invalidCar('section too short for a CID', abs)
    return INCOMPLETE
  }
  if (buf[p] === 0x12 && buf[p + 1] === 0x20) {
    mhStart = p
    cidEnd = p + 34
  } else {
    const cidAbs = abs + (p - i)
    if (!sectionVarint(buf, p, lim, sectEnd, v, cidAbs, 'CID version')) return INCOMPLETE
    if (v.value !== 1) throw invalidCar(`unsupported CID version ${v.value}`, cidAbs)
    p += v.length
    if (!sectionVarint(buf, p, lim, sectEnd, v, cidAbs, 'CID codec')) return INCOMPLETE
    p += v.length
    mhStart = p
    if (!sectionVarint(buf, p, lim, sectEnd, v, cidAbs, 'multihash code')) return INCOMPLETE
    p += v.length
    if (!sectionVarint(buf, p, lim, sectEnd, v, cidAbs, 'multihash length')) return INCOMPLETE
    p += v.length
    cidEnd = p + v.value
  }
  if (cidEnd > sectEnd) throw invalidCar('CID runs past the end of its section', abs)
  if (cidEnd > end) return INCOMPLETE
  const headerLen = cidEnd - i
  h.bytes = buf
  h.cidStart = cidStart
  h.mhStart = mhStart
  h.cidEnd = cidEnd
  h.offset = offset
  h.sectionLength = cidStart - i + len
  h.dataOffset = offset + headerLen
  h.dataLength = len - (cidEnd - cidStart)
  return headerLen
}

/** A section as `readSections` yields it. The views alias the source's chunks (or a copy of a header split across chunks). */
export interface CarSection {
  cid: Uint8Array
  multihash: Uint8Array
  /** Offset of the section's length varint, relative to the payload start. */
  offset: number
  /** Bytes of the whole section, length varint included. */
  sectionLength: number
  /** Offset of the block data, relative to the payload start. */
  dataOffset: number
  dataLength: number
}

export interface ReadSectionsOptions extends SectionParserOptions {
  /** The source starts at the CARv1 header (payload byte 0): skip it first. Overrides startOffset. */
  skipHeader?: boolean
  signal?: AbortSignal
}

/**
 * Iterates the sections of a CARv1 payload streamed as chunks. For bulk work (indexing) use
 * `SectionParser` directly: it avoids an object and a promise per section.
 * A section is yielded once its header is complete; if its data then turns out to be cut
 * short, the InvalidCarError follows it.
 */
export async function * readSections (
  source: AsyncIterable<Uint8Array>, options: ReadSectionsOptions = {}
): AsyncGenerator<CarSection, void, undefined> {
  const signal = options.signal
  const src = new StreamSource(source, signal)
  try {
    let startOffset = options.startOffset ?? 0
    if (options.skipHeader === true) {
      const b = await src.ensure(MAX_VARINT_BYTES)
      const v: VarintOut = { value: 0, length: 0 }
      const base = options.baseOffset ?? 0
      try {
        if (!readVarint(b, 0, b.length, v)) throw invalidCar('truncated header length', base + b.length)
      } catch (err) {
        if (err instanceof VarintError) throw invalidCar(`malformed header length (${err.message})`, base, err)
        throw err
      }
      startOffset = v.length + v.value
      await src.skipTo(startOffset)
      if (src.position < startOffset) throw invalidCar('truncated header', base + src.position)
    }
    let batch: CarSection[] = []
    const parser = new SectionParser((h) => {
      const cid = h.transient ? copyBytes(h.bytes, h.cidStart, h.cidEnd) : h.bytes.subarray(h.cidStart, h.cidEnd)
      batch.push({
        cid,
        multihash: cid.subarray(h.mhStart - h.cidStart),
        offset: h.offset,
        sectionLength: h.sectionLength,
        dataOffset: h.dataOffset,
        dataLength: h.dataLength
      })
    }, { ...options, startOffset })
    while (!parser.done) {
      const chunk = await src.next()
      if (chunk === undefined) {
        parser.end()
        break
      }
      // Sections before a corrupt one in the same chunk are still delivered, then the error.
      let failure: unknown
      try {
        parser.push(chunk)
      } catch (err) {
        failure = err
      }
      if (batch.length > 0) {
        const out = batch
        batch = []
        for (const s of out) {
          yield s
          checkAborted(signal)
        }
      }
      if (failure !== undefined) throw failure
    }
  } finally {
    await src.close()
  }
}

/** Where the parts of one section lie in a buffer that starts at the section. */
export interface SectionHead {
  /** Length varint + CID: the block data starts here. */
  headerLength: number
  cidStart: number
  mhStart: number
  cidEnd: number
  /** Block data is bytes[headerLength, headerLength + dataLength), possibly beyond this buffer. */
  dataLength: number
}

const EMPTY = new Uint8Array(0)
const headScratch = new SectionHeader()
const headVarint: VarintOut = { value: 0, length: 0 }

/**
 * Parses the section starting at bytes[0] for random access: where its CID and data are, or
 * undefined if `bytes` ends before the CID does (read more and retry). `at` is the section's
 * absolute file offset, for error messages. A zero-length section is an InvalidCarError here:
 * an index never points at one.
 */
export function parseSectionHead (bytes: Uint8Array, at: number, maxSectionSize = DEFAULT_MAX_SECTION_SIZE): SectionHead | undefined {
  const h = headScratch
  const n = parseSection(bytes, 0, bytes.length, 0, at, maxSectionSize, headVarint, h)
  if (n === INCOMPLETE) return undefined
  if (n === ZERO_LENGTH) throw invalidCar('zero-length section where a block was expected', at)
  const head = { headerLength: n, cidStart: h.cidStart, mhStart: h.mhStart, cidEnd: h.cidEnd, dataLength: h.dataLength }
  h.bytes = EMPTY
  return head
}
