/**
 * The admin JSON API: shards (list, describe, register, destroy, recover), gc, find, events, status.
 * Routing only: index.ts authenticates before any handler here runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CID } from 'multiformats/cid'
import { bases } from 'multiformats/basics'
import type { DAGStore } from '../../engine/store.js'
import type { MountRegistry } from '../../storage/mount/registry.js'
import type { Mount } from '../../base/mount-types.js'
import { COPY_POLICIES, type CopyPolicy, type RegisterOpts, type ShardKey, type ShardResult } from '../../base/types.js'
import { InvalidMountError } from '../../base/errors.js'
import { validateKey } from '../../base/keys.js'
import { redactUrl } from '../../base/redact.js'
import { HttpError, readJson, sendJson } from './http-util.js'
import { CODE } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'
import { localFile, type AllowRoots } from './allow-roots.js'
import { streamTraces } from './sse.js'
import type { StatusJson } from './status.js'
import { listQuery } from './list-query.js'
import { gatherPage } from './list-page.js'
import { encodeCursor } from '../cursor.js'
import { unregistrable } from '../mount-policy.js'
import {
  errorJson, nodesJson, shardJson, verifyJson,
  type AdoptedJson, type NodesJson, type DestroyedJson, type FindJson, type GcJson, type ShardJson, type ShardListJson
} from '../wire.js'

export interface AdminOptions {
  mounts: MountRegistry
  allowRoots: AllowRoots
  /**
   * file: registrations are accepted outside the allow-roots: the server listens on loopback
   * only and every admin request carries the repo's token, so whoever registers is the
   * machine's user who can read the token file (DESIGN §13, local files through a loopback server).
   */
  localFiles: boolean
  maxBodyBytes: number
  heartbeatMs: number
  closing: AbortSignal
  onError: (err: unknown, context: string) => void
  /** Called before a destroy: drops references the server itself holds (the gateway's cached accessor). */
  release: (key: string) => Promise<void>
  /** GET /status: the status page's counts, transients and rates. */
  status: () => Promise<StatusJson>
}

/** `param` is the path segment the route's pattern captures ('' for routes without one). */
type Handler = (req: IncomingMessage, res: ServerResponse, param: string) => Promise<void>

interface Route {
  pattern: RegExp
  methods: Record<string, Handler>
  /** HEAD is answered like GET (node drops the body) except where a GET holds something open. */
  noHead?: boolean
}

/** What route() found: a handler to run, or a path that exists with other methods. */
export type RouteMatch = { run: (req: IncomingMessage, res: ServerResponse) => Promise<void> } | { allow: string[] }

// A describeShard costs a stat or two; a page runs this many at once.
const DESCRIBE_CONCURRENCY = 32

export class AdminApi {
  private readonly store: DAGStore
  private readonly options: AdminOptions
  private readonly routes: Route[]

  constructor (store: DAGStore, options: AdminOptions) {
    this.store = store
    this.options = options
    // Matched on the raw path: keys are one percent-encoded segment (a '/' in a key is %2F).
    this.routes = [
      { pattern: /^\/shards$/, methods: { GET: this.list, POST: this.register } },
      { pattern: /^\/shards\/([^/]+)$/, methods: { GET: this.describe, DELETE: this.destroy } },
      { pattern: /^\/shards\/([^/]+)\/recover$/, methods: { POST: this.recover } },
      { pattern: /^\/shards\/([^/]+)\/verify$/, methods: { POST: this.verify } },
      { pattern: /^\/gc$/, methods: { POST: this.gc } },
      { pattern: /^\/find\/([^/]+)$/, methods: { GET: this.find } },
      { pattern: /^\/events$/, methods: { GET: this.events }, noHead: true },
      { pattern: /^\/status$/, methods: { GET: this.status } },
      { pattern: /^\/nodes$/, methods: { GET: this.nodes } },
      { pattern: /^\/adopt$/, methods: { POST: this.adopt } }
    ]
  }

  /** undefined when `path` is no admin route (the gateway or a 404 gets it). */
  route (method: string, path: string): RouteMatch | undefined {
    for (const r of this.routes) {
      const m = r.pattern.exec(path)
      if (m === null) continue
      const handler = r.methods[method] ?? (method === 'HEAD' && r.noHead !== true ? r.methods.GET : undefined)
      if (handler === undefined) {
        const allow = Object.keys(r.methods)
        if (allow.includes('GET') && r.noHead !== true) allow.push('HEAD')
        return { allow }
      }
      const param = m[1] ?? ''
      return { run: async (req, res) => { await handler.call(this, req, res, param) } }
    }
    return undefined
  }

  /** One page (listQuery): the keys come in order from the store's shard table, then each is described. */
  private async list (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { node, ...query } = listQuery(req)
    if (this.store.node !== undefined) {
      // A clustered store lists every node's shards, from the database.
      const page = await this.store.listClusterShards({ ...query, node })
      const body: ShardListJson = { shards: page.shards.map(shardJson) }
      if (page.next !== undefined) body.next = encodeCursor(page.next)
      sendJson(res, 200, body)
      return
    }
    if (node !== undefined) throw new HttpError(CODE.ERR_NOT_CLUSTERED, 'node= filters a cluster\'s listing: this store has no shared database')
    const page = await gatherPage(this.store, query)
    const keys = page.shards.map((s) => s.key)
    const found: Array<ShardJson | undefined> = new Array(keys.length)
    // The workers share one iterator: each key goes to the first free worker.
    const pending = keys.entries()
    const worker = async (): Promise<void> => {
      for (const [i, key] of pending) {
        // A shard destroyed since the page was taken is simply not listed.
        found[i] = await this.store.describeShard(key).then(shardJson, (err: unknown) => {
          if (codeOf(err) === CODE.ERR_SHARD_UNKNOWN) return undefined
          throw err
        })
      }
    }
    await Promise.all(Array.from({ length: Math.min(DESCRIBE_CONCURRENCY, keys.length) }, worker))
    const body: ShardListJson = { shards: found.filter((s) => s !== undefined) }
    if (page.next !== undefined) body.next = encodeCursor(page.next)
    sendJson(res, 200, body)
  }

  private async describe (_req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const key = keyParam(raw)
    sendJson(res, 200, shardJson(await this.store.describeShard(key)))
  }

  private async register (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, res, this.options.maxBodyBytes)
    const { key, url, opts } = registerRequest(body)
    validateKey(key)
    const mount = await this.mountFor(url)
    // Eager registration answers once indexed, which may outlast the idle timeout: nothing is written meanwhile.
    req.socket.setTimeout(0)
    const result = await new Promise<ShardResult>((resolve) => {
      // Not tied to the connection: a client that gives up leaves the registration running (it shows in GET /shards).
      this.store.registerShard(key, mount, resolve, opts)
    })
    if (result.error !== undefined) throw result.error
    sendJson(res, 201, shardJson(await this.store.describeShard(key)))
  }

  private async mountFor (raw: string): Promise<Mount> {
    let url: URL
    try {
      url = new URL(raw)
    } catch (err) {
      throw new InvalidMountError(`invalid mount URL: ${redactUrl(raw)}`, { cause: err })
    }
    const refused = unregistrable(url)
    if (refused !== undefined) throw new HttpError(CODE.ERR_MOUNT_SCHEME_NOT_ALLOWED, refused)
    if (url.protocol === 'file:') url = this.options.localFiles ? await localFile(url) : await this.options.allowRoots.check(raw, url)
    return this.options.mounts.instantiate(url)
  }

  private async destroy (req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const key = keyParam(raw)
    if (!flagParam(req, 'drain')) {
      // Recent block requests leave the gateway holding the shard: that reference is ours to drop.
      await this.options.release(key)
      await this.store.destroy(key)
      sendJson(res, 200, { key, destroyed: true } satisfies DestroyedJson)
      return
    }
    // A drain lasts as long as the shard's readers do; a client that gives up (or a server that
    // closes) ends it, and the shard serves again.
    req.socket.setTimeout(0)
    const gaveUp = new AbortController()
    const onClose = (): void => { if (!res.writableEnded) gaveUp.abort() }
    res.once('close', onClose)
    try {
      // The destroy goes in first, so every acquire after it is refused; only then is the
      // gateway's cached accessor, which the drain waits for, dropped: nothing caches it again.
      const destroyed = this.store.destroy(key, { drain: true, signal: AbortSignal.any([gaveUp.signal, this.options.closing]) })
      destroyed.catch(() => {})
      await this.options.release(key)
      await destroyed
    } catch (err) {
      // The client left: nobody to answer, nothing went wrong.
      if (gaveUp.signal.aborted) return
      if (this.options.closing.aborted) {
        throw new HttpError(CODE.ERR_SERVER_CLOSING, 'the server is shutting down: the drain was abandoned and the shard kept', { cause: err })
      }
      throw err
    } finally {
      res.off('close', onClose)
    }
    sendJson(res, 200, { key, destroyed: true } satisfies DestroyedJson)
  }

  private async recover (req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const key = keyParam(raw)
    req.socket.setTimeout(0)
    await this.store.recover(key)
    sendJson(res, 200, shardJson(await this.store.describeShard(key)))
  }

  /** Re-reads the whole shard: as long as that takes, and a client that leaves stops it. */
  private async verify (req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const key = keyParam(raw)
    const repair = flagParam(req, 'repair')
    req.socket.setTimeout(0)
    const gaveUp = new AbortController()
    const onClose = (): void => { if (!res.writableEnded) gaveUp.abort() }
    res.once('close', onClose)
    try {
      const report = await this.store.verifyShard(key, { repair, signal: AbortSignal.any([gaveUp.signal, this.options.closing]) })
      sendJson(res, 200, verifyJson(report))
    } catch (err) {
      if (gaveUp.signal.aborted) return
      throw err
    } finally {
      res.off('close', onClose)
    }
  }

  private async gc (_req: IncomingMessage, res: ServerResponse): Promise<void> {
    const result = await this.store.gc()
    // fromEntries defines own properties, so a key like "__proto__" stays a plain entry.
    const shards = Object.fromEntries([...result.shards].map(([key, err]) => [key, err === null ? null : errorJson(err)]))
    sendJson(res, 200, { reclaimedBytes: result.reclaimedBytes, shards } satisfies GcJson)
  }

  private async find (_req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const text = decodeParam(raw)
    let cid: CID
    try {
      cid = parseCid(text)
    } catch (err) {
      throw new HttpError(CODE.ERR_INVALID_CID, `not a CID: ${text}`, { cause: err })
    }
    const shards = await this.store.shardsContainingCid(cid)
    sendJson(res, 200, { cid: cid.toString(), shards } satisfies FindJson)
  }

  private async status (_req: IncomingMessage, res: ServerResponse): Promise<void> {
    sendJson(res, 200, await this.options.status())
  }

  private async nodes (_req: IncomingMessage, res: ServerResponse): Promise<void> {
    sendJson(res, 200, nodesJson(await this.store.nodes()) satisfies NodesJson)
  }

  /** Done by the running node itself, so the adopted shards enter its loop and are served at once. */
  private async adopt (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const from = new URL(req.url ?? '/', 'http://admin.invalid').searchParams.get('from')
    if (from === null || from === '') throw new HttpError(CODE.ERR_INVALID_REQUEST, 'adopt needs ?from=<node>')
    const shards = await this.store.adopt(from)
    sendJson(res, 200, { from, node: this.store.node as string, shards } satisfies AdoptedJson)
  }

  private async events (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { heartbeatMs, closing, onError } = this.options
    await streamTraces(this.store, req, res, { heartbeatMs, closing, onError })
  }
}

const BASES = Object.values(bases)

/** A CID in any multibase multiformats knows (CID.parse alone takes base32, base36 and base58btc). */
function parseCid (text: string): CID {
  // A CIDv0 is bare base58btc, whose first character 'Q' is no multibase prefix.
  if (text.startsWith('Qm')) return CID.parse(text)
  const base = BASES.find((b) => b.prefix === text[0])
  return base === undefined ? CID.parse(text) : CID.parse(text, base)
}

function decodeParam (raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new HttpError(CODE.ERR_INVALID_REQUEST, 'malformed percent-encoding in path')
  }
}

function keyParam (raw: string): ShardKey {
  const key = decodeParam(raw)
  validateKey(key)
  return key
}

const REGISTER_FIELDS = new Set(['key', 'url', 'lazy', 'copy'])

function registerRequest (body: unknown): { key: string, url: string, opts: RegisterOpts } {
  const bad = (message: string): HttpError => new HttpError(CODE.ERR_INVALID_REQUEST, message)
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body must be a JSON object { key, url, lazy? }')
  const b = body as Record<string, unknown>
  // A misspelt option (e.g. "Lazy") would otherwise be ignored silently.
  for (const field of Object.keys(b)) if (!REGISTER_FIELDS.has(field)) throw bad(`unknown field ${JSON.stringify(field)}`)
  if (typeof b.key !== 'string') throw bad('key must be a string')
  if (typeof b.url !== 'string') throw bad('url must be a string')
  if (b.lazy !== undefined && typeof b.lazy !== 'boolean') throw bad('lazy must be a boolean')
  const opts: RegisterOpts = { lazy: b.lazy === true }
  if (b.copy !== undefined) {
    if (!COPY_POLICIES.includes(b.copy as CopyPolicy)) throw bad("copy must be 'auto', 'always' or 'never'")
    opts.copy = b.copy as CopyPolicy
  }
  return { key: b.key, url: b.url, opts }
}

/**
 * A yes/no query parameter (`?drain`: destroy once the shard's accessors close; `?repair`):
 * absent, `0` or `false` is no; present and empty, `1` or `true` is yes.
 */
function flagParam (req: IncomingMessage, name: string): boolean {
  const value = new URL(req.url ?? '/', 'http://admin.invalid').searchParams.get(name)
  if (value === null || value === '0' || value === 'false') return false
  if (value === '' || value === '1' || value === 'true') return true
  throw new HttpError(CODE.ERR_INVALID_REQUEST, `${name} must be 1, true, 0 or false, not ${JSON.stringify(value)}`)
}
