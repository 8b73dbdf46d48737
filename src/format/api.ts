/**
 * The `dagstore/format` subpath: the CAR and CARv2-index pieces the store is built on, for
 * tools that work on CAR files without a store — index a CAR from a stream or a MountReader,
 * write or read an index file byte-compatible with go-car's MultihashIndexSorted. Pure code
 * over bytes and streams: no files, no database. A store user needs none of it (the package
 * root has the indexer options and the index types).
 */
import type { indexCar } from './car/indexer.js'

export {
  indexCar, type CarIndexResult, type EmbeddedIndexOutcome, type IndexReadMode,
  type ShardIndexerOptions, type BlockHasher
} from './car/indexer.js'
/** indexCar's options: the indexer's, plus an AbortSignal. */
export type IndexCarOptions = NonNullable<Parameters<typeof indexCar>[1]>
export type { CarLayout } from './car/layout.js'
export {
  encodeMultihashIndexSorted, decodeCarIndex, CAR_MULTIHASH_INDEX_SORTED, type DecodeCarIndexOptions
} from './index/multihash-index-sorted.js'
export { MultihashIndexSortedView } from './index/index-view.js'
export type { SortedIndex } from './index/sorted-index.js'
export type { ShardIndex, IndexEntry } from '../base/index-types.js'
