import type { ShardIndexer } from '../index/types.js'
import type { MountReader } from '../mount/types.js'
import { SortedIndex, SortedIndexBuilder } from '../index/sorted-index.js'
import { decodeCarIndexInto } from '../index/multihash-index-sorted.js'
import { StreamSource, checkAborted, readCarHead } from './layout.js'
import type { CarLayout } from './layout.js'
import { SectionParser } from './sections.js'
import type { SectionHeader } from './sections.js'

export interface ShardIndexerOptions {
  /** Upper bound on the CARv1 header's declared length; default 32 MiB. */
  maxHeaderSize?: number
  /** Upper bound on one section's declared length; default 32 MiB. */
  maxSectionSize?: number
  /** Adopt a CARv2's embedded index when it agrees with the payload; default true. */
  useEmbeddedIndex?: boolean
  /** Embedded indices larger than this are ignored in favour of the scanned one; default 1 GiB. */
  maxEmbeddedIndexSize?: number
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
}

const DEFAULT_MAX_EMBEDDED_INDEX_SIZE = 1024 * 1024 * 1024

/**
 * Indexes a CAR streamed from byte 0 in one pass: header, then every section of the payload
 * (a CARv2's dataSize bytes only), then, for a CARv2 with an index, the embedded index.
 *
 * The payload is always scanned, because an embedded index is only as trustworthy as its
 * writer: it is adopted only when it decodes and holds exactly the (multihash, offset) pairs
 * the scan found, compared by an order-independent fingerprint so the check costs a linear
 * pass instead of a sort. Otherwise the scanned entries are sorted and used.
 *
 * Identity-multihash CIDs are not indexed (blockstores answer them from the CID itself).
 * Corrupt input throws InvalidCarError naming the byte offset; an aborted signal throws an
 * AbortError.
 */
export async function indexCar (source: AsyncIterable<Uint8Array>, options: ShardIndexerOptions & { signal?: AbortSignal } = {}): Promise<CarIndexResult> {
  const signal = options.signal
  checkAborted(signal)
  const src = new StreamSource(source, signal)
  try {
    const layout = await readCarHead(src, { maxHeaderSize: options.maxHeaderSize })
    const builder = new SortedIndexBuilder()
    let sections = 0
    const parser = new SectionParser((h: SectionHeader) => {
      sections++
      if (h.bytes[h.mhStart] !== 0x00) builder.addRange(h.bytes, h.mhStart, h.cidEnd, h.offset)
    }, {
      maxSectionSize: options.maxSectionSize,
      startOffset: layout.headerLength,
      limit: layout.payloadSize,
      baseOffset: layout.payloadOffset
    })
    while (!parser.done) {
      const chunk = await src.next()
      if (chunk === undefined) {
        parser.end()
        break
      }
      const used = parser.push(chunk)
      if (used < chunk.length) src.unshift(chunk.subarray(used))
    }

    let embeddedIndex: EmbeddedIndexOutcome = 'absent'
    let embeddedIndexError: Error | undefined
    let index: SortedIndex | undefined
    if (layout.indexOffset !== undefined) {
      if (options.useEmbeddedIndex === false) {
        embeddedIndex = 'ignored'
      } else {
        try {
          const embedded = await readEmbeddedIndex(src, layout, options.maxEmbeddedIndexSize ?? DEFAULT_MAX_EMBEDDED_INDEX_SIZE)
          if (embedded.fingerprint() === builder.fingerprint()) {
            index = embedded.build()
          } else {
            // Writers differ on duplicate blocks (go-car lists every copy, a de-duplicating
            // writer one), which changes the fingerprint but not the meaning: compare exactly.
            const scanned = builder.build()
            if (!sameEntries(embedded.build(), scanned)) throw new Error('embedded index does not match the payload')
            index = scanned
          }
          embeddedIndex = 'adopted'
        } catch (err) {
          checkAborted(signal)
          embeddedIndex = 'rejected'
          embeddedIndexError = err as Error
        }
      }
    }
    checkAborted(signal)
    index ??= builder.build()
    const result: CarIndexResult = { index, layout, embeddedIndex, sections }
    if (embeddedIndexError !== undefined) result.embeddedIndexError = embeddedIndexError
    return result
  } finally {
    await src.close()
  }
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

async function readEmbeddedIndex (src: StreamSource, layout: CarLayout, maxSize: number): Promise<SortedIndexBuilder> {
  const indexOffset = layout.indexOffset as number
  const payloadEnd = layout.payloadOffset + (layout.payloadSize as number)
  if (indexOffset < payloadEnd) throw new Error(`index offset ${indexOffset} lies inside the payload (which ends at ${payloadEnd})`)
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
  let bytes: Uint8Array
  if (chunks.length === 1) {
    bytes = chunks[0]
  } else {
    bytes = new Uint8Array(total)
    let p = 0
    for (const c of chunks) {
      bytes.set(c, p)
      p += c.length
    }
  }
  const builder = new SortedIndexBuilder(Math.max(16, Math.floor(total / 40)))
  decodeCarIndexInto(bytes, builder, { skipIdentity: true, baseOffset: indexOffset })
  return builder
}

/** A ShardIndexer over `reader.stream()` with the given limits. */
export function createShardIndexer (options: ShardIndexerOptions = {}): ShardIndexer {
  return async (_key: string, reader: MountReader, signal: AbortSignal) => {
    const { index } = await indexCar(reader.stream(0), { ...options, signal })
    return index
  }
}

export const defaultShardIndexer: ShardIndexer = createShardIndexer()
