import type { CID } from 'multiformats/cid'

/** 1..1024 UTF-8 bytes, no NUL; opaque to the store. Untrusted: never used raw in a path. */
export type ShardKey = string

export const ShardState = {
  New: 'new',
  Initializing: 'initializing',
  Available: 'available',
  Serving: 'serving',
  Recovering: 'recovering',
  Errored: 'errored'
} as const
// eslint-disable-next-line @typescript-eslint/no-redeclare -- the value and its type share the name, as an enum's do
export type ShardState = (typeof ShardState)[keyof typeof ShardState]
export const SHARD_STATES: readonly ShardState[] = Object.values(ShardState)

export type OpType = 'register' | 'initialize' | 'makeAvailable' | 'acquire' | 'release' |
  'fail' | 'recover' | 'destroy'
export const OP_TYPES: readonly OpType[] = ['register', 'initialize', 'makeAvailable', 'acquire',
  'release', 'fail', 'recover', 'destroy']

export interface ShardInfo {
  state: ShardState
  error?: Error
  refs: number
  /** Present (true) while a destroy with `drain` waits for the shard's accessors: acquires are refused. */
  draining?: boolean
}
export interface ShardResult { key: ShardKey, error?: Error, accessor?: ShardAccessor }
export type ResultCallback = (result: ShardResult) => void
export interface Trace { key: ShardKey, op: OpType, after: ShardInfo }

export interface ReadBlockstore {
  has: (cid: CID) => Promise<boolean>
  /** @throws BlockNotFoundError */
  get: (cid: CID) => Promise<Uint8Array>
  /** @throws BlockNotFoundError */
  getSize: (cid: CID) => Promise<number>
  /** The CIDs as written in the CAR, in CAR order. */
  allKeys: () => AsyncIterable<CID>
}

export interface ShardAccessor {
  readonly key: ShardKey
  blockstore: () => ReadBlockstore
  /** The shard's CAR bytes from offset `start` (default 0) to the end. */
  reader: (start?: number) => AsyncIterable<Uint8Array>
  /** Idempotent; releases the shard's refcount exactly once. */
  close: () => Promise<void>
  [Symbol.asyncDispose]: () => Promise<void>
}

/**
 * Whether a remote shard is copied into a transient or read in place by ranged requests
 * (docs/REMOTE.md): 'auto' reads in place when the origin honours Range, else copies;
 * 'always' copies; 'never' reads in place or fails (ERR_RANGE_NOT_SUPPORTED).
 */
export type CopyPolicy = 'auto' | 'always' | 'never'
export const COPY_POLICIES: readonly CopyPolicy[] = ['auto', 'always', 'never']

export interface RegisterOpts {
  lazy?: boolean
  existingTransient?: string
  signal?: AbortSignal
  /** Overrides the store's `remote.copy` for this shard; persisted with it. */
  copy?: CopyPolicy
}
export interface AcquireOpts { signal?: AbortSignal }
export interface SignalOpts { signal?: AbortSignal }
export interface VerifyOpts {
  signal?: AbortSignal
  /**
   * When the shard's data is sound but its full index or top-level entries disagree with it,
   * rewrite both from the data. Bad data is only reported: the store cannot make it right.
   */
  repair?: boolean
}
/** One thing verifyShard found wrong: a registered error code and what it is about. */
export interface VerifyProblem { code: string, message: string }
/** What verifyShard found. `ok`: no problem. */
export interface VerifyReport {
  key: ShardKey
  ok: boolean
  /** Blocks found in the shard's data (identity CIDs excluded, as in the index); 0 when it could not be read. */
  blocks: number
  problems: VerifyProblem[]
  /** True when `repair` rewrote the full index and the top-level entries. */
  repaired: boolean
}
export interface DestroyOpts {
  signal?: AbortSignal
  /**
   * A shard in use is destroyed once its accessors are closed instead of refused with
   * ShardInUseError: from now on its acquires fail with ShardDrainingError. Aborting `signal`
   * before the last accessor closes ends the drain and leaves the shard serving.
   */
  drain?: boolean
}
export interface GCResult { shards: Map<ShardKey, Error | null>, reclaimedBytes: number }

/** DAGStore.listShards: one page of shards in key order (JS string order, as `sort()` orders). */
export interface ListShardsOptions {
  /** Start after this key: the `next` of the previous page (it need not exist any more). */
  after?: ShardKey
  /** At most this many shards; default 100, at most 10,000. */
  limit?: number
  /** Only shards in this state. */
  state?: ShardState
  /** Only keys that start with this. */
  prefix?: string
}

export interface ShardPage {
  shards: Array<{ key: ShardKey, info: ShardInfo }>
  /**
   * Where the next page starts (pass it as `after`); absent when the listing is complete. A
   * page may hold fewer than `limit` shards, even none, and still have a `next`: with a
   * `state` filter a call examines a bounded number of keys.
   */
  next?: ShardKey
}

/** How far the fetch and index of a shard has read its CAR (describeShard, while they run). */
export interface ShardProgress {
  /** Bytes of the CAR read and indexed so far. */
  bytes: number
  /** The CAR's size, when known (a file's size, an HTTP Content-Length). */
  size?: number
}

/** DAGStore.describeShard: ShardInfo plus where the shard's bytes are and how big it is. */
export interface ShardDescription extends ShardInfo {
  key: ShardKey
  /** The mount URL the shard is persisted with, secrets included: show it as `redactUrl(url)`. */
  url: string
  /** The store's local copy, when one exists. */
  transient?: string
  /** Bytes of the local copy (transient, or the file of a file: mount), when known. */
  size?: number
  /** Blocks in the shard's full index, once indexed. */
  blocks?: number
  /**
   * Where the shard's bytes are read from: 'local' (a file: mount, read in place), 'copy' (a
   * transient copy of a remote mount), 'in-place' (ranged requests to the origin), or absent
   * while undecided (never fetched since the start).
   */
  placement?: 'local' | 'copy' | 'in-place'
  /** The shard's own copy policy, when it was registered with one. */
  copy?: CopyPolicy
  /** The node owning the shard (this store's node), when the store is part of a cluster. */
  node?: string
  /**
   * While the shard is fetched and indexed (register, recover, a lazy shard's first acquire):
   * how far that has read. Absent otherwise.
   */
  progress?: ShardProgress
}
