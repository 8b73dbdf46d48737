/**
 * A ShardIndex read straight from go-car MultihashIndexSorted bytes, without decoding them.
 *
 * The format is already what a lookup needs: per (multihash code, digest length) bucket, the
 * entries are fixed-width (digest ‖ u64le offset) and sorted by digest. So a lookup is a
 * binary search over the bytes as stored, and opening an index costs one file read and a
 * walk over the bucket headers — not a decode and re-sort of every entry (which dominated
 * acquires that missed the index cache).
 */
import { InvalidCarError } from '../../base/errors.js'
import { decodeVarint, encodeVarint, varintLength } from '../varint.js'
import { IDENTITY_CODE } from '../multihash.js'
import { CAR_MULTIHASH_INDEX_SORTED } from './multihash-index-sorted.js'
import type { IndexEntry, ShardIndex } from '../../base/index-types.js'

function invalidAt (what: string, at: number): InvalidCarError {
  return new InvalidCarError(`invalid CARv2 index: ${what} at byte ${at}`)
}

interface Bucket {
  readonly code: number
  readonly digestLength: number
  readonly width: number
  /** Byte offset of the first entry. */
  readonly start: number
  readonly count: number
  /** Position (see indexOf) of the bucket's first entry. */
  readonly first: number
}

export interface MultihashIndexSortedViewOptions {
  /** Added to byte positions in error messages (e.g. the index's offset in its CARv2 file). */
  baseOffset?: number
}

export class MultihashIndexSortedView implements ShardIndex {
  readonly size: number
  private readonly buckets: Bucket[] = []
  private readonly view: DataView
  private readonly base: number

  /** @throws InvalidCarError when `bytes` is not a well-formed MultihashIndexSorted index. */
  constructor (private readonly bytes: Uint8Array, options: MultihashIndexSortedViewOptions = {}) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const base = this.base = options.baseOffset ?? 0
    const invalid = (what: string, at: number): InvalidCarError => invalidAt(what, base + at)
    let codec: { value: number, length: number }
    try {
      codec = decodeVarint(bytes, 0)
    } catch (err) {
      throw invalid(`malformed codec varint (${(err as Error).message})`, 0)
    }
    if (codec.value !== CAR_MULTIHASH_INDEX_SORTED) throw invalid(`codec 0x${codec.value.toString(16)} is not MultihashIndexSorted`, 0)
    let pos = codec.length
    const u32 = (what: string): number => {
      if (pos + 4 > bytes.length) throw invalid(`truncated ${what}`, pos)
      const v = this.view.getUint32(pos, true)
      pos += 4
      return v
    }
    const u64 = (what: string): number => {
      if (pos + 8 > bytes.length) throw invalid(`truncated ${what}`, pos)
      const lo = this.view.getUint32(pos, true)
      const hi = this.view.getUint32(pos + 4, true)
      if (hi >= 0x200000) throw invalid(`${what} exceeds 2^53`, pos)
      pos += 8
      return hi * 0x100000000 + lo
    }
    let size = 0
    const codes = u32('multihash code count')
    for (let c = 0; c < codes; c++) {
      const code = u64('multihash code')
      const widths = u32('bucket count')
      for (let w = 0; w < widths; w++) {
        const at = pos
        const width = u32('bucket width')
        const length = u64('bucket length')
        if (width <= 8 || length % width !== 0) throw invalid(`bucket of width ${width} and length ${length}`, at)
        if (pos + length > bytes.length) throw invalid('truncated bucket entries', pos)
        // Identity CIDs are answered from the CID itself, never from an index (as go-car's default).
        if (code !== IDENTITY_CODE) {
          this.buckets.push({ code, digestLength: width - 8, width, start: pos, count: length / width, first: size })
          size += length / width
        }
        pos += length
      }
    }
    if (pos !== bytes.length) throw invalid(`${bytes.length - pos} trailing bytes`, pos)
    this.size = size
  }

  get (multihash: Uint8Array): number | undefined {
    const i = this.indexOf(multihash)
    return i < 0 ? undefined : this.offsetAt(i)
  }

  /**
   * The entry's position: 0 ≤ position < size, in stored order (bucket by bucket, identity
   * buckets left out), or -1 when absent. Positions let callers keep per-entry data in a
   * typed array beside the index (see SectionLengths).
   */
  indexOf (multihash: Uint8Array): number {
    let code: number
    let len: number
    let digestStart: number
    try {
      const c = decodeVarint(multihash, 0)
      const l = decodeVarint(multihash, c.length)
      code = c.value
      len = l.value
      digestStart = c.length + l.length
    } catch {
      return -1
    }
    if (digestStart + len !== multihash.length) return -1
    for (const b of this.buckets) {
      if (b.code === code && b.digestLength === len) return this.search(b, multihash, digestStart)
    }
    return -1
  }

  /** The offset of the entry at `position` (see indexOf). */
  offsetAt (position: number): number {
    const b = this.bucketAt(position)
    if (b === undefined) throw new RangeError(`no entry ${position} in an index of ${this.size}`)
    return this.readOffset(b.start + (position - b.first) * b.width + b.digestLength)
  }

  /**
   * Checks what lookups rely on and the constructor does not: buckets in ascending (code, digest
   * length) order, each (code, length) once, and entries in ascending digest order within each
   * bucket (equal digests allowed: a lookup finds the first). A binary search over unsorted
   * entries would miss blocks that are there. With `offsets`, also that every offset lies in
   * [min, end): inside the CAR's payload, past its header. One pass, no allocation.
   * @throws InvalidCarError naming the first bad entry and its byte position
   */
  validate (offsets?: { min: number, end: number }): void {
    const { bytes } = this
    let previous: Bucket | undefined
    for (const b of this.buckets) {
      if (previous !== undefined && (b.code < previous.code || (b.code === previous.code && b.digestLength <= previous.digestLength))) {
        throw invalidAt(`bucket (code 0x${b.code.toString(16)}, digest length ${b.digestLength}) out of order`, this.base + b.start)
      }
      previous = b
      const n = b.digestLength
      for (let i = 0; i < b.count; i++) {
        const at = b.start + i * b.width
        if (offsets !== undefined) {
          const offset = this.readOffset(at + n)
          if (offset < offsets.min || offset >= offsets.end) {
            throw invalidAt(`entry offset ${offset} is outside the payload's sections [${offsets.min}, ${offsets.end})`, this.base + at + n)
          }
        }
        if (i === 0) continue
        const prev = at - b.width
        let cmp = 0
        // Both entries lie inside the bucket, which the constructor checked is inside bytes.
        for (let k = 0; k < n && cmp === 0; k++) cmp = bytes[prev + k]! - bytes[at + k]!
        if (cmp > 0) throw invalidAt(`entries not sorted by digest (entry ${i} of the bucket of code 0x${b.code.toString(16)})`, this.base + at)
      }
    }
  }

  private bucketAt (position: number): Bucket | undefined {
    if (!(position >= 0 && position < this.size)) return undefined
    // Buckets are few (one per hash function and digest length): a linear walk is enough.
    for (const b of this.buckets) if (position < b.first + b.count) return b
    return undefined
  }

  * [Symbol.iterator] (): Iterator<IndexEntry> {
    for (const b of this.buckets) {
      const prefixLength = varintLength(b.code) + varintLength(b.digestLength)
      for (let i = 0; i < b.count; i++) {
        const at = b.start + i * b.width
        const multihash = new Uint8Array(prefixLength + b.digestLength)
        encodeVarint(b.digestLength, multihash, encodeVarint(b.code, multihash, 0))
        multihash.set(this.bytes.subarray(at, at + b.digestLength), prefixLength)
        yield { multihash, offset: this.readOffset(at + b.digestLength) }
      }
    }
  }

  /** Lower-bound binary search: the position of the first entry whose digest equals the multihash's digest, or -1. */
  private search (b: Bucket, multihash: Uint8Array, digestStart: number): number {
    const { bytes } = this
    const n = b.digestLength
    let lo = 0
    let hi = b.count
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const at = b.start + mid * b.width
      let cmp = 0
      for (let k = 0; k < n; k++) {
        // The constructor checked every bucket lies within bytes; the caller, that the digest has n bytes.
        const d = bytes[at + k]! - multihash[digestStart + k]!
        if (d !== 0) { cmp = d; break }
      }
      if (cmp < 0) lo = mid + 1
      else hi = mid
    }
    if (lo === b.count) return -1
    const at = b.start + lo * b.width
    for (let k = 0; k < n; k++) if (bytes[at + k] !== multihash[digestStart + k]) return -1
    return b.first + lo
  }

  private readOffset (at: number): number {
    return this.view.getUint32(at + 4, true) * 0x100000000 + this.view.getUint32(at, true)
  }
}
