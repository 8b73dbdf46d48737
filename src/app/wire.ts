/**
 * The JSON the admin API answers and the CLI prints with --json (and reads back in client
 * mode): one definition for both sides, so that a command's output is the same whether it
 * went through a running server or opened the repo itself.
 */
import type { CopyPolicy, ShardDescription, ShardInfo, VerifyReport } from '../base/types.js'
import { CODE } from '../base/errors/codes.js'
import { codeOf } from '../base/errors/inspect.js'
import { redactUrl } from '../base/redact.js'
import type { ClusterNode } from '../storage/state/cluster.js'

/** A failure: `{ "error": ErrorJson }` in an API answer, `error` fields in listings. */
export interface ErrorJson {
  code: string
  message: string
  cause?: { code?: string, message: string }
}

export interface ShardInfoJson {
  state: string
  refs: number
  error?: ErrorJson
  /** true while a destroy with drain waits for the shard's accessors. */
  draining?: boolean
}

/** A shard as every admin route returns it. */
export interface ShardJson extends ShardInfoJson {
  key: string
  /** The mount URL as shown: credentials and secret query parameters redacted (base/redact.ts). */
  url: string
  /** The store's local copy (in its transients folder), when there is one. */
  transient?: string
  size?: number
  blocks?: number
  /** 'local' (file: mount), 'copy' (transient of a remote mount), 'in-place' (ranged reads of the origin). */
  placement?: 'local' | 'copy' | 'in-place'
  /** The shard's own copy policy, when registered with one. */
  copy?: CopyPolicy
  /** The node owning the shard, when the store is part of a cluster (serve --db). */
  node?: string
  /** While the shard is fetched and indexed: bytes of its CAR read so far, and its size when known. */
  progress?: { bytes: number, size?: number }
}

/** GET /shards (a page) and `dagstore ls --json`. */
export interface ShardListJson {
  shards: ShardJson[]
  /** The cursor of the next page (`?cursor=`); absent on the last one. Opaque. */
  next?: string
}

/** POST /gc: per shard, null when its copy was reclaimed. */
export interface GcJson {
  reclaimedBytes: number
  shards: Record<string, ErrorJson | null>
}

/** GET /nodes and `dagstore nodes --json`: the cluster's nodes (DAGStore.nodes()). */
export interface NodesJson {
  nodes: Array<{
    name: string
    advertise?: string
    /** ISO 8601, by the database's clock. */
    heartbeatAt?: string
    alive: boolean
    /** Shards the node owns, by state. */
    shards: Record<string, number>
  }>
}

export function nodesJson (nodes: ClusterNode[]): NodesJson {
  return {
    nodes: nodes.map((n) => {
      const out: NodesJson['nodes'][number] = { name: n.name, alive: n.alive, shards: n.shards }
      if (n.advertise !== undefined) out.advertise = redactUrl(n.advertise)
      if (n.heartbeatAt !== undefined) out.heartbeatAt = n.heartbeatAt
      return out
    })
  }
}

/** POST /adopt?from=<node>: the keys of the shards this node took over. */
export interface AdoptedJson { from: string, node: string, shards: string[] }

/** GET /find/{cid} */
export interface FindJson { cid: string, shards: string[] }

/** DELETE /shards/{key} */
export interface DestroyedJson { key: string, destroyed: true }

/** POST /shards/{key}/verify: DAGStore.verifyShard's report. */
export interface VerifyJson {
  key: string
  ok: boolean
  blocks: number
  problems: Array<{ code: string, message: string }>
  repaired: boolean
}

/** `dagstore verify --json` */
export interface VerifyListJson { shards: VerifyJson[] }

export function verifyJson (r: VerifyReport): VerifyJson {
  return { key: r.key, ok: r.ok, blocks: r.blocks, problems: r.problems.map((p) => ({ code: p.code, message: p.message })), repaired: r.repaired }
}

/** `{code, message}` of any error; errors without a code get ERR_INTERNAL. */
export function errorJson (err: unknown): ErrorJson {
  const message = err instanceof Error ? err.message : String(err)
  const out: ErrorJson = { code: codeOf(err) ?? CODE.ERR_INTERNAL, message }
  const cause = err instanceof Error ? err.cause : undefined
  // The store wraps what actually went wrong (InvalidCarError, HttpStatusError, ...): clients need its code.
  if (cause instanceof Error) {
    out.cause = { message: cause.message }
    const code = codeOf(cause)
    if (code !== undefined) out.cause.code = code
  }
  return out
}

export function infoJson (info: ShardInfo): ShardInfoJson {
  const out: ShardInfoJson = { state: info.state, refs: info.refs }
  if (info.error !== undefined) out.error = errorJson(info.error)
  if (info.draining === true) out.draining = true
  return out
}

export function shardJson (d: ShardDescription): ShardJson {
  const out: ShardJson = { key: d.key, ...infoJson(d), url: redactUrl(d.url) }
  if (d.transient !== undefined) out.transient = d.transient
  if (d.size !== undefined) out.size = d.size
  if (d.blocks !== undefined) out.blocks = d.blocks
  if (d.placement !== undefined) out.placement = d.placement
  if (d.copy !== undefined) out.copy = d.copy
  if (d.node !== undefined) out.node = d.node
  if (d.progress !== undefined) out.progress = { ...d.progress }
  return out
}
