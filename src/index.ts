export { DAGStore } from './engine/store.js'
export { recoverImmediately } from './engine/recover.js'
export type { DAGStoreOptions, GCOptions, RecoverOnStart } from './engine/options.js'
export * from './base/types.js'
export * from './base/errors.js'
export type { Mount, MountReader, MountInfo, MountStat, MountFactory } from './base/mount-types.js'
export { MountRegistry } from './storage/mount/registry.js'
export { FileMount } from './storage/mount/file.js'
export { BytesMount } from './storage/mount/bytes.js'
export {
  HttpMount, HttpStatusError, HttpLengthMismatchError, HttpTimeoutError, HttpRangeError, HttpNetworkError, HttpChangedError,
  type HttpMountOptions
} from './storage/mount/http.js'
export type { ShardIndex, IndexEntry, FullIndexRepo, TopLevelIndex, ShardIndexer } from './base/index-types.js'
export { MemoryIndexRepo } from './storage/index/memory-repo.js'
export { FsIndexRepo, type FsIndexRepoOptions } from './storage/index/fs-repo.js'
export { LevelTopLevelIndex } from './storage/index/level-top-level.js'
export {
  defaultShardIndexer, createShardIndexer, indexCar,
  type ShardIndexerOptions, type CarIndexResult, type IndexReadMode, type BlockHasher
} from './format/car/indexer.js'
export { MultihashIndexSortedView } from './format/index/index-view.js'
export { encodeMultihashIndexSorted, decodeCarIndex } from './format/index/multihash-index-sorted.js'
export { EventBuffer } from './engine/observe/event-buffer.js'
export { AllShardsBlockstore, type AllShardsBlockstoreOptions, type ShardSource } from './read/all-shards.js'
export { toInterfaceBlockstore, ReadOnlyInterfaceBlockstore, type InterfaceBlockstoreOptions } from './read/adapter.js'
export { BlockstoreClosedError, ReadOnlyError } from './read/errors.js'
export { startServer, type ServeOptions, type ServeLimits, type DagstoreServer } from './app/server/index.js'
export { createGateway, type Gateway, type GatewayOptions } from './app/server/gateway.js'
export { StoreMetrics, type OpOutcome } from './engine/observe/metrics.js'
