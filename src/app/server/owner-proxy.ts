/**
 * The gateway's one hop to a shard's owner (DESIGN §12): a block only another node can read
 * (a local file of that node) is asked of that node's advertised URL, the same path and query,
 * the same Accept. The hop is marked with PROXIED_HEADER and a marked request is never sent on
 * (the loop guard). An owner whose lease ran out is not asked at all; one that does not answer
 * within the timeouts gets the client a 503 with Retry-After, never a hang. The blocks of a DAG
 * that other nodes hold are fetched one by one by the blockstore (engine/cluster/owner-blocks.ts),
 * through the same timeouts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { OwnerWhereabouts } from '../../base/errors.js'
import { askOwner, ownerBase, ownerUnavailable, underBase, PROXIED_HEADER, type OwnerHop } from '../../engine/cluster/owner-blocks.js'

export { ownerToAsk } from '../../engine/cluster/whereabouts.js'

export type OwnerProxyOptions = OwnerHop

/** Request headers the owner needs to answer as this node would have. */
const FORWARDED = ['accept', 'cache-control', 'if-none-match']
/** Response headers that describe one connection, not the answer. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade'])

export function isProxied (req: IncomingMessage): boolean {
  return req.headers[PROXIED_HEADER] !== undefined
}

export { ownerUnavailable }

/**
 * Answers `req` with the owner's answer. @throws OwnerUnavailableError (nothing sent) when the
 * owner is down, advertises no URL, or does not answer in time.
 */
export async function proxyToOwner (req: IncomingMessage, res: ServerResponse, where: OwnerWhereabouts, options: OwnerProxyOptions,
  onStatus: (status: number) => void): Promise<void> {
  const target = underBase(ownerBase(where), req.url ?? '/')
  const headers: Record<string, string | string[]> = {}
  for (const name of FORWARDED) {
    const value = req.headers[name]
    if (value !== undefined) headers[name] = value
  }
  const upstream = await askOwner(target, req.method === 'HEAD' ? 'HEAD' : 'GET', headers, where, options)
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
