import type { AbstractLevel } from 'abstract-level'
import type { FullIndexRepo, ShardIndexer, TopLevelIndex, VerifyHashes } from '../base/index-types.js'
import type { MountRegistry } from '../storage/mount/registry.js'
import type { Registry } from 'prom-client'
import type { SectionCacheOptions } from '../storage/remote/options.js'
import type { CopyPolicy } from '../base/types.js'
import type { StoreBackend } from '../storage/state/backend.js'

export type RecoverOnStart = 'none' | 'on-acquire' | 'now'

export interface GCOptions {
  /**
   * Periodic GC every intervalMs (0 / absent: none). With maxTransientsBytes it evicts down to
   * the low watermark when usage is above the high one; without, it runs gc().
   */
  intervalMs?: number
  /**
   * Automated GC (docs/ARCHITECTURE.md): keeps the store-owned transients (plus the space reserved by
   * downloads in progress) under this many bytes. Downloads reserve before they write; when a
   * reservation does not fit, idle transients are evicted least recently used first, down to
   * the low watermark; when nothing more can go, the download fails with TransientsFullError
   * (ERR_TRANSIENTS_FULL). A transient in use, downloading or inside its grace period is never
   * evicted. Absent (default): no bound, only gc() and intervalMs reclaim.
   */
  maxTransientsBytes?: number
  /** Fraction of maxTransientsBytes above which eviction starts in the background. Default 0.9. */
  highWatermark?: number
  /** Fraction of maxTransientsBytes that eviction brings usage down to. Default 0.7. */
  lowWatermark?: number
  /** Reservation step for downloads whose size is unknown. Default min(128 MiB, maxTransientsBytes / 10). */
  reservationBytes?: number
  /** A shard released less than graceMs ago is not reclaimed. Default 0. */
  graceMs?: number
}

/** Remote shards read in place (docs/REMOTE.md). */
export interface RemoteOptions extends SectionCacheOptions {
  /**
   * 'auto' (default): an HTTP shard whose origin honours Range (206, exact Content-Range, an
   * ETag or Last-Modified) is read in place by ranged requests, else copied into a transient;
   * 'always': copied, as before 0.2; 'never': read in place, or the shard fails with
   * ERR_RANGE_NOT_SUPPORTED. RegisterOpts.copy overrides it per shard.
   */
  copy?: CopyPolicy
}

export interface DAGStoreOptions {
  /** Root for the defaults below. Required unless transientsDir and a backend, or transientsDir, datastore and indexRepo, are given. */
  dir?: string
  /** Default `<dir>/transients`. */
  transientsDir?: string
  /** Default: `new Level(<dir>/state)`. A MemoryLevel works too. Opened by start(); closed by close() only if the store created it. */
  datastore?: AbstractLevel<any, any, any> // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Default: `new FsIndexRepo(<dir>/index)` (go-car compatible files). MemoryIndexRepo exists for tests. */
  indexRepo?: FullIndexRepo
  /** Default: LevelTopLevelIndex in the state datastore. */
  topLevelIndex?: TopLevelIndex
  /**
   * Where shard records, full indices and the top-level index live instead of LevelDB and index
   * files under `dir` (which then holds the transients only): e.g. `postgresBackend()` of
   * `dagstore/postgres`, a database shared by many nodes. Opened by start(), closed by close().
   * Excludes `datastore`, `indexRepo` and `topLevelIndex`.
   */
  backend?: StoreBackend
  /** Default: `new MountRegistry()` (file:, bytes: and the other built-ins). */
  mounts?: MountRegistry
  /** Concurrent indexing jobs; 0 (default) = unlimited. */
  maxConcurrentIndex?: number
  /** Concurrent transient downloads of mounts whose stat().ready; 0 (default) = unlimited. */
  maxConcurrentReadyFetches?: number
  /** What to do with errored shards at start. Default 'none'. */
  recoverOnStart?: RecoverOnStart
  /** Default: the built-in streaming CAR indexer. */
  shardIndexer?: ShardIndexer | undefined
  /**
   * Which shards' blocks are hashed and checked against their CIDs while they are indexed
   * (register, recover): `'remote'` (default) data from mounts whose info().kind is 'remote'
   * (HttpMount), since bytes from a network are not to be trusted; `true` every shard's;
   * `false` none. A block that does not match fails the shard with ERR_INVALID_CAR, one whose
   * hash function has no hasher with ERR_UNSUPPORTED_HASH. sha2-256, sha2-512, blake2b-256 and
   * identity are built in (more: `shardIndexer: createShardIndexer({ hashers })`). The indexer
   * is told the decision; a custom `shardIndexer` not made by createShardIndexer decides itself.
   */
  verifyHashes?: VerifyHashes
  /**
   * Shard readers (open files) kept open after their last accessor closes, so the next
   * acquire of a recently used shard opens nothing. Default 1024 (mind the fd limit).
   */
  maxIdleReaders?: number
  /** Remote shards read in place: the copy policy and the section cache (one per store). */
  remote?: RemoteOptions
  /**
   * How long a pooled reader's file is trusted before it is checked again (one fstat) for having
   * been deleted or replaced behind the store's back. Default 1000 ms; 0 checks on every acquire.
   * Changes the store makes itself (GC, recovery, destroy) take effect at once.
   */
  readerRevalidateMs?: number
  /** Events a traces()/failures() subscriber may fall behind before it gets SubscriptionLaggedError. Default 4096. */
  eventBufferSize?: number
  gc?: GCOptions
  /** prom-client Registry the store's metrics go to (README, Metrics). Default: a Registry of its own, at `store.metrics`. */
  metrics?: Registry
  /**
   * Errors that have no caller to go to (a throwing result callback, a failed cleanup, a
   * failed state write). Default: one line on stderr.
   */
  onError?: (err: unknown, context: string) => void
}

export const DEFAULT_EVENT_BUFFER_SIZE = 4096
export const DEFAULT_MAX_IDLE_READERS = 1024
export const DEFAULT_READER_REVALIDATE_MS = 1000
