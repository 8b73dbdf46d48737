/**
 * GET /shards?limit=&cursor=&state=&prefix=&node=: the query of a listing page, checked. A page
 * describes each of its shards (a stat or two each), hence a lower ceiling than the store's.
 * `node` (the owner) is for clustered stores only.
 */
import type { IncomingMessage } from 'node:http'
import { SHARD_STATES, type ListShardsOptions, type ShardState } from '../../base/types.js'
import { CODE } from '../../base/errors/codes.js'
import { decodeCursor } from '../cursor.js'
import { HttpError } from './http-util.js'

const DEFAULT_PAGE_LIMIT = 100
const MAX_PAGE_LIMIT = 1000

const PARAMS = new Set(['limit', 'cursor', 'state', 'prefix', 'node'])

export type ListQuery = ListShardsOptions & { limit: number, node?: string }

export function listQuery (req: IncomingMessage): ListQuery {
  const query = new URL(req.url ?? '/', 'http://admin.invalid').searchParams
  const bad = (message: string): HttpError => new HttpError(CODE.ERR_INVALID_REQUEST, message)
  for (const name of query.keys()) {
    // A misspelt parameter (e.g. "states") would otherwise list everything, silently.
    if (!PARAMS.has(name)) throw bad(`unknown query parameter ${JSON.stringify(name)}: GET /shards takes limit, cursor, state, prefix, node`)
    if (query.getAll(name).length > 1) throw bad(`query parameter ${name} given more than once`)
  }
  const out: ListQuery = { limit: DEFAULT_PAGE_LIMIT }
  const limit = query.get('limit')
  if (limit !== null) {
    if (!/^\d{1,7}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_PAGE_LIMIT) throw bad(`limit must be an integer 1..${MAX_PAGE_LIMIT}`)
    out.limit = Number(limit)
  }
  const cursor = query.get('cursor')
  if (cursor !== null) out.after = decodeCursor(cursor)
  const state = query.get('state')
  if (state !== null) {
    if (!(SHARD_STATES as readonly string[]).includes(state)) throw bad(`state must be one of ${SHARD_STATES.join(', ')}`)
    out.state = state as ShardState
  }
  const prefix = query.get('prefix')
  if (prefix !== null && prefix !== '') out.prefix = prefix
  const node = query.get('node')
  if (node !== null) {
    if (node === '') throw bad('node must name a node')
    out.node = node
  }
  return out
}
