/**
 * `dagstore serve`'s HTTP server: the block gateway (/ipfs/…), whole shards (/car/…), /metrics,
 * /healthz, the status page (/) and the admin JSON API on one node:http server, with request
 * limits and a graceful close.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import type { DAGStore } from '../../engine/store.js'
import { MountRegistry } from '../../storage/mount/registry.js'
import { defaultReport } from '../../base/report.js'
import { createGateway, type Gateway } from './gateway.js'
import { AdminApi } from './admin.js'
import { isCarPath, serveCar } from './car-download.js'
import { AllowRoots } from './allow-roots.js'
import { bearerCheck, loopbackCheck, validateToken } from './auth.js'
import { isLoopback } from '../loopback.js'
import { HttpError, sendError, sendJson } from './http-util.js'
import { CODE, httpStatusOf } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'
import { serveStatusPage, statusPageFile } from './status-page.js'
import { StatusSampler } from './status.js'

export interface ServeLimits {
  /** Request bodies above this get 413. Default 1 MiB. */
  maxBodyBytes?: number
  /** Request targets longer than this get 414 (431 once the request line and headers pass this + 16 KiB). Default 8 KiB. */
  maxUrlLength?: number
  /** Time to receive a request's headers. Default 10 s (at most requestTimeoutMs). */
  headersTimeoutMs?: number
  /** Time to receive a whole request (headers and body; not the response). Default 30 s; 0 = none. */
  requestTimeoutMs?: number
  /** An idle kept-alive connection is closed after this long. Default 5 s. */
  keepAliveTimeoutMs?: number
  /** Connections beyond this many are refused. Default 1024. */
  maxConnections?: number
  /**
   * A connection that makes no progress for this long is dropped: a client that stops reading
   * a response would otherwise hold it (and the shard accessor serving it) for ever. SSE streams
   * stay alive through their heartbeats; eager registration and recovery are exempt while they
   * wait for the store. Default 120 s; 0 = none.
   */
  idleTimeoutMs?: number
}

export interface ServeOptions {
  /** Default '127.0.0.1'. */
  host?: string
  /** Default 8080; 0 = any free port. */
  port?: number
  /**
   * Bearer token the admin routes require. null = no auth, refused (TypeError) unless `host`
   * is a loopback address. Left out: a random token is generated (see DagstoreServer.token).
   */
  token?: string | null
  /** Folders below which POST /shards accepts file: URLs (real paths compared). Default none: file: URLs get 403. */
  allowRoots?: string[]
  limits?: ServeLimits
  /** Schemes POST /shards may mount. Default `new MountRegistry()` (file, bytes, http, https); should match the store's. */
  mounts?: MountRegistry
  /** How long close() lets in-flight responses finish before dropping their connections. Default 10 s. */
  shutdownTimeoutMs?: number
  /** Comment line sent on every /events stream this often. Default 15 s (at most half of limits.idleTimeoutMs). */
  sseHeartbeatMs?: number
  /** How often the server samples its rates (ops/s, requests/s, bytes/s) for GET /status and the status page. Default 2000 ms. */
  rateSampleMs?: number
  /** Errors no response can carry (a failing handler after its headers went out, ...). Default: one line on stderr. */
  onError?: (err: unknown, context: string) => void
}

export interface DagstoreServer {
  /** http://host:port, as bound. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** The admin token in force (the generated one when none was given), or null without auth. */
  readonly token: string | null
  /**
   * Graceful: stops accepting, ends /events streams, lets in-flight responses finish (for at
   * most shutdownTimeoutMs, then drops them). Idempotent. Does not close the store.
   */
  close: () => Promise<void>
}

type Limits = Required<ServeLimits>

function resolveLimits (given: ServeLimits = {}): Limits {
  const requestTimeoutMs = given.requestTimeoutMs ?? 30_000
  const limits: Limits = {
    maxBodyBytes: given.maxBodyBytes ?? 1024 * 1024,
    maxUrlLength: given.maxUrlLength ?? 8 * 1024,
    requestTimeoutMs,
    // node refuses a headers timeout above the request timeout; only an explicit one is an error.
    headersTimeoutMs: given.headersTimeoutMs ?? (requestTimeoutMs > 0 ? Math.min(10_000, requestTimeoutMs) : 10_000),
    keepAliveTimeoutMs: given.keepAliveTimeoutMs ?? 5_000,
    maxConnections: given.maxConnections ?? 1024,
    idleTimeoutMs: given.idleTimeoutMs ?? 120_000
  }
  for (const [name, value] of Object.entries(limits)) {
    const min = name === 'maxConnections' || name === 'maxUrlLength' || name === 'headersTimeoutMs' ? 1 : 0
    if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`limits.${name} must be an integer ≥ ${min}`)
  }
  if (limits.requestTimeoutMs > 0 && limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new RangeError('limits.headersTimeoutMs must not exceed limits.requestTimeoutMs')
  }
  return limits
}

function positiveMs (value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`)
  return v
}

export async function startServer (store: DAGStore, options: ServeOptions = {}): Promise<DagstoreServer> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 8080
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError('port must be an integer 0..65535')
  const token = options.token === undefined ? randomBytes(32).toString('base64url') : options.token
  if (token === null) {
    if (!isLoopback(host)) throw new TypeError(`refusing to serve the admin API without a token on ${host}: only a loopback address may go without one`)
  } else {
    if (typeof token !== 'string') throw new TypeError('token must be a string or null')
    validateToken(token)
  }
  const limits = resolveLimits(options.limits)
  const shutdownTimeoutMs = positiveMs(options.shutdownTimeoutMs, 10_000, 'shutdownTimeoutMs')
  // Heartbeats are what keep an /events stream inside the idle timeout.
  const defaultHeartbeatMs = limits.idleTimeoutMs > 0 ? Math.max(1, Math.min(15_000, Math.floor(limits.idleTimeoutMs / 2))) : 15_000
  const heartbeatMs = positiveMs(options.sseHeartbeatMs, defaultHeartbeatMs, 'sseHeartbeatMs')
  const rateSampleMs = positiveMs(options.rateSampleMs, 2000, 'rateSampleMs')
  const allowRoots = await AllowRoots.resolve(options.allowRoots ?? [])
  const onError = options.onError ?? defaultReport
  const authorize = token === null ? loopbackCheck() : bearerCheck(token)
  const closing = new AbortController()
  // What the status page plots: requests answered, and bytes sent (closed connections' plus the open ones' so far).
  let requests = 0
  let bytesOfClosed = 0
  const sockets = new Set<Socket>()
  const bytesSent = (): number => {
    let n = bytesOfClosed
    for (const socket of sockets) n += socket.bytesWritten
    return n
  }
  const sampler = new StatusSampler(store, { requests: () => requests, bytesSent }, rateSampleMs, onError)
  const admin = new AdminApi(store, {
    mounts: options.mounts ?? new MountRegistry(),
    allowRoots,
    localFiles: token !== null && isLoopback(host),
    maxBodyBytes: limits.maxBodyBytes,
    heartbeatMs,
    closing: closing.signal,
    onError,
    release: async (key) => { await gateway.evict(key) },
    status: async () => await sampler.status()
  })
  // One registry: /metrics shows the store's series and the gateway's together.
  const gateway: Gateway = createGateway(store, { registry: store.metrics })

  async function dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? ''
    if (target.length > limits.maxUrlLength) {
      throw new HttpError(CODE.ERR_URL_TOO_LONG, `request target longer than ${limits.maxUrlLength} characters`)
    }
    if (!target.startsWith('/')) throw new HttpError(CODE.ERR_INVALID_REQUEST, 'request target must be a path')
    if (closing.signal.aborted) {
      res.setHeader('connection', 'close')
      throw new HttpError(CODE.ERR_SERVER_CLOSING, 'server is shutting down')
    }
    const method = req.method ?? 'GET'
    const path = target.split(/[?#]/, 1)[0] ?? ''
    if (path === '/healthz' || path === '/metrics') {
      if (method !== 'GET' && method !== 'HEAD') throw notAllowed(method, path, ['GET', 'HEAD'])
      if (path === '/healthz') {
        sendJson(res, 200, { ok: true })
      } else {
        const text = await store.metrics.metrics()
        res.writeHead(200, {
          'content-type': store.metrics.contentType,
          'content-length': String(Buffer.byteLength(text)),
          'cache-control': 'no-store'
        })
        res.end(text)
      }
      return
    }
    const pageFile = statusPageFile(path)
    if (pageFile !== undefined) {
      if (method !== 'GET' && method !== 'HEAD') throw notAllowed(method, path, ['GET', 'HEAD'])
      await serveStatusPage(req, res, pageFile)
      return
    }
    if (isCarPath(path)) {
      await serveCar(store, req, res, path)
      return
    }
    const match = admin.route(method, path)
    if (match !== undefined) {
      // Before the 405: without credentials a caller learns nothing about the admin routes.
      authorize(req)
      if ('allow' in match) throw notAllowed(method, path, match.allow)
      await match.run(req, res)
      return
    }
    if (await gateway.handle(req, res)) return
    throw new HttpError(CODE.ERR_NOT_FOUND_ROUTE, `no route for ${method} ${path}`)
  }

  const server = createServer({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // node checks both timeouts on this period (default 30 s), so small limits need a shorter one.
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs || Infinity) / 4))),
    // Room for the longest URL we accept plus ordinary headers, so an over-long URL gets our 414
    // rather than node's 431 (which still answers a request line + headers past this size).
    maxHeaderSize: Math.max(16 * 1024, limits.maxUrlLength + 16 * 1024)
  }, (req, res) => {
    requests++
    res.once('close', () => {
      // A response finished during close() leaves its kept-alive connection idle: close it now.
      if (closing.signal.aborted) setImmediate(() => { server.closeIdleConnections() })
    })
    dispatch(req, res).catch((err: unknown) => {
      if (!(err instanceof HttpError) && httpStatusOf(err) >= 500 && codeOf(err) !== CODE.ERR_STORE_CLOSED) {
        onError(err, `${req.method ?? ''} ${(req.url ?? '').slice(0, 200)}`)
      }
      if (!res.headersSent) sendError(res, err)
      else res.destroy()
    })
  })
  server.keepAliveTimeout = limits.keepAliveTimeoutMs
  server.maxConnections = limits.maxConnections
  server.timeout = limits.idleTimeoutMs
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => {
      bytesOfClosed += socket.bytesWritten
      sockets.delete(socket)
    })
  })

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await gateway.close().catch(() => {})
    throw err
  }
  server.on('error', (err) => { onError(err, 'http server') })
  sampler.start()
  const address = server.address() as AddressInfo
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address

  let closed: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closed ??= (async () => {
      closing.abort()
      sampler.stop()
      const drained = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      server.closeIdleConnections()
      let timer: NodeJS.Timeout | undefined
      const timedOut = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(true) }, shutdownTimeoutMs) })
      ])
      clearTimeout(timer)
      if (timedOut) {
        server.closeAllConnections()
        for (const socket of sockets) socket.destroy()
        await drained
      }
      await gateway.close()
    })()
    await closed
  }

  return { url: `http://${shown}:${address.port}`, host: address.address, port: address.port, token, close }
}

function notAllowed (method: string, path: string, allow: string[]): HttpError {
  return new HttpError(CODE.ERR_METHOD_NOT_ALLOWED, `${method} is not allowed on ${path}`, { headers: { allow: allow.join(', ') } })
}
