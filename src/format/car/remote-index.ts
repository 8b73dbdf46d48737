/**
 * Adopting a CARv2's embedded index without reading its payload: the way a remote shard is
 * indexed in place (DESIGN §11). Two random reads — the head (pragma, CARv2 header and, in the
 * same read, the CARv1 header that follows) and the index region [indexOffset, size) — instead
 * of a pass over every byte.
 *
 * The index is not checked against the payload (that would read the payload): its structure
 * is validated instead — MultihashIndexSorted, buckets and entries sorted, nothing truncated or
 * trailing, every offset inside the payload's sections, no two entries at one offset — and
 * every block read through it is hash-verified (LocatedBlockReader), so an index that lies
 * fails reads with a stable code and never serves wrong bytes.
 *
 * IndexSorted (0x0400) is not adopted: its entries are bare digests without a hash function,
 * and go-car reads them as sha2-256, so a CAR with blake2b (Filecoin) or sha2-512 CIDs would
 * have blocks no lookup could find. Such a CAR, a CARv1 or a CARv2 without an index is
 * reported as `scan`: the caller indexes it with one streaming pass (indexCar over stream()).
 */
import { MultihashIndexSortedView } from '../index/index-view.js'
import { CAR_INDEX_SORTED, CAR_MULTIHASH_INDEX_SORTED } from '../index/multihash-index-sorted.js'
import { SectionLengths } from '../index/section-lengths.js'
import { decodeVarint } from '../varint.js'
import { ReadSource, checkAborted, invalidCar, readCarHead } from './layout.js'
import type { CarLayout } from './layout.js'

/** Bytes of the first read: pragma and CARv2 header (51), go-car's padding, a CARv1 header with dozens of roots. */
const DEFAULT_HEAD_READ_SIZE = 4096
const DEFAULT_MAX_INDEX_SIZE = 1024 * 1024 * 1024

export type RandomRead = (position: number, length: number) => Promise<Uint8Array>

export interface AdoptIndexOptions {
  signal?: AbortSignal | undefined
  /** Bytes of the first read; default 4 KiB. A CARv1 header that does not fit costs one more read. */
  headReadSize?: number | undefined
  /** Upper bound on the CARv1 header's declared length; default 32 MiB. */
  maxHeaderSize?: number | undefined
  /** An index region larger than this is not fetched (`scan` with reason `index-too-large`); default 1 GiB. */
  maxIndexSize?: number | undefined
}

/** A CARv2 with its payload's extent and index. */
type CarV2Layout = CarLayout & { version: 2, payloadSize: number, indexOffset: number }

export interface AdoptedIndex {
  kind: 'adopted'
  layout: CarV2Layout
  /** Reads straight from the fetched index bytes (no re-encoding). */
  index: MultihashIndexSortedView
  /** Already built (building validated the offsets): keep it with the index. */
  lengths: SectionLengths
  reads: number
  bytesRead: number
}

/**
 * Why the index was not adopted: `carv1` (no CARv2), `no-index` (indexOffset 0),
 * `index-sorted` (IndexSorted, see above), `index-too-large` (above maxIndexSize).
 */
type ScanReason = 'carv1' | 'no-index' | 'index-sorted' | 'index-too-large'

export interface ScanNeeded {
  kind: 'scan'
  reason: ScanReason
  layout: CarLayout
  reads: number
  bytesRead: number
}

function positiveInt (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${String(value)}`)
  return value
}

/**
 * Reads the head of the CAR of `size` bytes behind `read` and, for a CARv2 with a
 * MultihashIndexSorted index, its index: two reads (three when the CARv1 header does not fit
 * in the first). `read` must return exactly the bytes asked for (fewer only at the end of the
 * data); it is never asked for bytes at or past `size`.
 *
 * @throws InvalidCarError (ERR_INVALID_CAR) for a corrupt head or index, naming what and the
 *   byte offset; AbortError when `signal` fires
 */
export async function adoptEmbeddedIndex (read: RandomRead, size: number, options: AdoptIndexOptions = {}): Promise<AdoptedIndex | ScanNeeded> {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid size ${size}`)
  const signal = options.signal
  const headReadSize = positiveInt('headReadSize', options.headReadSize, DEFAULT_HEAD_READ_SIZE)
  const maxIndexSize = positiveInt('maxIndexSize', options.maxIndexSize, DEFAULT_MAX_INDEX_SIZE)
  let reads = 0
  let bytesRead = 0
  const counted = async (position: number, length: number): Promise<Uint8Array> => {
    const n = Math.min(length, size - position)
    if (n <= 0) return new Uint8Array(0)
    checkAborted(signal)
    reads++
    const bytes = await read(position, n)
    checkAborted(signal)
    bytesRead += bytes.length
    return bytes
  }
  const layout = await readCarHead(new ReadSource(counted, signal, 0, headReadSize), {
    size, maxHeaderSize: options.maxHeaderSize
  })
  const scan = (reason: ScanReason): ScanNeeded => ({ kind: 'scan', reason, layout, reads, bytesRead })
  if (layout.version === 1) return scan('carv1')
  const { indexOffset, payloadOffset, payloadSize } = layout
  if (indexOffset === undefined || payloadSize === undefined) return scan('no-index')
  const payloadEnd = payloadOffset + payloadSize
  // Offsets of the CARv2 header's fields, for messages.
  const INDEX_OFFSET_FIELD = 43
  if (indexOffset < payloadEnd) {
    throw invalidCar(`CARv2 index offset ${indexOffset} lies inside the data (which ends at ${payloadEnd})`, INDEX_OFFSET_FIELD)
  }
  if (indexOffset >= size) throw invalidCar(`CARv2 index offset ${indexOffset} is at or past the end of the file (${size} bytes)`, INDEX_OFFSET_FIELD)
  const indexSize = size - indexOffset
  if (indexSize > maxIndexSize) return scan('index-too-large')
  const bytes = await counted(indexOffset, indexSize)
  if (bytes.length !== indexSize) throw invalidCar(`truncated CARv2 index (${bytes.length} of ${indexSize} bytes read)`, indexOffset + bytes.length)
  let codec: number
  try {
    codec = decodeVarint(bytes, 0).value
  } catch (err) {
    throw invalidCar(`malformed CARv2 index codec (${(err as Error).message})`, indexOffset, err)
  }
  if (codec === CAR_INDEX_SORTED) return scan('index-sorted')
  if (codec !== CAR_MULTIHASH_INDEX_SORTED) throw invalidCar(`unknown CARv2 index codec 0x${codec.toString(16)}`, indexOffset)
  const index = new MultihashIndexSortedView(bytes, { baseOffset: indexOffset })
  index.validate({ min: layout.headerLength, end: payloadSize })
  const lengths = new SectionLengths(index, payloadSize, payloadOffset)
  lengths.build()
  return {
    kind: 'adopted',
    layout: { ...layout, version: 2, payloadSize, indexOffset },
    index,
    lengths,
    reads,
    bytesRead
  }
}
