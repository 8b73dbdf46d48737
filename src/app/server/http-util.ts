/**
 * JSON responses, the error body every route shares, and request-body reading with a limit.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

/** What every failed request answers: `{ "error": { code, message, cause? } }`. */
export interface ErrorJson {
  code: string
  message: string
  cause?: { code?: string, message: string }
}

/** A failure that already knows its HTTP status; anything else thrown by a route goes through statusOf(). */
export class HttpError extends Error {
  readonly status: number
  readonly code: string
  readonly headers: Record<string, string>
  constructor (status: number, code: string, message: string, options: { headers?: Record<string, string>, cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.status = status
    this.code = code
    this.headers = options.headers ?? {}
  }
}

// The store's codes (src/errors.ts) and the status a client should see for them.
const STATUS_BY_CODE: Record<string, number> = {
  ERR_SHARD_UNKNOWN: 404,
  ERR_SHARD_EXISTS: 409,
  ERR_SHARD_IN_USE: 409,
  ERR_SHARD_NOT_ERRORED: 409,
  ERR_SHARD_ERRORED: 409,
  ERR_INVALID_SHARD_KEY: 400,
  ERR_UNKNOWN_MOUNT_SCHEME: 400,
  ERR_INVALID_MOUNT: 400,
  ERR_SHARD_INITIALIZATION_FAILED: 422,
  ERR_INDEX_NOT_FOUND: 404,
  ERR_STORE_CLOSED: 503,
  ERR_STORE_NOT_STARTED: 503
}

function codeOf (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

export function statusOf (err: unknown): number {
  if (err instanceof HttpError) return err.status
  return STATUS_BY_CODE[codeOf(err) ?? ''] ?? 500
}

/** `{code, message}` of any error; non-store errors get ERR_INTERNAL. */
export function errorJson (err: unknown): ErrorJson {
  const message = err instanceof Error ? err.message : String(err)
  const out: ErrorJson = { code: codeOf(err) ?? 'ERR_INTERNAL', message }
  const cause = err instanceof Error ? err.cause : undefined
  // The store wraps what actually went wrong (InvalidCarError, HttpStatusError, ...): clients need its code.
  if (cause instanceof Error) {
    out.cause = { message: cause.message }
    const code = codeOf(cause)
    if (code !== undefined) out.cause.code = code
  }
  return out
}

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body), 'utf8')
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(bytes.byteLength),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff'
  })
  res.end(bytes)
}

export function sendError (res: ServerResponse, err: unknown): void {
  const headers = err instanceof HttpError ? err.headers : {}
  sendJson(res, statusOf(err), { error: errorJson(err) }, headers)
}

// After a 413 the client may still be sending: the rest is discarded (not buffered) for this
// long so it can read the answer, then the connection is dropped. Closing at once would reset
// the connection while unread bytes are pending, and the client would often lose the 413.
const LINGER_MS = 1000

function tooLarge (req: IncomingMessage, res: ServerResponse, maxBytes: number): HttpError {
  req.resume()
  res.once('finish', () => {
    if (req.complete) return
    const timer = setTimeout(() => { req.socket.destroy() }, LINGER_MS)
    timer.unref()
    req.once('end', () => { clearTimeout(timer) })
  })
  return new HttpError(413, 'ERR_PAYLOAD_TOO_LARGE', `request body exceeds ${maxBytes} bytes`)
}

/** The whole body, refusing (413) past `maxBytes` without buffering the excess. */
async function readBody (req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(req, res, maxBytes)
  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength
      if (size > maxBytes) {
        cleanup()
        chunks.length = 0
        reject(tooLarge(req, res, maxBytes))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => { cleanup(); resolve(Buffer.concat(chunks, size)) }
    // 'close' before 'end': the client went away (or a timeout cut it off) mid-body.
    const onClose = (): void => { cleanup(); reject(new HttpError(400, 'ERR_INVALID_REQUEST', 'request body incomplete')) }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('close', onClose)
    // Without a listener an aborted request's 'error' would be thrown; 'close' follows and rejects.
    req.on('error', () => {})
  })
}

/** A JSON body (Content-Type application/json required: a browser cannot send that cross-origin without a preflight). */
export async function readJson (req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase()
  if (type !== 'application/json') {
    throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json')
  }
  const body = await readBody(req, res, maxBytes)
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new HttpError(400, 'ERR_INVALID_REQUEST', `request body is not valid JSON: ${(err as Error).message}`)
  }
}
