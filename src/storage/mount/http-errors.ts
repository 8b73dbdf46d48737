// The HTTP mount's errors, and which of them are worth another attempt.
import { DAGStoreError, defineError } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'

/** A response status the mount cannot use (after retries, for retryable ones). `status` is the HTTP status. */
export class HttpStatusError extends DAGStoreError {
  static readonly code = CODE.ERR_HTTP_STATUS
  readonly status: number
  /** The mount's URL with its credentials redacted (errors get shown and logged). */
  readonly url: string
  constructor (url: string, status: number, message = `HTTP ${status} from ${url}`, options?: { cause?: unknown }) {
    super(message, HttpStatusError.code, options)
    this.status = status
    this.url = url
  }
}

/** A body whose length disagrees with its Content-Length (or with the size HEAD reported). */
export class HttpLengthMismatchError extends defineError(CODE.ERR_HTTP_LENGTH_MISMATCH, 'HTTP body length disagrees with Content-Length') {}

/** No response, or no body bytes, within `timeoutMs`; a body slower than `minBytesPerSecond`; or a download past its `deadlineMs`. */
export class HttpTimeoutError extends defineError(CODE.ERR_HTTP_TIMEOUT, 'HTTP request stalled') {}

/** A 206 whose Content-Range is not the range asked for, or an unexpected 206. */
export class HttpRangeError extends defineError(CODE.ERR_HTTP_RANGE, 'HTTP server answered a Range request wrongly') {}

/** The connection failed (refused, reset, protocol error); `cause` has the system error. */
export class HttpNetworkError extends defineError(CODE.ERR_HTTP_NETWORK, 'HTTP connection failed') {}
/** The resource changed while it was being downloaded (its ETag or Last-Modified moved): resuming would mix two versions. */
export class HttpChangedError extends defineError(CODE.ERR_HTTP_CHANGED, 'HTTP resource changed during the download') {}

/** Errors worth another attempt. */
const RETRYABLE = new WeakSet<object>()
export function retryable<E extends Error> (err: E): E {
  RETRYABLE.add(err)
  return err
}

const RESETS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'])

/** Wraps a transport error; resets and the like are retryable. */
export function networkError (err: unknown, url: string): Error {
  if (err instanceof DAGStoreError) return err
  const code = codeOf(err)
  const wrapped = new HttpNetworkError(`HTTP connection to ${url} failed: ${String((err as Error)?.message ?? err)}`, { cause: err })
  return code !== undefined && RESETS.has(code) ? retryable(wrapped) : wrapped
}

/** A status error; 5xx and 429 are retryable, after `retryAfter` (the header's value) when the server sent one. */
export function statusError (url: string, status: number, retryAfter?: string | undefined): HttpStatusError {
  const err = new HttpStatusError(url, status)
  if (status < 500 && status !== 429) return err
  const ms = retryAfter === undefined ? undefined : parseRetryAfter(retryAfter)
  if (ms !== undefined) RETRY_AFTER.set(err, ms)
  return retryable(err)
}

/** The wait a 429 or 503 asked for, by error. */
const RETRY_AFTER = new WeakMap<object, number>()

export function retryAfterMsOf (err: unknown): number | undefined {
  return err instanceof Error ? RETRY_AFTER.get(err) : undefined
}

/** Retry-After is delay-seconds or an HTTP date. */
function parseRetryAfter (value: string): number | undefined {
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

export function isRetryable (err: unknown): boolean {
  return err instanceof Error && RETRYABLE.has(err)
}
