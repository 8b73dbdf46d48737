import { DAGStoreError, defineError } from '../base/errors.js'
import { CODE } from '../base/errors/codes.js'

/** A call on an all-shards blockstore after its close(). */
export class BlockstoreClosedError extends DAGStoreError {
  static readonly code = CODE.ERR_BLOCKSTORE_CLOSED
  constructor (message = 'blockstore closed', options?: { cause?: unknown }) {
    super(message, BlockstoreClosedError.code, options)
  }
}

/** A write (put, putMany, delete, deleteMany) on the read-only interface-blockstore adapter. */
export class ReadOnlyError extends DAGStoreError {
  static readonly code = CODE.ERR_READ_ONLY
  constructor (message = 'blockstore is read-only', options?: { cause?: unknown }) {
    super(message, ReadOnlyError.code, options)
  }
}

/** A path after the root CID that names no directory entry, map key or list index. */
export class PathNotFoundError extends defineError(CODE.ERR_PATH_NOT_FOUND, 'path not found') {}

/** A block that does not decode under its CID's codec (bad bytes in a shard). */
export class BlockUndecodableError extends defineError(CODE.ERR_BLOCK_UNDECODABLE, 'block does not decode') {}

/** A path or walk through data this reader cannot interpret (an unknown codec, a HAMT deeper than its hash). */
export class UnsupportedDagError extends defineError(CODE.ERR_NOT_IMPLEMENTED, 'unsupported DAG') {}

/** A dups=y walk that repeated more blocks than its bound. */
export class DupsLimitError extends defineError(CODE.ERR_DUPS_LIMIT, 'too many duplicate blocks') {}
