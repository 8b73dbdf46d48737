import type { AbstractLevel } from 'abstract-level'
import type { FullIndexRepo, ShardIndexer, TopLevelIndex } from './index/types.js'
import type { MountRegistry } from './mount/registry.js'

export type RecoverOnStart = 'none' | 'on-acquire' | 'now'

export interface GCOptions {
  /** Run gc() every intervalMs (0 / absent: only when called). */
  intervalMs?: number
  /**
   * Automated GC bounds (DESIGN §5). Accepted for forward compatibility but NOT enforced yet:
   * watermark eviction lands with the remote-shards work. Use gc() / intervalMs meanwhile.
   */
  maxTransientsBytes?: number
  highWatermark?: number
  lowWatermark?: number
  /** A shard released less than graceMs ago is not reclaimed. Default 0. */
  graceMs?: number
}

export interface DAGStoreOptions {
  /** Root for the defaults below. Required unless transientsDir, datastore and indexRepo are all given. */
  dir?: string
  /** Default `<dir>/transients`. */
  transientsDir?: string
  /** Default: `new Level(<dir>/state)`. A MemoryLevel works too. Opened by start(); closed by close() only if the store created it. */
  datastore?: AbstractLevel<any, any, any> // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Default: `new FsIndexRepo(<dir>/index)` (go-car compatible files). MemoryIndexRepo exists for tests. */
  indexRepo?: FullIndexRepo
  /** Default: LevelTopLevelIndex in the state datastore. */
  topLevelIndex?: TopLevelIndex
  /** Default: `new MountRegistry()` (file:, bytes: and the other built-ins). */
  mounts?: MountRegistry
  /** Concurrent indexing jobs; 0 (default) = unlimited. */
  maxConcurrentIndex?: number
  /** Concurrent transient downloads of mounts whose stat().ready; 0 (default) = unlimited. */
  maxConcurrentReadyFetches?: number
  /** What to do with errored shards at start. Default 'none'. */
  recoverOnStart?: RecoverOnStart
  /** Default: the built-in streaming CAR indexer. */
  shardIndexer?: ShardIndexer
  /**
   * Shard readers (open files) kept open after their last accessor closes, so the next
   * acquire of a recently used shard opens nothing. Default 1024 (mind the fd limit).
   */
  maxIdleReaders?: number
  /** Events a traces()/failures() subscriber may fall behind before it gets SubscriptionLaggedError. Default 4096. */
  eventBufferSize?: number
  gc?: GCOptions
  /**
   * Errors that have no caller to go to (a throwing result callback, a failed cleanup, a
   * failed state write). Default: one line on stderr.
   */
  onError?: (err: unknown, context: string) => void
}

export const DEFAULT_EVENT_BUFFER_SIZE = 4096
export const DEFAULT_MAX_IDLE_READERS = 1024
