/**
 * The trustless gateway (https://specs.ipfs.tech/http-gateways/trustless-gateway/) for /ipfs:
 * GET/HEAD /ipfs/{cid}[/{path}] answered from every shard of the store through
 * `store.blockstore()` (top-level index, cached accessors), as a raw block or as a CARv1.
 *
 * What the spec leaves to the gateway, decided here:
 *
 * - Format: `?format=raw|car` wins over `Accept` (spec: "format SHOULD take precedence"). Any
 *   other `format` value → 406. `Accept` is negotiated per RFC 9110 §12.5.1 (q-values, the most
 *   specific range decides): `application/vnd.ipld.raw` or `application/vnd.ipld.car`; a bare
 *   wildcard (`*\/*`, `application/*`) gets the raw block, the one type every trustless gateway
 *   MUST serve. Nothing acceptable (e.g. only `text/html`) → 406. No `Accept` header and no
 *   `format` at all → 400 ERR_FORMAT_REQUIRED (spec: "SHOULD return 400 … when running in strict
 *   trustless mode and Accept header is missing").
 * - CAR variants: `version=1` only; `order` dfs or unk; `dups` y or n (from `Accept` params, or
 *   the `car-version` / `car-order` / `car-dups` query parameters, which win). Anything else → 406.
 *   The answer always says `application/vnd.ipld.car; version=1; order=dfs; dups=<n unless y was
 *   asked>`: the walk is depth-first either way.
 * - CAR roots are [cid]. Identity CIDs get no section: the spec forbids identity blocks in CAR
 *   responses (so `/ipfs/bafkqaaa?format=car`, the probe, is a header).
 * - `dag-scope` defaults to `all` (spec). A CAR that is one block whatever the DAG (`block`, a
 *   raw CID, `entity` of non-dag-pb) is built in one buffer with its Content-Length (car-block.ts);
 *   any other, and any request with a path, resolves the path first (src/read/dag-path.ts: a
 *   missing root or name is a 404 before a byte is sent), then streams the walk
 *   (src/read/dag-walk.ts) through car-stream.ts. A block missing mid-stream cuts the response
 *   (spec: "SHOULD terminate the stream"): the client sees an incomplete CAR and an error.
 *   `entity-bytes` implies `entity`; a malformed value or an unknown scope → 400.
 * - Paths: raw and CAR requests alike (the spec names only CARs; the path gateway allows raw);
 *   a trailing `/` alone is no path. `X-Ipfs-Roots` lists the CID each segment ended in.
 * - 400 invalid CID (any multibase), 404 when no shard holds the block, 500 when every shard
 *   holding it failed (errored shard, vanished file: a storage failure, not unavailability),
 *   503 once the gateway or the store is closed, 405 for methods other than GET/HEAD/OPTIONS.
 * - `Cache-Control: only-if-cached` and a block no shard has → 412 (spec); otherwise served as usual.
 * - `If-None-Match` matching the ETag (weak comparison, `*` included) → 304, when the block exists.
 * - Headers: Content-Type, Content-Length (not on streamed CARs), ETag `"{cid}.raw"` /
 *   `"{cid}[.path-{hash}].car.v1.dfs.dups-n.{scope}[.bytes-{range}]"`
 *   (strong: the bytes are deterministic), `Cache-Control: public, max-age=29030400, immutable`,
 *   `Content-Disposition: attachment; filename="{cid}.bin|.car"` (or `?filename=`),
 *   `X-Content-Type-Options: nosniff`, `Vary: Accept`, `X-Ipfs-Path`, `X-Ipfs-Roots`, and
 *   `Content-Location: …?format=…` when the format came from `Accept` alone.
 * - `Range` is ignored (RFC 9110 allows it; blocks are small). Errors are JSON
 *   `{ "error": { "code", "message", "cause"? } }` with `Cache-Control: no-store`.
 *
 * Metrics: `dagstore_block_requests_total{status}` on the registry given (or a private one).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { Counter, Registry } from 'prom-client'
import { CID } from 'multiformats/cid'
import { bases } from 'multiformats/basics'
import type { MultibaseDecoder } from 'multiformats/bases/interface'
import type { DAGStore } from '../../engine/store.js'
import type { ShardKey } from '../../base/types.js'
import type { AllShardsBlockstore, AllShardsBlockstoreOptions } from '../../read/all-shards.js'
import { blockCarLength, encodeBlockCar } from './car-block.js'
import { HttpError, etagMatches } from './http-util.js'
import { CODE, httpStatusOf, type ErrorCode } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'
import { CAR_TYPE, RAW_TYPE, isSingleBlock, negotiate, type Variant } from './negotiate.js'
import { streamCar } from './car-stream.js'
import { resolvePath } from '../../read/dag-path.js'
import { dagWalk } from '../../read/dag-walk.js'
import type { GetBlock } from '../../read/dag-decode.js'
import { isProxied, ownerToAsk, ownerUnavailable, proxyToOwner, type OwnerProxyOptions } from './owner-proxy.js'

export interface GatewayOptions {
  /** Where `dagstore_block_requests_total{status}` is registered (reused if already there). */
  registry?: Registry
  /** Passed to `store.blockstore()` (accessor cache size and idle time). */
  blockstore?: AllShardsBlockstoreOptions
  /** A `dups=y` CAR is cut after this many repeated blocks (shared subtrees repeat exponentially). Default 1,000,000. */
  maxDuplicates?: number
  /** Timeouts of the hop to a block's owner node (a store in a cluster only). */
  proxy?: Omit<OwnerProxyOptions, 'node'>
}

export interface Gateway {
  /** Answers a request under /ipfs (or /ipfs/...); false, with nothing written, for any other path. */
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>
  /** Releases the blockstore (its cached accessors); later requests get 503. Idempotent. */
  close: () => Promise<void>
  /** Releases the gateway's cached accessor of one shard (it holds a reference: destroy needs it gone). */
  evict: (key: ShardKey) => Promise<void>
}

export const BLOCK_REQUESTS_METRIC = 'dagstore_block_requests_total'

/** Seconds a client is told to wait before asking again when a block's owner node is down. */
const OWNER_RETRY_AFTER = '5'
const IMMUTABLE = 'public, max-age=29030400, immutable'
const ALLOW = 'GET, HEAD, OPTIONS'
const CORS: Readonly<Record<string, string>> = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'Content-Length, Content-Type, ETag, X-Ipfs-Path, X-Ipfs-Roots, X-Content-Type-Options, Cache-Control'
}
const PREFLIGHT: Readonly<Record<string, string>> = {
  'access-control-allow-methods': ALLOW,
  'access-control-allow-headers': 'Accept, Range, If-None-Match, Cache-Control',
  'access-control-max-age': '86400'
}

// Every multibase multiformats knows: a CID may come in base36 (subdomain style), base16, …
const DECODERS = new Map<string, MultibaseDecoder<string>>(Object.values(bases).map((b) => [b.prefix, b.decoder as MultibaseDecoder<string>]))
const ANY_BASE: MultibaseDecoder<string> = {
  decode (text) {
    const prefix = String.fromCodePoint(text.codePointAt(0) ?? 0)
    const decoder = DECODERS.get(prefix)
    if (decoder === undefined) throw new Error(`unknown multibase prefix ${JSON.stringify(prefix)}`)
    return decoder.decode(text)
  }
}

export function createGateway (store: DAGStore, options: GatewayOptions = {}): Gateway {
  const node = store.node
  const proxy = node === undefined ? undefined : { ...options.proxy, node }
  const bs = store.blockstore(options.proxy === undefined ? options.blockstore : { ...options.blockstore, owners: options.proxy })
  return new TrustlessGateway(bs, options.registry ?? new Registry(), options.maxDuplicates, proxy)
}

function requestCounter (registry: Registry): Counter<'status'> {
  const existing = registry.getSingleMetric(BLOCK_REQUESTS_METRIC)
  if (existing instanceof Counter) return existing as Counter<'status'>
  return new Counter({
    name: BLOCK_REQUESTS_METRIC,
    help: 'Trustless-gateway requests (/ipfs/...), by HTTP status.',
    labelNames: ['status'],
    registers: [registry]
  })
}

/** /ipfs, /ipfs/…, /ipfs?… — and nothing else (not /ipfsx, not /ipns/…). */
function isGatewayPath (url: string): boolean {
  if (!url.startsWith('/ipfs')) return false
  const next = url.charCodeAt(5)
  return Number.isNaN(next) || next === 0x2f /* / */ || next === 0x3f /* ? */
}

class TrustlessGateway implements Gateway {
  readonly #bs: AllShardsBlockstore
  readonly #requests: Counter<'status'>
  // Resolved once per status: inc() on a child is a field update, inc(labels) hashes labels.
  readonly #children = new Map<number, { inc: () => void }>()
  readonly #get: GetBlock
  /** Blocks of a DAG past its root: those only another node can read are fetched from it one by one. */
  readonly #getAnywhere: GetBlock
  readonly #maxDuplicates: number | undefined
  readonly #proxy: OwnerProxyOptions | undefined
  #closed = false
  #closing: Promise<void> | undefined

  constructor (bs: AllShardsBlockstore, registry: Registry, maxDuplicates: number | undefined, proxy: OwnerProxyOptions | undefined) {
    this.#bs = bs
    this.#proxy = proxy
    this.#get = async (cid) => await bs.get(cid)
    this.#getAnywhere = async (cid) => await bs.getAnywhere(cid)
    this.#requests = requestCounter(registry)
    this.#maxDuplicates = maxDuplicates
  }

  async handle (req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = req.url ?? '/'
    if (!isGatewayPath(url)) return false
    // Gateway routes only (DESIGN §13): any page may read content-addressed data; admin routes never get CORS.
    for (const [name, value] of Object.entries(CORS)) res.setHeader(name, value)
    try {
      await this.#serve(req, res, url)
    } catch (err) {
      const where = res.headersSent || this.#proxy === undefined ? undefined : ownerToAsk(err)
      if (where === undefined) {
        this.#fail(req, res, err)
      } else if (isProxied(req)) {
        // The loop guard: a request another node sent here is answered here, never sent on.
        this.#fail(req, res, ownerUnavailable(where, 'and this request was proxied here already', err))
      } else {
        await proxyToOwner(req, res, where, this.#proxy as OwnerProxyOptions, (status) => { this.#count(status) })
          .catch((proxyErr: unknown) => { this.#fail(req, res, proxyErr) })
      }
    }
    return true
  }

  async evict (key: ShardKey): Promise<void> {
    await this.#bs.evict(key)
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#closing ??= this.#bs.close()
    await this.#closing
  }

  #count (status: number): void {
    let child = this.#children.get(status)
    if (child === undefined) {
      child = this.#requests.labels(String(status))
      this.#children.set(status, child)
    }
    child.inc()
  }

  #send (req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string>, body?: Uint8Array): void {
    this.#count(status)
    res.writeHead(status, headers)
    if (body === undefined || req.method === 'HEAD') res.end()
    else res.end(body)
  }

  async #serve (req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const method = req.method
    if (method !== 'GET' && method !== 'HEAD') {
      if (method === 'OPTIONS') {
        this.#send(req, res, 204, { allow: ALLOW, ...PREFLIGHT })
        return
      }
      throw new HttpError(CODE.ERR_METHOD_NOT_ALLOWED, `${String(method)} is not allowed: read-only gateway`, { headers: { allow: ALLOW } })
    }
    if (this.#closed) throw new HttpError(CODE.ERR_UNAVAILABLE, 'gateway closed')

    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    const rawQuery = q < 0 ? '' : url.slice(q + 1)
    const query = rawQuery === '' ? undefined : new URLSearchParams(rawQuery)
    const rest = path.length > 6 ? path.slice(6) : '' // after "/ipfs/"
    const slash = rest.indexOf('/')
    const cidText = slash < 0 ? rest : rest.slice(0, slash)
    const cid = parseCid(cidText)
    const segments = slash < 0 ? [] : parseSegments(rest.slice(slash + 1))

    const variant = negotiate(req.headers.accept, query)
    const cidString = cid.toString()
    const headers: Record<string, string> = {
      'cache-control': IMMUTABLE,
      vary: 'Accept',
      'x-ipfs-path': segments.length === 0 ? `/ipfs/${cidText}` : path,
      'x-ipfs-roots': cidString,
      'x-content-type-options': 'nosniff'
    }
    if (variant.fromAccept) headers['content-location'] = `${path}?${rawQuery === '' ? '' : rawQuery + '&'}format=${variant.format}`
    const filename = query?.get('filename') ?? undefined

    if (segments.length > 0 || (variant.format === 'car' && !isSingleBlock(cid, variant))) {
      await this.#serveDag(req, res, cid, segments, variant, headers, filename)
      return
    }

    const raw = variant.format === 'raw'
    const etag = raw ? `"${cidString}.raw"` : `"${carEtagName(cidString, variant)}"`
    headers.etag = etag
    const ifNoneMatch = req.headers['if-none-match']
    if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag) && await this.#bs.has(cid)) {
      this.#send(req, res, 304, headers)
      return
    }
    if (onlyIfCached(req) && !(await this.#bs.has(cid))) {
      throw new HttpError(CODE.ERR_NOT_CACHED, `${cidString} is not in this gateway's shards (only-if-cached)`)
    }

    headers['content-type'] = raw ? RAW_TYPE : carType(variant)
    headers['content-disposition'] = disposition(filename ?? `${cidString}.${raw ? 'bin' : 'car'}`)
    if (method === 'HEAD') {
      // The size comes from the index and section header: a HEAD reads no block.
      const size = await this.#bs.getSize(cid)
      headers['content-length'] = String(raw ? size : blockCarLength(cid, size))
      this.#send(req, res, 200, headers)
      return
    }
    const block = await this.#bs.get(cid)
    const body = raw ? block : encodeBlockCar(cid, block)
    headers['content-length'] = String(body.byteLength)
    this.#send(req, res, 200, headers, body)
  }

  /**
   * A content path (raw block or CAR) or a CAR of more than one block: the path is resolved
   * (its blocks read) before the status is sent, so a missing root or path is a 404; the CAR
   * is then streamed, and a block missing from there on cuts the response (spec: the stream is
   * terminated, the client sees an incomplete CAR).
   */
  async #serveDag (req: IncomingMessage, res: ServerResponse, cid: CID, segments: string[], variant: Variant,
    headers: Record<string, string>, filename: string | undefined): Promise<void> {
    const cidString = cid.toString()
    if (onlyIfCached(req) && !(await this.#bs.has(cid))) {
      throw new HttpError(CODE.ERR_NOT_CACHED, `${cidString} is not in this gateway's shards (only-if-cached)`)
    }
    // A root only another node can read sends the whole request there (one hop, handle()); the
    // blocks below it are gathered from whichever node holds each.
    const get: GetBlock = async (c) => await (c.equals(cid) ? this.#get(c) : this.#getAnywhere(c))
    const resolved = await resolvePath(get, cid, segments)
    headers['x-ipfs-roots'] = resolved.roots.map(String).join(',')
    const raw = variant.format === 'raw'
    const etag = raw
      ? `"${resolved.terminal.cid.toString()}.raw"`
      : `"${carEtagName(cidString + pathTag(segments), variant)}"`
    headers.etag = etag
    const ifNoneMatch = req.headers['if-none-match']
    if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag)) {
      this.#send(req, res, 304, headers)
      return
    }
    if (raw) {
      const bytes = resolved.terminal.bytes
      headers['content-type'] = RAW_TYPE
      headers['content-disposition'] = disposition(filename ?? `${resolved.terminal.cid.toString()}.bin`)
      headers['content-length'] = String(bytes.byteLength)
      this.#send(req, res, 200, headers, bytes)
      return
    }
    const abort = new AbortController()
    // Checked before a byte is sent: a terminal of a codec the walk cannot decode is a 501 here.
    const blocks = dagWalk(get, resolved, {
      scope: variant.scope,
      entityBytes: variant.entityBytes?.range,
      dups: variant.dups === 'y',
      maxDuplicates: this.#maxDuplicates,
      signal: abort.signal
    })
    headers['content-type'] = carType(variant)
    headers['content-disposition'] = disposition(filename ?? `${cidString}.car`)
    if (req.method === 'HEAD') {
      this.#send(req, res, 200, headers)
      return
    }
    this.#count(200)
    res.writeHead(200, headers)
    const onClose = (): void => { if (!res.writableFinished) abort.abort() }
    res.on('close', onClose)
    try {
      await streamCar(res, [cid], blocks, abort.signal)
    } catch (err) {
      // The status is out: all that is left is to cut the stream so the client sees it incomplete.
      res.destroy(toHttpError(err))
    } finally {
      res.off('close', onClose)
    }
  }

  #fail (req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = toHttpError(err)
    if (res.headersSent) {
      // Nothing sensible can follow a status already sent: cut the connection.
      this.#count(e.status)
      res.destroy(e)
      return
    }
    const error: { code: string, message: string, cause?: { code?: string, message: string } } = { code: e.code, message: e.message }
    if (e.cause instanceof Error) {
      error.cause = { message: e.cause.message }
      const code = codeOf(e.cause)
      if (code !== undefined) error.cause.code = code
    }
    const body = Buffer.from(JSON.stringify({ error }), 'utf8')
    this.#send(req, res, e.status, {
      ...e.headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(body.byteLength),
      'cache-control': 'no-store',
      vary: 'Accept',
      'x-content-type-options': 'nosniff'
    }, body)
  }
}

function parseCid (text: string): CID {
  if (text === '') throw new HttpError(CODE.ERR_INVALID_CID, 'missing CID: /ipfs/{cid}')
  let s = text
  try {
    if (s.includes('%')) s = decodeURIComponent(s)
    return CID.parse(s, ANY_BASE)
  } catch (err) {
    throw new HttpError(CODE.ERR_INVALID_CID, `invalid CID ${JSON.stringify(s.length > 200 ? s.slice(0, 200) + '…' : s)}: ${(err as Error).message}`)
  }
}

function carEtagName (name: string, v: Variant): string {
  return `${name}.car.v1.dfs.dups-${v.dups}.${v.scope}${v.entityBytes !== undefined ? `.bytes-${v.entityBytes.text}` : ''}`
}

function carType (v: Variant): string {
  return `${CAR_TYPE}; version=1; order=dfs; dups=${v.dups}`
}

function onlyIfCached (req: IncomingMessage): boolean {
  return /\bonly-if-cached\b/i.test(req.headers['cache-control'] ?? '')
}

/** The path's segments, percent-decoded; empty ones (a trailing or doubled slash) are no segment. */
function parseSegments (text: string): string[] {
  const out: string[] = []
  for (const part of text.split('/')) {
    if (part === '') continue
    try {
      out.push(decodeURIComponent(part))
    } catch {
      throw new HttpError(CODE.ERR_INVALID_PATH, `path segment ${JSON.stringify(part.slice(0, 200))} is not valid percent-encoding`)
    }
  }
  return out
}

/** A path's part of a CAR ETag: a short hash (an ETag may not hold every character a path can). */
function pathTag (segments: string[]): string {
  if (segments.length === 0) return ''
  return '.path-' + createHash('sha256').update(segments.join('/')).digest('hex').slice(0, 16)
}

/** attachment, with an ASCII filename and, when it is not plain ASCII, its UTF-8 form (RFC 8187). */
function disposition (name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_')
  if (ascii === name) return `attachment; filename="${name}"`
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}

/** A holder destroyed between the index lookup and the acquire, or being drained for a destroy: the block is simply gone. */
function isGone (err: unknown): boolean {
  const code = codeOf(err)
  return code === CODE.ERR_SHARD_UNKNOWN || code === CODE.ERR_SHARD_DRAINING
}

function onlyGone (cause: unknown): boolean {
  if (cause instanceof AggregateError) return cause.errors.every(isGone)
  return isGone(cause)
}

// What the DAG reader (src/read) throws about the data itself: answered with its code's status.
const DAG_CODES = new Set<string | undefined>([CODE.ERR_PATH_NOT_FOUND, CODE.ERR_NOT_IMPLEMENTED, CODE.ERR_BLOCK_UNDECODABLE, CODE.ERR_DUPS_LIMIT])

function toHttpError (err: unknown): HttpError {
  if (err instanceof HttpError) return err
  const message = err instanceof Error ? err.message : String(err)
  const code = codeOf(err)
  if (DAG_CODES.has(code)) return new HttpError(code as ErrorCode, message, { cause: (err as Error).cause })
  if (codeOf(err) === CODE.ERR_NOT_FOUND) {
    const cause = (err as Error).cause
    if (cause === undefined || onlyGone(cause)) return new HttpError(CODE.ERR_NOT_FOUND, message)
    return new HttpError(CODE.ERR_BLOCK_UNAVAILABLE, `every shard holding the block failed: ${message}`, { cause })
  }
  if (code === CODE.ERR_OWNER_UNAVAILABLE) {
    return new HttpError(CODE.ERR_OWNER_UNAVAILABLE, message, { headers: { 'retry-after': OWNER_RETRY_AFTER }, cause: (err as Error).cause })
  }
  // A closed store or blockstore: worth retrying later or elsewhere, whichever store code it was.
  if (httpStatusOf(err) === 503) {
    return new HttpError(CODE.ERR_UNAVAILABLE, message, { headers: { 'retry-after': '5' }, cause: err })
  }
  return new HttpError(CODE.ERR_INTERNAL, message, { cause: err })
}
