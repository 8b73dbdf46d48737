/**
 * What a CLI command talks to: the store itself (direct mode, nobody serving the repo) or a
 * running `serve` through its admin API (client mode). Both answer in the admin API's JSON
 * shapes, so outputs do not depend on the mode.
 */
import type { CID } from 'multiformats/cid'
import { CODE, HTTP_STATUS_CODES } from '../../base/errors/codes.js'
import { DAGStore } from '../../engine/store.js'
import type { VerifyHashes } from '../../base/index-types.js'
import { MountRegistry } from '../../storage/mount/registry.js'
// One JSON shape in both modes: direct mode answers exactly as the admin API does.
import {
  shardJson, verifyJson, nodesJson, type AdoptedJson, type NodesJson,
  type ErrorJson, type FindJson, type GcJson, type ShardJson, type ShardListJson, type VerifyJson
} from '../wire.js'
import { CliError, UsageError, errorJson, isLevelLocked } from './errors.js'
import { NotClusteredError } from '../../base/errors.js'
import { decodeCursor, encodeCursor } from '../cursor.js'
import { observedMount, type ReadProgress } from '../../storage/mount/observed.js'
import type { CopyPolicy, ShardState } from '../../base/types.js'
import { probeServer, readRepoToken, type LiveServeFile, type ServerProbe } from './repo.js'

/** How to register: the POST /shards fields besides key and url. */
export interface RegisterJson { lazy: boolean, copy?: CopyPolicy }

export interface Backend {
  readonly mode: 'direct' | 'server'
  /** The server's URL in client mode. */
  readonly url?: string
  /** Every shard, in key order (all pages). */
  list: () => Promise<ShardJson[]>
  /** One page of a listing, as GET /shards answers it (`next`: the following page's cursor). */
  page: (query: PageQuery) => Promise<ShardListJson>
  /** Keys and states of the shards this store owns (in a cluster, not the other nodes'). */
  states: () => Promise<Array<{ key: string, state: string }>>
  info: (key: string) => Promise<ShardJson>
  /**
   * `url`: file:, http: or https:. `progress` hears how far the store has read the CAR: as it
   * reads in direct mode; through a server, from the shard's `progress` polled meanwhile.
   */
  register: (key: string, url: string, opts: RegisterJson, progress?: ReadProgress) => Promise<ShardJson>
  /** `drain`: a shard in use is destroyed once its accessors close, not refused. */
  destroy: (key: string, drain: boolean) => Promise<void>
  recover: (key: string) => Promise<ShardJson>
  /** Re-reads the shard, hashing every block; `repair` rewrites indices that disagree with sound data. */
  verify: (key: string, repair: boolean) => Promise<VerifyJson>
  gc: () => Promise<GcJson>
  find: (cid: CID) => Promise<string[]>
  get: (cid: CID) => Promise<Uint8Array>
  /** The cluster's nodes (ERR_NOT_CLUSTERED for a store without a shared database). */
  nodes: () => Promise<NodesJson>
  /** Takes over a dead node's http-mounted shards (ERR_NODE_ALIVE while it is alive). */
  adopt: (from: string) => Promise<AdoptedJson>
  close: () => Promise<void>
}

/** GET /shards's query; `cursor` as a page's `next` handed it out; `node` (the owner) in a cluster only. */
export interface PageQuery {
  limit: number
  cursor?: string | undefined
  state?: ShardState | undefined
  prefix?: string | undefined
  node?: string | undefined
}

/** The largest page GET /shards answers (list-query.ts): what a walk over every page asks for. */
const WALK_PAGE = 1000

/** Every page from the first: one listing however many shards there are (`node`: only that node's, in a cluster). */
async function allPages (backend: Backend, node?: string): Promise<ShardJson[]> {
  const out: ShardJson[] = []
  let cursor: string | undefined
  do {
    const page = await backend.page({ limit: WALK_PAGE, cursor, node })
    out.push(...page.shards)
    cursor = page.next
  } while (cursor !== undefined)
  return out
}

const byKey = (a: { key: string }, b: { key: string }): number => a.key < b.key ? -1 : a.key > b.key ? 1 : 0

class DirectBackend implements Backend {
  readonly mode = 'direct'
  private readonly store: DAGStore
  private readonly mounts = new MountRegistry()

  private constructor (store: DAGStore) {
    this.store = store
  }

  static async open (dir: string, onError: (err: unknown, context: string) => void, verifyHashes: VerifyHashes): Promise<DirectBackend> {
    const store = new DAGStore({ dir, onError, verifyHashes })
    await store.start()
    return new DirectBackend(store)
  }

  async list (): Promise<ShardJson[]> {
    return await allPages(this)
  }

  async page (query: PageQuery): Promise<ShardListJson> {
    if (query.node !== undefined) {
      throw new NotClusteredError('--node filters a cluster\'s listing: this repo has no shared database (ls --db <url> reads one)')
    }
    const page = this.store.listShards({
      limit: query.limit,
      ...(query.cursor === undefined ? {} : { after: decodeCursor(query.cursor) }),
      ...(query.state === undefined ? {} : { state: query.state }),
      ...(query.prefix === undefined ? {} : { prefix: query.prefix })
    })
    const out: ShardListJson = { shards: [] }
    for (const { key } of page.shards) out.shards.push(shardJson(await this.store.describeShard(key)))
    if (page.next !== undefined) out.next = encodeCursor(page.next)
    return out
  }

  async states (): Promise<Array<{ key: string, state: string }>> {
    return [...this.store.allShardsInfo()].map(([key, info]) => ({ key, state: info.state })).sort(byKey)
  }

  async info (key: string): Promise<ShardJson> {
    return shardJson(await this.store.describeShard(key))
  }

  async register (key: string, url: string, opts: RegisterJson, progress?: ReadProgress): Promise<ShardJson> {
    const mount = this.mounts.instantiate(url)
    await this.store.register(key, progress === undefined ? mount : observedMount(mount, progress), opts)
    return await this.info(key)
  }

  async destroy (key: string, drain: boolean): Promise<void> {
    await this.store.destroy(key, { drain })
  }

  async nodes (): Promise<NodesJson> {
    return nodesJson(await this.store.nodes())
  }

  async adopt (from: string): Promise<AdoptedJson> {
    const shards = await this.store.adopt(from)
    return { from, node: this.store.node as string, shards }
  }

  async recover (key: string): Promise<ShardJson> {
    await this.store.recover(key)
    return await this.info(key)
  }

  async verify (key: string, repair: boolean): Promise<VerifyJson> {
    return verifyJson(await this.store.verifyShard(key, { repair }))
  }

  async gc (): Promise<GcJson> {
    const res = await this.store.gc()
    const shards: Record<string, ErrorJson | null> = {}
    for (const [key, err] of [...res.shards].sort((a, b) => byKey({ key: a[0] }, { key: b[0] }))) shards[key] = err === null ? null : errorJson(err)
    return { reclaimedBytes: res.reclaimedBytes, shards }
  }

  async find (cid: CID): Promise<string[]> {
    return (await this.store.shardsContainingCid(cid)).sort()
  }

  async get (cid: CID): Promise<Uint8Array> {
    const bs = this.store.blockstore({ ttlMs: 0 })
    try {
      return await bs.get(cid)
    } finally {
      await bs.close()
    }
  }

  async close (): Promise<void> {
    await this.store.close()
  }
}

/** The admin API (see src/server): bearer token, errors as `{ error: { code, message } }`. */
class ClientBackend implements Backend {
  readonly mode = 'server'
  readonly url: string
  private readonly token: string | undefined

  constructor (url: string, token: string | undefined) {
    this.url = url
    this.token = token
  }

  private async request (method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {}
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(new URL(path, this.url), { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: signal ?? null })
    } catch (err) {
      throw new CliError(CODE.ERR_SERVER_UNREACHABLE, `the server of this repo (${this.url}) did not answer ${method} ${path}`, { cause: err })
    }
    if (!res.ok) throw await apiError(res, method, path)
    return res
  }

  private async json<T> (method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.request(method, path, body, signal)
    return await res.json() as T
  }

  async list (): Promise<ShardJson[]> {
    return await allPages(this)
  }

  async page (query: PageQuery): Promise<ShardListJson> {
    const params = new URLSearchParams({ limit: String(query.limit) })
    if (query.cursor !== undefined) params.set('cursor', query.cursor)
    if (query.state !== undefined) params.set('state', query.state)
    if (query.prefix !== undefined && query.prefix !== '') params.set('prefix', query.prefix)
    if (query.node !== undefined) params.set('node', query.node)
    return await this.json<ShardListJson>('GET', `/shards?${params.toString()}`)
  }

  /** The server's shards only: a clustered server lists every node's, and commands act on its own. */
  async states (): Promise<Array<{ key: string, state: string }>> {
    const { node } = await this.json<{ node?: string }>('GET', '/status')
    return await allPages(this, node)
  }

  async info (key: string): Promise<ShardJson> {
    return await this.json<ShardJson>('GET', `/shards/${encodeURIComponent(key)}`)
  }

  async register (key: string, url: string, opts: RegisterJson, progress?: ReadProgress): Promise<ShardJson> {
    // The server reads the CAR while the POST waits: its progress is polled meanwhile.
    const polling = new AbortController()
    const polled = progress === undefined || opts.lazy ? undefined : this.pollProgress(key, progress, polling.signal)
    try {
      return await this.json<ShardJson>('POST', '/shards', { key, url, ...opts })
    } catch (err) {
      if (err instanceof CliError && err.status === 403 && url.startsWith('file:')) {
        throw new CliError(err.code, err.message, {
          status: 403,
          hint: 'the server only registers files below its --allow-root folders: restart serve with --allow-root <dir>',
          cause: err.cause
        })
      }
      throw err
    } finally {
      polling.abort()
      await polled
    }
  }

  /** Passes on the shard's `progress` (GET /shards/{key}) every PROGRESS_POLL_MS until `stop`. */
  private async pollProgress (key: string, report: ReadProgress, stop: AbortSignal): Promise<void> {
    const path = `/shards/${encodeURIComponent(key)}`
    while (await pause(PROGRESS_POLL_MS, stop)) {
      try {
        const shard = await this.json<ShardJson>('GET', path, undefined, stop)
        if (shard.progress !== undefined) report(shard.progress.bytes, shard.progress.size)
      } catch {
        // Not registered yet, or the poll was cut short: the POST's answer says how it went.
      }
    }
  }

  async destroy (key: string, drain: boolean): Promise<void> {
    await this.json('DELETE', `/shards/${encodeURIComponent(key)}${drain ? '?drain=1' : ''}`)
  }

  async recover (key: string): Promise<ShardJson> {
    return await this.json<ShardJson>('POST', `/shards/${encodeURIComponent(key)}/recover`)
  }

  async verify (key: string, repair: boolean): Promise<VerifyJson> {
    return await this.json<VerifyJson>('POST', `/shards/${encodeURIComponent(key)}/verify${repair ? '?repair=1' : ''}`)
  }

  async gc (): Promise<GcJson> {
    return await this.json<GcJson>('POST', '/gc')
  }

  async nodes (): Promise<NodesJson> {
    return await this.json<NodesJson>('GET', '/nodes')
  }

  async adopt (from: string): Promise<AdoptedJson> {
    return await this.json<AdoptedJson>('POST', `/adopt?from=${encodeURIComponent(from)}`)
  }

  async find (cid: CID): Promise<string[]> {
    return (await this.json<FindJson>('GET', `/find/${cid.toString()}`)).shards.sort()
  }

  async get (cid: CID): Promise<Uint8Array> {
    const res = await this.request('GET', `/ipfs/${cid.toString()}?format=raw`)
    return new Uint8Array(await res.arrayBuffer())
  }

  async close (): Promise<void> {}
}

async function apiError (res: Response, method: string, path: string): Promise<CliError> {
  const text = await res.text().catch(() => '')
  let code = `${HTTP_STATUS_CODES.prefix}${res.status}`
  let message = `${method} ${path}: HTTP ${res.status}`
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown, message?: unknown } }
    if (typeof body.error?.code === 'string') code = body.error.code
    if (typeof body.error?.message === 'string') message = body.error.message
  } catch {
    // Not the API's JSON (a proxy, a plain-text 404): the status line is all there is.
    if (res.status === 404 && path.startsWith('/ipfs/')) code = CODE.ERR_NOT_FOUND
  }
  const hint = res.status === 401
    ? 'the server wants the repo token: run the CLI as a user who can read <dir>/token, or set DAGSTORE_TOKEN'
    : undefined
  return new CliError(code, message, { status: res.status, hint })
}

export interface OpenOptions {
  dir: string
  /** DAGSTORE_TOKEN: the admin token when the repo's own cannot be read or the server was given one. */
  envToken: string | undefined
  onError: (err: unknown, context: string) => void
  /** Told which way the command goes (for --verbose). */
  log?: ((line: string) => void) | undefined
  /** How long to wait for a serve that is starting (opening a big repo takes a while). */
  startWaitMs?: number
  /**
   * --verify-hashes: the verifyHashes of a store opened here (default 'remote'). A running
   * server indexes with its own setting, so asking for one through it is a usage error.
   */
  verifyHashes?: VerifyHashes
}

async function clientFor (file: LiveServeFile, options: OpenOptions): Promise<ClientBackend> {
  const { dir, log } = options
  if (options.verifyHashes !== undefined) {
    throw new UsageError(`--verify-hashes applies when a command opens the repo itself, but serve (pid ${file.pid}) has it open and indexes with its own setting`,
      'drop --verify-hashes, or stop the server and run the command again (serve --verify-hashes sets the server\'s)')
  }
  log?.(`using the server at ${file.url} (pid ${file.pid})`)
  const env = options.envToken === '' ? undefined : options.envToken
  // serve.json says which token is in force: the repo's file wins over a DAGSTORE_TOKEN left
  // in the environment (unless the file cannot be read, e.g. another user's repo).
  let token: string | undefined
  if (file.auth === 'file') token = await readRepoToken(dir).catch(() => undefined) ?? env
  else if (file.auth === 'token') token = env
  if (token === undefined && file.auth !== 'none') {
    throw new CliError(CODE.ERR_UNAUTHORIZED, `the server of ${dir} (pid ${file.pid}) needs its admin token`, {
      hint: file.auth === 'token'
        ? 'it was started with --token: set DAGSTORE_TOKEN to the same value'
        : `${dir}/token is missing: set DAGSTORE_TOKEN`
    })
  }
  return new ClientBackend(file.url, token)
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** How often a register through a server asks for the shard's progress. */
const PROGRESS_POLL_MS = 250

/** Waits `ms`; false (at once) when `stop` fires first or has fired. */
async function pause (ms: number, stop: AbortSignal): Promise<boolean> {
  if (stop.aborted) return false
  return await new Promise<boolean>((resolve) => {
    const done = (): void => { clearTimeout(timer); resolve(false) }
    const timer = setTimeout(() => { stop.removeEventListener('abort', done); resolve(true) }, ms)
    stop.addEventListener('abort', done, { once: true })
  })
}

/** Waits while a serve is starting; the probe once it is live, gone or too slow. */
async function settle (dir: string, probe: ServerProbe, waitMs: number, log: OpenOptions['log']): Promise<ServerProbe> {
  if (probe.kind !== 'starting') return probe
  log?.(`waiting for serve (pid ${probe.file.pid}) to start`)
  const deadline = Date.now() + waitMs
  while (probe.kind === 'starting' && Date.now() < deadline) {
    await sleep(100)
    probe = await probeServer(dir)
  }
  return probe
}

/**
 * The running server's API if the repo has one, else the store itself (a stale serve.json
 * is ignored: only serve replaces it).
 */
export async function openBackend (options: OpenOptions): Promise<Backend> {
  const { dir, log } = options
  const waitMs = options.startWaitMs ?? 60_000
  let probe = await settle(dir, await probeServer(dir), waitMs, log)
  if (probe.kind === 'live') return await clientFor(probe.file, options)
  try {
    const direct = await DirectBackend.open(dir, options.onError, options.verifyHashes ?? 'remote')
    log?.(`opened ${dir} directly (no server)`)
    return direct
  } catch (err) {
    if (!isLevelLocked(err)) throw err
    // A serve may have claimed the repo between our look and our open.
    probe = await settle(dir, await probeServer(dir), waitMs, log)
    if (probe.kind === 'live') return await clientFor(probe.file, options)
    throw lockedError(dir, probe, err)
  }
}

export function lockedError (dir: string, probe: ServerProbe, cause: unknown): CliError {
  const holder = probe.kind === 'stale' && probe.pidAlive && probe.file !== undefined
    ? `serve (pid ${probe.file.pid}) holds it but does not answer at ${probe.file.url ?? '(no address)'}`
    : probe.kind === 'starting'
      ? `serve (pid ${probe.file.pid}) is still starting`
      : 'another process has it open (a dagstore command or a program using the library)'
  return new CliError(CODE.ERR_REPO_LOCKED, `the repo ${dir} is locked: ${holder}`, {
    hint: 'wait for it to finish or stop it; run `dagstore serve` to share a repo between commands',
    cause
  })
}
