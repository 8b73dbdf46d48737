/**
 * Every error the store raises carries a stable `code`: messages may improve, codes do not.
 * Wrapped errors keep what they wrap as `cause`. The codes, with their HTTP statuses and
 * meanings, are listed in errors/codes.ts; the classes here are made from them.
 */
import { CODE } from './errors/codes.js'
import { codeOf } from './errors/inspect.js'

export class DAGStoreError extends Error {
  readonly code: string
  constructor (message: string, code: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** An error class with a fixed `code` and a default message (for modules that add their own). */
export function defineError (code: string, defaultMessage: string): new (message?: string, options?: { cause?: unknown }) => DAGStoreError {
  return class extends DAGStoreError {
    static readonly code = code
    constructor (message = defaultMessage, options?: { cause?: unknown }) {
      super(message, code, options)
    }
  }
}

export class ShardUnknownError extends defineError(CODE.ERR_SHARD_UNKNOWN, 'shard not found') {}
export class ShardExistsError extends defineError(CODE.ERR_SHARD_EXISTS, 'shard already exists') {}
export class ShardInitializationFailedError extends defineError(CODE.ERR_SHARD_INITIALIZATION_FAILED, 'shard initialization failed') {}
export class ShardInUseError extends defineError(CODE.ERR_SHARD_IN_USE, 'shard is in use') {}
export class ShardErroredError extends defineError(CODE.ERR_SHARD_ERRORED, 'shard is in errored state') {}
export class ShardNotErroredError extends defineError(CODE.ERR_SHARD_NOT_ERRORED, 'refused to recover shard that is not errored') {}
/** An acquire (or recover) of a shard that a destroy with `drain` is waiting to destroy. */
export class ShardDrainingError extends defineError(CODE.ERR_SHARD_DRAINING, 'shard is being drained for a destroy') {}
/** A call that needs the store running was made before start() finished. */
export class StoreNotStartedError extends defineError(CODE.ERR_STORE_NOT_STARTED, 'dag store not started') {}
export class StoreClosedError extends defineError(CODE.ERR_STORE_CLOSED, 'dag store closed') {}
export class BlockNotFoundError extends defineError(CODE.ERR_NOT_FOUND, 'block not found') {}
export class InvalidShardKeyError extends defineError(CODE.ERR_INVALID_SHARD_KEY, 'invalid shard key') {}
export class UnknownMountSchemeError extends defineError(CODE.ERR_UNKNOWN_MOUNT_SCHEME, 'unknown mount scheme') {}
export class SubscriptionLaggedError extends defineError(CODE.ERR_SUBSCRIPTION_LAGGED, 'subscriber fell too far behind the event stream') {}
export class InvalidCarError extends defineError(CODE.ERR_INVALID_CAR, 'invalid CAR') {}
/**
 * Hash verification met a block it cannot check (no hasher for its multihash function, a
 * digest truncated too short): not proof that the CAR is bad, so not ERR_INVALID_CAR, but
 * never passed as verified either.
 */
export class UnsupportedHashError extends defineError(CODE.ERR_UNSUPPORTED_HASH, 'cannot verify a block hash') {}
/**
 * A block read in place (ranged reads from its origin, no local copy) does not hash to its CID.
 * Not ERR_INVALID_CAR: the shard was valid when it was indexed; the origin now serves other
 * bytes (changed under the same validator, or a faulty proxy), so it is the origin's fault.
 */
export class HashMismatchError extends defineError(CODE.ERR_HASH_MISMATCH, 'block hash mismatch') {}
/** A shard registered with copy 'never' whose origin cannot be read in place. */
export class RangeNotSupportedError extends defineError(CODE.ERR_RANGE_NOT_SUPPORTED, 'origin cannot be read in place') {}
export class IndexNotFoundError extends defineError(CODE.ERR_INDEX_NOT_FOUND, 'index not found') {}
/** A mount URL or mount value the registry cannot accept (bad URL, duplicate scheme, unrepresentable mount). */
export class InvalidMountError extends defineError(CODE.ERR_INVALID_MOUNT, 'invalid mount') {}
/** The transient a shard depends on could not be produced (fetch failed, disk full, ...). */
export class TransientError extends defineError(CODE.ERR_TRANSIENT, 'transient fetch failed') {}

/** Automated GC could not make room for a transient: everything left is in use, downloading or within its grace period. */
/** A store call's option out of its range (listShards' limit, state, after or prefix). */
export class InvalidArgumentError extends defineError(CODE.ERR_INVALID_ARGUMENT, 'invalid argument') {}
export class TransientsFullError extends defineError(CODE.ERR_TRANSIENTS_FULL, 'transients dir full') {}

/** The database's dagstore schema is newer than the code (another node was upgraded first). */
export class SchemaVersionError extends defineError(CODE.ERR_SCHEMA_VERSION, 'database schema too new') {}

/** adopt --from a node whose lease is current. */
export class NodeAliveError extends defineError(CODE.ERR_NODE_ALIVE, 'the node is alive') {}
/** adopt --from a name no node row has. */
export class NodeUnknownError extends defineError(CODE.ERR_NODE_UNKNOWN, 'no such node') {}
/** A cluster operation on a store whose backend is not shared. */
export class NotClusteredError extends defineError(CODE.ERR_NOT_CLUSTERED, 'the store is not part of a cluster') {}

/** Where a shard of another node is, for a hop to it: its owner and how to reach it. */
export interface OwnerWhereabouts {
  owner: string
  advertise: string | undefined
  alive: boolean
}

/**
 * The shard is another node's and this node cannot read its bytes itself (a local file of that
 * node): the request must go to the owner. `where` says who it is and whether it is alive.
 */
export class ShardElsewhereError extends defineError(CODE.ERR_SHARD_ELSEWHERE, 'the shard is held by another node') {
  where: OwnerWhereabouts | undefined
}

/**
 * The block is held only by shards of a node that is down, advertises no URL, or did not answer
 * a hop to it in time: worth asking again later (`where` says which node).
 */
export class OwnerUnavailableError extends defineError(CODE.ERR_OWNER_UNAVAILABLE, 'the node owning the block is unavailable') {
  where: OwnerWhereabouts | undefined
}

/** A shard error restored from the state DB after a restart: the original class is gone, its code is kept. */
export class RestoredShardError extends DAGStoreError {}

/** The error delivered when an operation's AbortSignal fires before its result is ready. */
export class AbortError extends DAGStoreError {
  static readonly code = CODE.ABORT_ERR
  constructor (message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, CODE.ABORT_ERR, options)
    this.name = 'AbortError'
  }
}

export function abortErrorFrom (signal: AbortSignal): AbortError {
  const reason: unknown = signal.reason
  if (reason instanceof AbortError) return reason
  return new AbortError(undefined, { cause: reason })
}

export function isAbortError (err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || codeOf(err) === CODE.ABORT_ERR)
}

/** Like `promise`, but rejects with an AbortError as soon as `signal` aborts. */
export function raceAbort<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {})
    return Promise.reject(abortErrorFrom(signal))
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(abortErrorFrom(signal)) }
    signal.addEventListener('abort', onAbort, { once: true })
    // Attaching both handlers also keeps a late rejection of the abandoned promise handled.
    promise.then(
      (value) => { signal.removeEventListener('abort', onAbort); resolve(value) },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err) })
  })
}
