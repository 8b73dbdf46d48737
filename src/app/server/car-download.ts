/**
 * GET/HEAD /car/{key}: a whole shard's CAR bytes, like booster-http's /piece. Public like the
 * gateway (it serves the same data, read-only): no token, CORS for any origin. The shard is
 * acquired for the response and released when it ends, fails, or the client goes away.
 *
 * - {key}: one percent-encoded path segment ('/' in a key is %2F); bad encoding → 400
 *   ERR_INVALID_REQUEST, a key the store refuses → 400 ERR_INVALID_SHARD_KEY, no such shard →
 *   404 ERR_SHARD_UNKNOWN, an errored shard → 409 ERR_SHARD_ERRORED (its error as `cause`).
 * - Content-Type `application/vnd.ipld.car; version=1` or `version=2`, read from the bytes.
 * - Range (byte-range.ts): one range → 206 with Content-Range; outside the shard → 416 with
 *   `Content-Range: bytes *\/size`; several ranges or a header that does not parse → 200 whole.
 *   If-Range (an ETag, strong comparison, or the Last-Modified date) is honoured.
 * - ETag: strong, a digest of the key, the mount URL and the identity of the file read (inode,
 *   size, mtime in ns): a recovered shard's re-fetched copy, or a file rewritten in place,
 *   gets a new one. If-None-Match (weak comparison, `*` too) → 304. Cache-Control no-cache:
 *   the bytes behind a key can change, so caches revalidate.
 * - A shard whose bytes are no local file (a custom mount without a copy): 200 with the
 *   stream, no length, no ETag, Range ignored.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { stat } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { DAGStore } from '../../engine/store.js'
import type { ShardAccessor, ShardKey } from '../../base/types.js'
import { validateKey } from '../../base/keys.js'
import { DAGStoreError } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'
import { isPragma } from '../../format/car/layout.js'
import { HttpError, etagMatches } from './http-util.js'
import { parseRange } from './byte-range.js'

const CAR_TYPE = 'application/vnd.ipld.car'
const ALLOW = 'GET, HEAD, OPTIONS'
const CORS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Content-Disposition'
}
const PRAGMA_BYTES = 11

/** /car and everything below it: this module answers (a 404 for shapes other than /car/{key}). */
export function isCarPath (path: string): boolean {
  return path === '/car' || path.startsWith('/car/')
}

/** What the bytes of an acquired shard are on disk: enough for a length, an ETag and dates. */
interface Representation {
  size: number
  etag: string
  lastModified: string
}

export async function serveCar (store: DAGStore, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  for (const [name, value] of Object.entries(CORS)) res.setHeader(name, value)
  const method = req.method ?? 'GET'
  if (method === 'OPTIONS') {
    res.writeHead(204, {
      allow: ALLOW,
      'access-control-allow-methods': ALLOW,
      'access-control-allow-headers': 'Range, If-None-Match, If-Range',
      'access-control-max-age': '86400'
    })
    res.end()
    return
  }
  const m = /^\/car\/([^/]+)$/.exec(path)
  if (m === null) throw new HttpError(CODE.ERR_NOT_FOUND_ROUTE, `no route for ${method} ${path}: /car/{key}, the key percent-encoded`)
  if (method !== 'GET' && method !== 'HEAD') {
    throw new HttpError(CODE.ERR_METHOD_NOT_ALLOWED, `${method} is not allowed on /car/{key}`, { headers: { allow: ALLOW } })
  }
  const key = keyOf(m[1] as string)
  // Unknown keys answer at once, without a trip through the loop.
  store.getShardInfo(key)

  const gone = new AbortController()
  const onClose = (): void => { if (!res.writableFinished) gone.abort() }
  res.once('close', onClose)
  let accessor: ShardAccessor
  try {
    accessor = await store.acquire(key, { signal: gone.signal })
  } catch (err) {
    res.off('close', onClose)
    if (gone.signal.aborted) return
    throw err
  }
  try {
    await answer(store, accessor, req, res, key)
  } catch (err) {
    // The client left mid-response: nobody to tell.
    if (gone.signal.aborted) return
    throw err
  } finally {
    res.off('close', onClose)
    await accessor.close()
  }
}

function keyOf (raw: string): ShardKey {
  let key: string
  try {
    key = decodeURIComponent(raw)
  } catch {
    throw new HttpError(CODE.ERR_INVALID_REQUEST, 'malformed percent-encoding in path')
  }
  validateKey(key)
  return key
}

async function answer (store: DAGStore, accessor: ShardAccessor, req: IncomingMessage, res: ServerResponse, key: ShardKey): Promise<void> {
  const version = await carVersion(accessor)
  const headers: Record<string, string> = {
    'content-type': `${CAR_TYPE}; version=${version}`,
    'content-disposition': disposition(`${key}.car`),
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-cache'
  }
  const rep = await representation(store, key)
  if (rep === undefined) {
    res.writeHead(200, headers)
    if (req.method === 'HEAD') res.end()
    else await pipeline(Readable.from(accessor.reader()), res)
    return
  }
  headers.etag = rep.etag
  headers['last-modified'] = rep.lastModified
  headers['accept-ranges'] = 'bytes'
  const ifNoneMatch = req.headers['if-none-match']
  if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, rep.etag)) {
    const { 'content-type': _type, 'content-disposition': _disposition, ...validators } = headers
    res.writeHead(304, validators)
    res.end()
    return
  }
  const ifRange = req.headers['if-range']
  const range = rangeApplies(typeof ifRange === 'string' ? ifRange : undefined, rep) ? parseRange(req.headers.range, rep.size) : { kind: 'whole' as const }
  if (range.kind === 'unsatisfiable') {
    throw new HttpError(CODE.ERR_RANGE_NOT_SATISFIABLE, `${String(req.headers.range)}: the shard has ${rep.size} bytes`, {
      headers: { 'content-range': `bytes */${rep.size}`, 'accept-ranges': 'bytes' }
    })
  }
  let start = 0
  let length = rep.size
  let status = 200
  if (range.kind === 'part') {
    status = 206
    start = range.start
    length = range.end - range.start + 1
    headers['content-range'] = `bytes ${range.start}-${range.end}/${rep.size}`
  }
  headers['content-length'] = String(length)
  res.writeHead(status, headers)
  if (req.method === 'HEAD' || length === 0) {
    res.end()
    return
  }
  // pipeline: the file is read as fast as the client takes it, and closed however it ends.
  await pipeline(Readable.from(window(accessor.reader(start), length)), res)
}

/** 2 when the bytes start with the CARv2 pragma, else 1 (whatever they hold: the indexer accepted them). */
async function carVersion (accessor: ShardAccessor): Promise<1 | 2> {
  let head: Uint8Array = new Uint8Array(0)
  for await (const chunk of accessor.reader()) {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
    if (head.length >= PRAGMA_BYTES) break
  }
  return isPragma(head) ? 2 : 1
}

/** The local file the accessor reads (the store's copy, or a file: mount's file); undefined when there is none. */
async function representation (store: DAGStore, key: ShardKey): Promise<Representation | undefined> {
  const d = await store.describeShard(key)
  const path = d.transient ?? (d.url.startsWith('file:') ? fileURLToPath(d.url) : undefined)
  if (path === undefined) return undefined
  const st = await stat(path, { bigint: true })
  const digest = createHash('sha256').update(JSON.stringify([key, d.url, String(st.dev), String(st.ino), String(st.size), String(st.mtimeNs)])).digest('base64url')
  return { size: Number(st.size), etag: `"${digest.slice(0, 32)}"`, lastModified: new Date(Number(st.mtimeMs)).toUTCString() }
}

/** Exactly `length` bytes from `source` (which runs to the end of the shard), then it is closed. */
async function * window (source: AsyncIterable<Uint8Array>, length: number): AsyncGenerator<Uint8Array> {
  let left = length
  for await (const chunk of source) {
    if (chunk.byteLength >= left) {
      yield chunk.subarray(0, left)
      return
    }
    yield chunk
    left -= chunk.byteLength
  }
  // The file shrank since it was measured: the response cannot be completed.
  throw new DAGStoreError(`the shard's file ended ${left} bytes early`, CODE.ERR_INTERNAL)
}

/** If-Range: the range holds only while the representation is the one the client has (strong comparison). */
function rangeApplies (ifRange: string | undefined, rep: Representation): boolean {
  if (ifRange === undefined) return true
  const value = ifRange.trim()
  if (value.startsWith('"') || value.startsWith('W/')) return value === rep.etag
  return value === rep.lastModified
}

/** attachment, with an ASCII filename and, when it is not plain ASCII, its UTF-8 form (RFC 8187). */
function disposition (name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\/]/g, '_')
  if (ascii === name) return `attachment; filename="${name}"`
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}
