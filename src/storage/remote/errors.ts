import { defineError } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'

/** A read through an in-place reader after its close(), or one its close() cut short. */
export class ReaderClosedError extends defineError(CODE.ERR_READER_CLOSED, 'mount reader closed') {}

/** A read whose in-flight buffer alone would exceed the cache's budget: it could never be reserved. */
export class RemoteReadTooLargeError extends defineError(CODE.ERR_REMOTE_READ_TOO_LARGE, 'read larger than the section cache') {}
