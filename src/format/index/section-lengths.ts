/**
 * Where a block's section ends, from the index alone: so a random get of a remote shard can
 * fetch [offset, offset + length) in one ranged read — length varint, CID and data — without
 * first reading the section's head to learn its length.
 *
 * A section's length is the distance from its offset to the next offset of the index in
 * offset order; the last section runs to the end of the payload. That is exact when the index
 * holds every section (go-car's and this project's indexes do, identity CIDs aside); a section
 * the index leaves out (an identity CID, a repeated block) is counted into the one before it,
 * so the range is then longer than the section, never shorter.
 *
 * Memory: one typed array per index, 4 bytes per entry (8 if a gap reaches 4 GiB), built on
 * the first `locate` and kept; building it briefly needs 16 more bytes per entry and sorts the
 * offsets once (n log n).
 */
import { InvalidCarError } from '../../base/errors.js'
import type { ShardIndex } from '../../base/index-types.js'
import { SortedIndex } from './sorted-index.js'

/** An index whose entries have positions 0..size-1: SortedIndex and MultihashIndexSortedView. */
export interface PositionedIndex extends ShardIndex {
  /** The entry's position, or -1 when the index lacks it. */
  indexOf: (multihash: Uint8Array) => number
  offsetAt: (position: number) => number
}

/** Bytes [offset, offset + length) of the CARv1 payload hold the block's whole section. */
export interface SectionRange {
  /** From the CARv1 payload start, as in the index. */
  offset: number
  length: number
}

function isPositioned (index: ShardIndex): index is PositionedIndex {
  const i = index as Partial<PositionedIndex>
  return typeof i.indexOf === 'function' && typeof i.offsetAt === 'function'
}

export class SectionLengths {
  private readonly source: ShardIndex
  private readonly payloadSize: number
  private readonly payloadOffset: number
  private positioned: PositionedIndex | undefined
  private lengths: Uint32Array | Float64Array | undefined

  /**
   * @param payloadSize bytes of the CARv1 payload, header included (a CARv2's dataSize, a
   *   CARv1's file size): where the last section ends
   * @param payloadOffset absolute file offset of the payload, for error messages
   */
  constructor (index: ShardIndex, payloadSize: number, payloadOffset = 0) {
    if (!Number.isSafeInteger(payloadSize) || payloadSize < 0) throw new RangeError(`invalid payload size ${payloadSize}`)
    this.source = index
    this.payloadSize = payloadSize
    this.payloadOffset = payloadOffset
  }

  /** The section holding `multihash`, or undefined when the index lacks it. */
  locate (multihash: Uint8Array): SectionRange | undefined {
    const index = this.index()
    const i = index.indexOf(multihash)
    if (i < 0) return undefined
    // i < size, and the lengths have one per entry.
    return { offset: index.offsetAt(i), length: this.build()[i]! }
  }

  /** Bytes held once built (0 before the first locate). */
  get byteLength (): number {
    return this.lengths?.byteLength ?? 0
  }

  /**
   * Computes the lengths now instead of on the first locate (e.g. to report a bad index at once).
   * @throws InvalidCarError when an offset is past the payload or two entries share one
   */
  build (): Uint32Array | Float64Array {
    if (this.lengths !== undefined) return this.lengths
    const index = this.index()
    const n = index.size
    const out = new Float64Array(n)
    for (let i = 0; i < n; i++) out[i] = index.offsetAt(i)
    // Float64Array's sort is numeric and native: no comparator call per step.
    const sorted = out.slice().sort()
    const end = this.payloadSize
    const last = sorted[n - 1]
    if (last !== undefined && !(last < end)) {
      throw new InvalidCarError(`invalid CARv2 index: an entry's offset ${last} is not inside the ${end}-byte payload at byte ${this.payloadOffset + last}`)
    }
    let longest = 0
    for (let i = 0; i < n; i++) {
      // i < n = out.length = sorted.length; the search stays below n.
      const offset = out[i]!
      let lo = 0
      let hi = n
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (sorted[mid]! <= offset) lo = mid + 1
        else hi = mid
      }
      const next = lo < n ? sorted[lo]! : end
      if (lo >= 2 && sorted[lo - 2] === offset) {
        throw new InvalidCarError(`invalid CARv2 index: two entries point at the section at payload offset ${offset} at byte ${this.payloadOffset + offset}`)
      }
      const length = next - offset
      out[i] = length
      if (length > longest) longest = length
    }
    this.lengths = longest <= 0xffffffff ? Uint32Array.from(out) : out
    return this.lengths
  }

  private index (): PositionedIndex {
    this.positioned ??= isPositioned(this.source) ? this.source : SortedIndex.from(this.source)
    return this.positioned
  }
}
