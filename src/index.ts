/**
 * The package root (`dagstore`): the documented API and nothing else (docs/CONTRACT.md, README).
 * Internals stay reachable only from their src paths (the tests import them there); the CAR and
 * index codec pieces have their own subpath, `dagstore/format` (src/format/api.ts).
 */

// The store (docs/CONTRACT.md).
export { DAGStore, type ClusterBlockstoreOptions } from './engine/store.js'
export type { OwnerHopTimeouts } from './engine/cluster/owner-blocks.js'
export { recoverImmediately } from './engine/recover.js'
export type { DAGStoreOptions, GCOptions, RecoverOnStart, RemoteOptions } from './engine/options.js'
export { ShardState } from './base/types.js'
export type {
  ShardKey, OpType, ShardInfo, ShardResult, ResultCallback, Trace, ReadBlockstore, ShardAccessor,
  RegisterOpts, AcquireOpts, SignalOpts, DestroyOpts, GCResult, ShardDescription, ShardProgress, CopyPolicy, ListShardsOptions, ShardPage,
  VerifyOpts, VerifyProblem, VerifyReport
} from './base/types.js'

// Errors: every class carries a stable `code`.
export {
  DAGStoreError, ShardUnknownError, ShardExistsError, ShardInitializationFailedError, ShardInUseError,
  ShardErroredError, ShardNotErroredError, ShardDrainingError, StoreNotStartedError, StoreClosedError, BlockNotFoundError,
  InvalidShardKeyError, UnknownMountSchemeError, SubscriptionLaggedError, InvalidCarError,
  UnsupportedHashError, HashMismatchError, RangeNotSupportedError, IndexNotFoundError, InvalidArgumentError, InvalidMountError,
  TransientError, TransientsFullError,
  RestoredShardError, AbortError,
  NodeAliveError, NodeUnknownError, NotClusteredError, ShardElsewhereError, OwnerUnavailableError, type OwnerWhereabouts
} from './base/errors.js'

// Mounts.
export type { Mount, MountReader, MountInfo, MountStat, MountFactory } from './base/mount-types.js'
export { MountRegistry, type MountRegistryOptions } from './storage/mount/registry.js'
export { FileMount } from './storage/mount/file.js'
export { BytesMount } from './storage/mount/bytes.js'
export {
  HttpMount, HttpStatusError, HttpLengthMismatchError, HttpTimeoutError, HttpRangeError,
  HttpNetworkError, HttpChangedError, type HttpMountOptions, type RangeProbe, type RangedProbe
} from './storage/mount/http.js'
export { SectionCache } from './storage/remote/section-cache.js'
export type { StoreBackend, BackendSeams } from './storage/state/backend.js'
export type { SectionCacheOptions } from './storage/remote/options.js'
export type { SectionCacheStats, SourceStats } from './storage/remote/types.js'
// Showing a mount URL: credentials and token-like query parameters hidden.
export { redactUrl, SECRET_PARAMS } from './base/redact.js'

// Indices and the indexer.
export type {
  ShardIndex, IndexEntry, FullIndexRepo, TopLevelIndex, AddMultihashesOptions, ShardIndexer, ShardIndexContext, VerifyHashes
} from './base/index-types.js'
export { MemoryIndexRepo } from './storage/index/memory-repo.js'
export { FsIndexRepo, type FsIndexRepoOptions } from './storage/index/fs-repo.js'
export { LevelTopLevelIndex } from './storage/index/level-top-level.js'
export {
  defaultShardIndexer, createShardIndexer, type ShardIndexerOptions, type IndexReadMode, type BlockHasher
} from './format/car/indexer.js'

// Reading blocks across shards, and the interface-blockstore adapter.
export { AllShardsBlockstore, type AllShardsBlockstoreOptions, type ShardSource } from './read/all-shards.js'
export { toInterfaceBlockstore, ReadOnlyInterfaceBlockstore, type InterfaceBlockstoreOptions } from './read/adapter.js'
export { BlockstoreClosedError, ReadOnlyError } from './read/errors.js'

// The HTTP server (gateway, admin API, /metrics) for embedding.
export { startServer, type ServeOptions, type ServeLimits, type DagstoreServer } from './app/server/index.js'
export { createGateway, type Gateway, type GatewayOptions } from './app/server/gateway.js'
