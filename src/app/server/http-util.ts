/**
 * JSON responses, the error body every route shares, and request-body reading with a limit.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CODE, errorCodeInfo, httpStatusOf, type ErrorCode } from '../../base/errors/codes.js'
import { errorJson } from '../wire.js'

/**
 * A failure the server itself detects (a bad request, a refused one). Its status is its code's
 * in the registry, like that of every error a route throws (httpStatusOf).
 */
export class HttpError extends Error {
  readonly status: number
  readonly code: ErrorCode
  readonly headers: Record<string, string>
  constructor (code: ErrorCode, message: string, options: { headers?: Record<string, string>, cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.status = errorCodeInfo(code)?.status ?? 500
    this.headers = options.headers ?? {}
  }
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
  sendJson(res, httpStatusOf(err), { error: errorJson(err) }, headers)
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
  return new HttpError(CODE.ERR_PAYLOAD_TOO_LARGE, `request body exceeds ${maxBytes} bytes`)
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
    const onClose = (): void => { cleanup(); reject(new HttpError(CODE.ERR_INVALID_REQUEST, 'request body incomplete')) }
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
    throw new HttpError(CODE.ERR_UNSUPPORTED_MEDIA_TYPE, 'request body must be application/json')
  }
  const body = await readBody(req, res, maxBytes)
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new HttpError(CODE.ERR_INVALID_REQUEST, `request body is not valid JSON: ${(err as Error).message}`)
  }
}

/** If-None-Match against our (strong) ETag with the weak comparison RFC 9110 prescribes for it. */
export function etagMatches (header: string, etag: string): boolean {
  for (const part of header.split(',')) {
    let tag = part.trim()
    if (tag === '*') return true
    if (tag.startsWith('W/')) tag = tag.slice(2)
    if (tag === etag) return true
  }
  return false
}

/**
 * Resolves when `res` may be written again: on 'drain', on 'close' (a response that will never
 * drain), or when `signal` aborts (the writer gives up).
 */
export async function drained (res: ServerResponse, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true || res.destroyed) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
    signal?.addEventListener('abort', done)
  })
}
