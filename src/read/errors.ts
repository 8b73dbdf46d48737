import { DAGStoreError } from '../base/errors.js'
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
