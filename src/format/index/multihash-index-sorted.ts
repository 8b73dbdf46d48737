/**
 * go-car's CARv2 index formats, byte-compatible with go-car (v2/index):
 *
 *   MultihashIndexSorted (multicodec 0x0401):
 *     varint 0x0401
 *     u32le  number of multihash-code buckets, ascending by code; each:
 *       u64le  multihash code
 *       IndexSorted body
 *
 *   IndexSorted (multicodec 0x0400; sha2-256 only when read back, as in go-car):
 *     varint 0x0400, then the body:
 *     u32le  number of width buckets, ascending by width; each:
 *       u32le  width = digest length + 8
 *       u64le  byte length of the entries (count * width)
 *       entries sorted by digest bytes: digest, u64le offset
 *
 * Offsets are relative to the CARv1 payload start.
 */
import { InvalidCarError } from '../../base/errors.js'
import { decodeVarint, encodeVarint, readVarint, varintLength, VarintError } from '../varint.js'
import type { VarintOut } from '../varint.js'
import { IDENTITY_CODE } from '../multihash.js'
import { SortedIndex, SortedIndexBuilder } from './sorted-index.js'
import type { IndexEntry } from '../../base/index-types.js'

export const CAR_INDEX_SORTED = 0x0400
export const CAR_MULTIHASH_INDEX_SORTED = 0x0401
const SHA2_256 = 0x12

export interface DecodeCarIndexOptions {
  /** Leave out identity-multihash entries (go-car writes them only with StoreIdentityCIDs). */
  skipIdentity?: boolean
  /** Added to positions in error messages (e.g. the index's offset in its CARv2 file). */
  baseOffset?: number
}

function invalidIndex (what: string, at: number): InvalidCarError {
  return new InvalidCarError(`invalid CARv2 index: ${what} at byte ${at}`)
}

interface Reader { bytes: Uint8Array, view: DataView, pos: number, base: number }

function need (r: Reader, n: number, what: string): void {
  if (r.pos + n > r.bytes.length) throw invalidIndex(`truncated ${what}`, r.base + r.pos)
}

function u32 (r: Reader, what: string): number {
  need(r, 4, what)
  const v = r.view.getUint32(r.pos, true)
  r.pos += 4
  return v
}

function u64 (r: Reader, what: string): number {
  need(r, 8, what)
  const lo = r.view.getUint32(r.pos, true)
  const hi = r.view.getUint32(r.pos + 4, true)
  if (hi >= 0x200000) throw invalidIndex(`${what} exceeds Number.MAX_SAFE_INTEGER`, r.base + r.pos)
  r.pos += 8
  return hi * 0x100000000 + lo
}

/** Reads one IndexSorted body; entries go to `builder`, or are validated and dropped when it is null. */
function decodeWidthBuckets (r: Reader, code: number, builder: SortedIndexBuilder | null): void {
  const at = r.pos
  const buckets = u32(r, 'bucket count')
  // go-car reads the count as int32.
  if (buckets > 0x7fffffff) throw invalidIndex('negative bucket count', r.base + at)
  const codeLen = varintLength(code)
  for (let b = 0; b < buckets; b++) {
    const wat = r.pos
    const width = u32(r, 'bucket width')
    const byteLength = u64(r, 'bucket length')
    if (width <= 8) throw invalidIndex(`bucket width ${width} leaves no room for a digest`, r.base + wat)
    if (byteLength % width !== 0) throw invalidIndex(`bucket length ${byteLength} is not a multiple of its width ${width}`, r.base + wat)
    need(r, byteLength, 'bucket entries')
    if (builder === null) {
      r.pos += byteLength
      continue
    }
    const digestLen = width - 8
    // One scratch multihash per bucket: the builder copies it, so no allocation per entry.
    const mh = new Uint8Array(codeLen + varintLength(digestLen) + digestLen)
    const prefix = encodeVarint(code, mh, 0) + encodeVarint(digestLen, mh, codeLen)
    const { bytes, view } = r
    const end = r.pos + byteLength
    for (let p = r.pos; p < end; p += width) {
      mh.set(bytes.subarray(p, p + digestLen), prefix)
      const lo = view.getUint32(p + digestLen, true)
      const hi = view.getUint32(p + digestLen + 4, true)
      if (hi >= 0x200000) throw invalidIndex('offset exceeds Number.MAX_SAFE_INTEGER', r.base + p + digestLen)
      builder.add(mh, hi * 0x100000000 + lo)
    }
    r.pos = end
  }
}

/**
 * Decodes a CARv2 index (MultihashIndexSorted, or IndexSorted read as sha2-256) into
 * `builder`; the whole of `bytes` must be the index. Throws InvalidCarError.
 */
export function decodeCarIndexInto (bytes: Uint8Array, builder: SortedIndexBuilder, options: DecodeCarIndexOptions = {}): void {
  const r: Reader = { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), pos: 0, base: options.baseOffset ?? 0 }
  let codec: VarintOut
  try {
    codec = decodeVarint(bytes, 0)
  } catch (err) {
    if (err instanceof VarintError) throw invalidIndex(`malformed codec (${err.message})`, r.base)
    throw err
  }
  r.pos = codec.length
  const skipIdentity = options.skipIdentity === true
  if (codec.value === CAR_MULTIHASH_INDEX_SORTED) {
    const at = r.pos
    const codes = u32(r, 'multihash code count')
    if (codes > 0x7fffffff) throw invalidIndex('negative multihash code count', r.base + at)
    for (let c = 0; c < codes; c++) {
      const code = u64(r, 'multihash code')
      decodeWidthBuckets(r, code, code === IDENTITY_CODE && skipIdentity ? null : builder)
    }
  } else if (codec.value === CAR_INDEX_SORTED) {
    decodeWidthBuckets(r, SHA2_256, builder)
  } else {
    throw invalidIndex(`unsupported index codec 0x${codec.value.toString(16)}`, r.base)
  }
  if (r.pos !== bytes.length) throw invalidIndex(`${bytes.length - r.pos} trailing bytes`, r.base + r.pos)
}

/** Decodes a CARv2 index into a SortedIndex (duplicate multihashes keep the smallest offset). */
export function decodeCarIndex (bytes: Uint8Array, options: DecodeCarIndexOptions = {}): SortedIndex {
  const builder = new SortedIndexBuilder(Math.max(16, Math.floor(bytes.length / 40)))
  decodeCarIndexInto(bytes, builder, options)
  return builder.build()
}

interface Group { code: number, digestLen: number, first: number, end: number }

function writeU64 (view: DataView, p: number, x: number): void {
  view.setUint32(p, x >>> 0, true)
  view.setUint32(p + 4, Math.floor(x / 0x100000000), true)
}

/**
 * Writes entries [first, end) of one bucket (digest, then u64 offset) at `p`; returns the
 * position after them. The digest by Buffer#copy: a byte loop (or `TypedArray#set` of a view
 * per entry) measured 3–4× slower on a 65,536-entry index.
 */
function writeEntries (
  bytes: Buffer, view: DataView, p: number, layout: SortedIndex['layout'], first: number, end: number, digestLen: number
): number {
  const { arena, starts, offsets } = layout
  const source = Buffer.from(arena.buffer, arena.byteOffset, arena.byteLength)
  for (let i = first; i < end; i++) {
    // i < size: starts has size + 1 items, offsets size. The digest ends its multihash.
    const e = starts[i + 1]!
    p += source.copy(bytes, p, e - digestLen, e)
    writeU64(view, p, offsets[i]!)
    p += 8
  }
  return p
}

/**
 * Encodes entries as go-car's MultihashIndexSorted, codec varint included: the bytes go-car
 * writes for the same entries (after de-duplication). Identity multihashes are encoded if
 * present; the indexer never produces them.
 */
export function encodeMultihashIndexSorted (entries: Iterable<IndexEntry>): Uint8Array {
  const index = SortedIndex.from(entries)
  const n = index.size
  // Read from the index's memory directly: a view per entry would cost more than the encoding.
  const { arena, starts } = index.layout
  // In multihash-byte order, entries sharing (code, digest length) share a byte prefix and so
  // form one contiguous run, already sorted by digest: exactly one go-car bucket.
  const groups: Group[] = []
  const v: VarintOut = { value: 0, length: 0 }
  let cur: Group | undefined
  for (let i = 0; i < n; i++) {
    // i < n, and starts has n + 1 items.
    const start = starts[i]!
    const end = starts[i + 1]!
    let code: number
    let digestLen: number
    try {
      if (!readVarint(arena, start, end, v)) throw new Error('truncated multihash code')
      code = v.value
      const p = v.length
      if (varintLength(code) !== p) throw new Error('multihash code is not minimally encoded')
      if (!readVarint(arena, start + p, end, v)) throw new Error('truncated multihash length')
      digestLen = v.value
      if (varintLength(digestLen) !== v.length) throw new Error('multihash length is not minimally encoded')
      if (p + v.length + digestLen !== end - start) throw new Error('multihash length does not match its digest')
    } catch (err) {
      throw new RangeError(`cannot encode index entry ${i}: ${(err as Error).message}`, { cause: err })
    }
    if (cur !== undefined && cur.code === code && cur.digestLen === digestLen) {
      cur.end = i + 1
    } else {
      cur = { code, digestLen, first: i, end: i + 1 }
      groups.push(cur)
    }
  }
  // A multihash code's buckets are contiguous only per length; regroup by code.
  groups.sort((a, b) => a.code - b.code || a.digestLen - b.digestLen)
  const codes = [...new Set(groups.map((g) => g.code))]
  const header = varintLength(CAR_MULTIHASH_INDEX_SORTED)
  let size = header + 4 + codes.length * 12
  for (const g of groups) size += 12 + (g.end - g.first) * (g.digestLen + 8)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  const bytes = Buffer.from(out.buffer, out.byteOffset, out.byteLength)
  let p = encodeVarint(CAR_MULTIHASH_INDEX_SORTED, out, 0)
  view.setUint32(p, codes.length, true)
  p += 4
  for (const code of codes) {
    const buckets = groups.filter((g) => g.code === code)
    writeU64(view, p, code)
    p += 8
    view.setUint32(p, buckets.length, true)
    p += 4
    for (const { digestLen, first, end } of buckets) {
      const width = digestLen + 8
      view.setUint32(p, width, true)
      p += 4
      writeU64(view, p, (end - first) * width)
      p += 8
      p = writeEntries(bytes, view, p, index.layout, first, end, digestLen)
    }
  }
  return out
}
