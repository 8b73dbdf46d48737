/**
 * The gateway's one hop to a shard's owner (DESIGN §12): a block only another node can read
 * (a local file of that node) is asked of that node's advertised URL, the same path and query,
 * the same Accept. The hop is marked with PROXIED_HEADER and a marked request is never sent on
 * (the loop guard). An owner whose lease ran out is not asked at all; one that does not answer
 * within the timeouts gets the client a 503 with Retry-After, never a hang.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse, type OutgoingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { ShardElsewhereError, type OwnerWhereabouts } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'
import { HttpError } from './http-util.js'

const PROXIED_HEADER = 'x-dagstore-proxied-by'

export interface OwnerProxyOptions {
  /** This node's name, sent in PROXIED_HEADER. */
  node: string
  /** Giving up on connecting to the owner. Default 1,000 ms. */
  connectTimeoutMs?: number
  /** Giving up on the owner's response head (connecting included). Default 2,000 ms. */
  responseTimeoutMs?: number
  /** Giving up on an owner's body that stalls this long. Default 30,000 ms. */
  idleTimeoutMs?: number
}

/** Seconds a client is told to wait before asking again when the owner is down. */
const RETRY_AFTER = '5'

/** Request headers the owner needs to answer as this node would have. */
const FORWARDED = ['accept', 'cache-control', 'if-none-match']
/** Response headers that describe one connection, not the answer. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade'])

/** The owner of the first shard in `err` (or its causes) that only its owner can read. */
export function ownerToAsk (err: unknown): OwnerWhereabouts | undefined {
  const seen = new Set<unknown>()
  const walk = (e: unknown): OwnerWhereabouts | undefined => {
    if (e === null || typeof e !== 'object' || seen.has(e)) return undefined
    seen.add(e)
    if (e instanceof ShardElsewhereError && e.where !== undefined) {
      // A reachable owner first: another holder's owner may be up when this one is not.
      return e.where
    }
    if (e instanceof AggregateError) {
      const found = e.errors.map(walk).filter((w): w is OwnerWhereabouts => w !== undefined)
      return found.find((w) => w.alive && w.advertise !== undefined) ?? found[0]
    }
    return walk((e as { cause?: unknown }).cause)
  }
  return walk(err)
}

export function isProxied (req: IncomingMessage): boolean {
  return req.headers[PROXIED_HEADER] !== undefined
}

export function ownerUnavailable (where: OwnerWhereabouts, why: string, cause?: unknown): HttpError {
  return new HttpError(CODE.ERR_OWNER_UNAVAILABLE, `the block is held by node ${JSON.stringify(where.owner)}, ${why}`,
    { headers: { 'retry-after': RETRY_AFTER }, cause })
}

/**
 * Answers `req` with the owner's answer. @throws HttpError ERR_OWNER_UNAVAILABLE (nothing sent)
 * when the owner is down, advertises no URL, or does not answer in time.
 */
export async function proxyToOwner (req: IncomingMessage, res: ServerResponse, where: OwnerWhereabouts, options: OwnerProxyOptions,
  onStatus: (status: number) => void): Promise<void> {
  if (!where.alive) throw ownerUnavailable(where, 'which is down (its heartbeat is stale)')
  if (where.advertise === undefined) throw ownerUnavailable(where, 'which advertises no URL to reach it by')
  const base = new URL(where.advertise)
  const target = new URL(base.pathname.replace(/\/+$/, '') + (req.url ?? '/'), base)
  const headers: OutgoingHttpHeaders = { [PROXIED_HEADER]: options.node }
  for (const name of FORWARDED) {
    const value = req.headers[name]
    if (value !== undefined) headers[name] = value
  }
  const responseTimeoutMs = options.responseTimeoutMs ?? 2_000
  const connectTimeoutMs = Math.min(options.connectTimeoutMs ?? 1_000, responseTimeoutMs)
  const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest
    const out = send(target, { method: req.method === 'HEAD' ? 'HEAD' : 'GET', headers })
    let settled = false
    const fail = (why: string, cause?: unknown): void => {
      if (settled) return
      settled = true
      clearTimeout(overall)
      out.destroy()
      reject(ownerUnavailable(where, why, cause))
    }
    const overall = setTimeout(() => { fail(`which did not answer within ${responseTimeoutMs} ms`) }, responseTimeoutMs)
    out.once('socket', (socket) => {
      if (!socket.connecting) return
      const connect = setTimeout(() => { fail(`which could not be connected to within ${connectTimeoutMs} ms`) }, connectTimeoutMs)
      socket.once('connect', () => { clearTimeout(connect) })
      socket.once('close', () => { clearTimeout(connect) })
    })
    out.on('error', (err) => { fail(`which could not be reached (${err.message})`, err) })
    out.once('response', (answer) => {
      if (settled) return
      settled = true
      clearTimeout(overall)
      resolve(answer)
    })
    out.end()
  })
  const status = upstream.statusCode ?? 502
  const answerHeaders: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) answerHeaders[name] = value
  }
  onStatus(status)
  res.writeHead(status, answerHeaders)
  upstream.setTimeout(options.idleTimeoutMs ?? 30_000, () => { upstream.destroy(new Error('the owner stalled')) })
  await new Promise<void>((resolve) => {
    upstream.once('error', (err) => { res.destroy(err); resolve() })
    res.once('close', () => { upstream.destroy(); resolve() })
    upstream.pipe(res)
    res.once('finish', () => { resolve() })
  })
}
