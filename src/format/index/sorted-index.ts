import type { IndexEntry, ShardIndex } from '../../base/index-types.js'

/**
 * A compact, immutable ShardIndex: every multihash packed into one byte arena, sorted by
 * multihash bytes, with parallel typed arrays for where each one starts and its section
 * offset. About (multihash length + 12) bytes per entry and no per-entry objects, so a
 * million-block shard costs far less than a Map would and lookups are a binary search.
 *
 * Offsets are kept in a Float64Array: exact for every integer below 2^53, so shards past
 * 4 GiB need no special casing.
 */
export class SortedIndex implements ShardIndex {
  readonly size: number
  /** Multihash i is arena[starts[i], starts[i + 1]). */
  private readonly arena: Uint8Array
  private readonly starts: Uint32Array
  private readonly offsets: Float64Array

  /** Takes ownership of the arrays; use SortedIndexBuilder unless they are already sorted and unique. */
  constructor (arena: Uint8Array, starts: Uint32Array, offsets: Float64Array) {
    if (starts.length !== offsets.length + 1) throw new RangeError('starts must have one more element than offsets')
    this.arena = arena
    this.starts = starts
    this.offsets = offsets
    this.size = offsets.length
  }

  static readonly empty = new SortedIndex(new Uint8Array(0), new Uint32Array(1), new Float64Array(0))

  /** Copies any ShardIndex (or list of entries) into a SortedIndex; a SortedIndex is returned as is. */
  static from (entries: Iterable<IndexEntry>): SortedIndex {
    if (entries instanceof SortedIndex) return entries
    const builder = new SortedIndexBuilder()
    for (const { multihash, offset } of entries) builder.add(multihash, offset)
    return builder.build()
  }

  get (multihash: Uint8Array): number | undefined {
    const i = this.indexOf(multihash)
    return i < 0 ? undefined : this.offsets[i]
  }

  has (multihash: Uint8Array): boolean {
    return this.indexOf(multihash) >= 0
  }

  /** Position of `multihash` in sorted order, or -1. */
  indexOf (multihash: Uint8Array): number {
    const arena = this.arena
    const starts = this.starts
    const mlen = multihash.length
    let lo = 0
    let hi = this.size - 1
    while (lo <= hi) {
      // 0 <= mid < size and starts has size + 1 items; k < n is within both multihashes.
      const mid = (lo + hi) >>> 1
      const s = starts[mid]!
      const elen = starts[mid + 1]! - s
      const n = elen < mlen ? elen : mlen
      let c = 0
      for (let k = 0; k < n; k++) {
        c = arena[s + k]! - multihash[k]!
        if (c !== 0) break
      }
      if (c === 0) c = elen - mlen
      if (c === 0) return mid
      if (c < 0) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }

  /** The i-th multihash in sorted order: a view into the index's memory, do not modify. */
  multihashAt (i: number): Uint8Array {
    return this.arena.subarray(this.starts[i], this.starts[i + 1])
  }

  offsetAt (i: number): number {
    const offset = this.offsets[i]
    if (offset === undefined) throw new RangeError(`no entry ${i} in an index of ${this.size}`)
    return offset
  }

  /** Approximate bytes held (for cache accounting). */
  get byteLength (): number {
    return this.arena.byteLength + this.starts.byteLength + this.offsets.byteLength
  }

  /**
   * The index's memory, for encoders that would otherwise make a view per entry: multihash i
   * is arena[starts[i], starts[i + 1]), its offset offsets[i]. Read only.
   */
  get layout (): { readonly arena: Uint8Array, readonly starts: Uint32Array, readonly offsets: Float64Array } {
    return { arena: this.arena, starts: this.starts, offsets: this.offsets }
  }

  /** The multihashes in ascending order, each a view into the index's memory. */
  * multihashes (): Iterable<Uint8Array> {
    const { arena, starts } = this
    for (let i = 0; i < this.size; i++) yield arena.subarray(starts[i], starts[i + 1])
  }

  /** Entries in ascending multihash order; each `multihash` is a view into the index's memory. */
  * [Symbol.iterator] (): Iterator<IndexEntry> {
    const { arena, starts, offsets } = this
    for (let i = 0; i < offsets.length; i++) {
      yield { multihash: arena.subarray(starts[i], starts[i + 1]), offset: offsets[i]! } // i < offsets.length
    }
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
const MAX_ARENA = 0xffffffff

/**
 * Collects (multihash, offset) pairs in any order and builds a SortedIndex. Bytes are copied
 * on `add`, so callers may pass views into stream chunks they are about to reuse.
 *
 * Duplicate multihashes (a CAR may hold one block several times) keep the smallest offset,
 * which for a CAR scanned front to back is the first occurrence.
 */
export class SortedIndexBuilder {
  private arena: Uint8Array
  private arenaLen = 0
  private starts: Uint32Array
  private offsets: Float64Array
  private count = 0

  constructor (expectedEntries = 1024, expectedMultihashLength = 36) {
    const n = Math.max(16, expectedEntries)
    this.arena = new Uint8Array(n * expectedMultihashLength)
    this.starts = new Uint32Array(n + 1)
    this.offsets = new Float64Array(n)
  }

  /** Entries added so far, duplicates included. */
  get size (): number { return this.count }

  add (multihash: Uint8Array, offset: number): void {
    this.addRange(multihash, 0, multihash.length, offset)
  }

  /** Adds bytes[start, end) as a multihash without creating a view. */
  addRange (bytes: Uint8Array, start: number, end: number, offset: number): void {
    if (!(offset >= 0 && offset <= Number.MAX_SAFE_INTEGER)) throw new RangeError(`invalid offset ${offset}`)
    const len = end - start
    let need = this.arenaLen + len
    if (need > this.arena.length) {
      if (need > MAX_ARENA) throw new RangeError('index too large: more than 4 GiB of multihashes')
      need = Math.min(MAX_ARENA, Math.max(need, this.arena.length * 2))
      const grown = new Uint8Array(need)
      grown.set(this.arena.subarray(0, this.arenaLen), 0)
      this.arena = grown
    }
    const i = this.count
    if (i === this.offsets.length) {
      const cap = i * 2
      const starts = new Uint32Array(cap + 1)
      starts.set(this.starts, 0)
      this.starts = starts
      const offsets = new Float64Array(cap)
      offsets.set(this.offsets, 0)
      this.offsets = offsets
    }
    if (len <= 64) {
      // A loop beats TypedArray.set + subarray for multihash-sized copies.
      const arena = this.arena
      let p = this.arenaLen
      for (let k = start; k < end; k++) arena[p++] = bytes[k]! // the caller's range of bytes
    } else {
      this.arena.set(bytes.subarray(start, end), this.arenaLen)
    }
    this.arenaLen += len
    this.offsets[i] = offset
    this.count = i + 1
    this.starts[i + 1] = this.arenaLen
  }

  /**
   * An order-independent digest of the (multihash, offset) pairs added, duplicates included.
   * Two builders holding the same multiset of entries have the same fingerprint; used to check
   * an embedded CARv2 index against the payload without sorting the scanned entries.
   */
  fingerprint (): string {
    const { arena, starts, offsets } = this
    let sum = 0
    let mix = 0
    // i < count: starts has count + 1 items in use, offsets count; k stays within the arena.
    for (let i = 0; i < this.count; i++) {
      let h = 0x811c9dc5
      for (let k = starts[i]!, e = starts[i + 1]!; k < e; k++) h = Math.imul(h ^ arena[k]!, 0x01000193)
      const off = offsets[i]!
      h = Math.imul(h ^ (off >>> 0), 0x01000193)
      h = Math.imul(h ^ Math.floor(off / 0x100000000), 0x01000193)
      h ^= h >>> 15
      h = Math.imul(h, 0x2c1b3c6d)
      h ^= h >>> 12
      // Both accumulators are sums, so the result does not depend on insertion order.
      sum = (sum + h) | 0
      mix = (mix + Math.imul(h ^ (h >>> 16), 0x297a2d39)) | 0
    }
    return `${this.count}:${sum >>> 0}:${mix >>> 0}`
  }

  build (): SortedIndex {
    const n = this.count
    if (n === 0) return SortedIndex.empty
    const layout: Layout = { arena: this.arena, starts: this.starts, offsets: this.offsets }
    if (isSorted(layout, n)) return emit(layout, n, this.arenaLen, null, null)
    if (!LITTLE_ENDIAN) {
      const order = new Uint32Array(n)
      for (let i = 0; i < n; i++) order[i] = i
      order.sort((a, b) => compareFull(layout, a, b))
      return emit(layout, n, this.arenaLen, order, null)
    }
    const keys = sortKeys(layout, n)
    if (n < BUCKETED_MIN) {
      const [order, sortedKeys] = sortRange(layout, keys, [0, n])
      return emit(layout, n, this.arenaLen, order, sortedKeys)
    }
    const [bucketed, bucketKeys, bounds] = scatterByTopByte(layout, n, this.arenaLen, keys)
    const [order, sortedKeys] = sortRange(bucketed, bucketKeys, bounds)
    return emit(bucketed, n, this.arenaLen, order, sortedKeys)
  }
}

/** Entries i = arena[starts[i], starts[i + 1]) with offsets[i]. */
interface Layout { arena: Uint8Array, starts: Uint32Array, offsets: Float64Array }

/** Below this many entries everything fits in cache and bucketing buys nothing. */
const BUCKETED_MIN = 1 << 16

/** i and j are entry numbers of `l`; the functions below pass nothing else. */
function compareBytes (l: Layout, i: number, j: number): number {
  const { arena, starts } = l
  const a = starts[i]!
  const alen = starts[i + 1]! - a
  const b = starts[j]!
  const blen = starts[j + 1]! - b
  const n = alen < blen ? alen : blen
  for (let k = 0; k < n; k++) {
    const c = arena[a + k]! - arena[b + k]!
    if (c !== 0) return c
  }
  return alen - blen
}

/** Lexicographic multihash order; equal multihashes by offset so the smallest comes first. */
function compareFull (l: Layout, i: number, j: number): number {
  const c = compareBytes(l, i, j)
  return c !== 0 ? c : l.offsets[i]! - l.offsets[j]!
}

/** Input already in order (an embedded index, a re-encoded SortedIndex) skips the sort. */
function isSorted (l: Layout, n: number): boolean {
  for (let i = 1; i < n; i++) if (compareFull(l, i - 1, i) > 0) return false
  return true
}

/**
 * Multihashes share a prefix (code and length) and then are uniformly random, so the 4 bytes
 * after the prefix common to all entries nearly always decide the order. Zero padding keeps
 * the key order consistent with byte order for entries shorter than that.
 */
function sortKeys (l: Layout, n: number): Uint32Array {
  const { arena, starts } = l
  // i < n entries, so starts[i + 1] exists; arena reads stay below an entry's end.
  let lcp = starts[1]!
  for (let i = 1; i < n && lcp > 0; i++) {
    const s = starts[i]!
    const len = starts[i + 1]! - s
    if (len < lcp) lcp = len
    let k = 0
    while (k < lcp && arena[s + k] === arena[k]) k++
    lcp = k
  }
  const keys = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    const s = starts[i]! + lcp
    const e = starts[i + 1]!
    keys[i] = ((s < e ? arena[s]! : 0) << 24 | (s + 1 < e ? arena[s + 1]! : 0) << 16 |
      (s + 2 < e ? arena[s + 2]! : 0) << 8 | (s + 3 < e ? arena[s + 3]! : 0)) >>> 0
  }
  return keys
}

/**
 * Copies entries, in one sequential pass, into 256 contiguous groups by their key's top byte.
 * Sorting and gathering a large arena directly costs a cache miss per entry; group by group,
 * each step touches a cache-sized region, which roughly halves the build time at a million
 * entries. Returns the regrouped layout, its keys and the group boundaries.
 */
function scatterByTopByte (l: Layout, n: number, arenaLen: number, keys: Uint32Array): [Layout, Uint32Array, number[]] {
  const { arena, starts, offsets } = l
  // counts and bytes have a slot per top byte plus one; i < n entries; k stays within an entry.
  const counts = new Float64Array(257)
  const bytes = new Float64Array(257)
  for (let i = 0; i < n; i++) {
    const b = (keys[i]! >>> 24) + 1
    counts[b]!++
    bytes[b]! += starts[i + 1]! - starts[i]!
  }
  for (let b = 1; b <= 256; b++) {
    counts[b]! += counts[b - 1]!
    bytes[b]! += bytes[b - 1]!
  }
  const bounds = Array.from(counts)
  const out: Layout = { arena: new Uint8Array(arenaLen), starts: new Uint32Array(n + 1), offsets: new Float64Array(n) }
  const outKeys = new Uint32Array(n)
  const outArena = out.arena
  for (let i = 0; i < n; i++) {
    const key = keys[i]!
    const b = key >>> 24
    const q = counts[b]!++
    let p = bytes[b]!
    for (let k = starts[i]!, e = starts[i + 1]!; k < e; k++) outArena[p++] = arena[k]!
    bytes[b] = p
    out.starts[q + 1] = p
    out.offsets[q] = offsets[i]!
    outKeys[q] = key
  }
  return [out, outKeys, bounds]
}

/**
 * Sorts each range [bounds[r], bounds[r + 1]) independently: (key, entry number) pairs packed
 * into 64-bit integers go through the engine's native numeric sort, then the rare runs of equal
 * keys are settled by comparing bytes. Returns the entry order and the keys in that order.
 */
function sortRange (l: Layout, keys: Uint32Array, bounds: number[]): [Uint32Array, Uint32Array] {
  const n = keys.length
  // r + 1 < bounds.length; a range holds at most `largest` entries, two words each.
  let largest = 0
  for (let r = 0; r + 1 < bounds.length; r++) largest = Math.max(largest, bounds[r + 1]! - bounds[r]!)
  const packed = new BigUint64Array(largest)
  const words = new Uint32Array(packed.buffer)
  const order = new Uint32Array(n)
  const sortedKeys = new Uint32Array(n)
  for (let r = 0; r + 1 < bounds.length; r++) {
    const lo = bounds[r]!
    const size = bounds[r + 1]! - lo
    if (size === 0) continue
    for (let k = 0; k < size; k++) {
      words[2 * k] = lo + k
      words[2 * k + 1] = keys[lo + k]!
    }
    packed.subarray(0, size).sort()
    for (let k = 0; k < size; k++) {
      order[lo + k] = words[2 * k]!
      sortedKeys[lo + k] = words[2 * k + 1]!
    }
  }
  for (let j = 0; j < n;) {
    const key = sortedKeys[j]
    let r = j + 1
    while (r < n && sortedKeys[r] === key) r++
    if (r - j > 1) {
      const run = Array.from(order.subarray(j, r))
      run.sort((a, b) => compareFull(l, a, b))
      order.set(run, j)
    }
    j = r
  }
  return [order, sortedKeys]
}

/** Writes the index in `order` (null: as is), keeping the first of equal multihashes. */
function emit (l: Layout, n: number, arenaLen: number, order: Uint32Array | null, sortedKeys: Uint32Array | null): SortedIndex {
  const { arena, starts, offsets } = l
  const outStarts = new Uint32Array(n + 1)
  const outOffsets = new Float64Array(n)
  const outArena = new Uint8Array(arenaLen)
  let m = 0
  let pos = 0
  let prev = -1
  for (let j = 0; j < n; j++) {
    // order (when given) is a permutation of the n entries.
    const i = order === null ? j : order[j]!
    // Different sort keys mean different multihashes: skip the (cache-missing) byte compare.
    if (prev >= 0 && (sortedKeys === null || sortedKeys[j] === sortedKeys[j - 1]) && compareBytes(l, prev, i) === 0) continue
    for (let k = starts[i]!, e = starts[i + 1]!; k < e; k++) outArena[pos++] = arena[k]!
    outOffsets[m] = offsets[i]!
    m++
    outStarts[m] = pos
    prev = i
  }
  return new SortedIndex(
    pos === outArena.length ? outArena : outArena.slice(0, pos),
    m === n ? outStarts : outStarts.slice(0, m + 1),
    m === n ? outOffsets : outOffsets.slice(0, m)
  )
}
