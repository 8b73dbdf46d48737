/**
 * What a backend shared by several nodes tells a node about the others (DESIGN §12): where a
 * block is held and by whom, which nodes are alive, and the hand-over of a dead node's shards.
 * The embedded LevelDB backend has no cluster; the PostgreSQL backend provides one.
 */
import type { ShardKey, ShardState } from '../../base/types.js'
import type { ShardRecord } from './record.js'

/** Mounts any node can read by itself (http/https): the shard's bytes are not on its owner's disk. */
export function isReachableUrl (url: string | undefined): boolean {
  return url !== undefined && (url.startsWith('http:') || url.startsWith('https:'))
}

/** One shard holding a block, with what a node needs to serve it without the shard's owner. */
export interface BlockHolder {
  shard: ShardKey
  /** The node owning the shard; undefined for index rows no shard record names. */
  owner: string | undefined
  /** Offset of the block's section in the shard's CARv1 payload; undefined when unknown. */
  offset: number | undefined
  /** The shard's mount URL (unredacted: the reader needs its credentials). */
  url: string | undefined
  /** The owner's advertised base URL, if it gave one. */
  advertise: string | undefined
  /** Whether the owner's lease is current, by the database's clock. */
  alive: boolean
}

export interface ClusterNode {
  name: string
  advertise: string | undefined
  /** ISO 8601, the database's clock; undefined once the node stopped cleanly. */
  heartbeatAt: string | undefined
  alive: boolean
  /** Shards the node owns, by state (states with none are left out). */
  shards: Record<string, number>
}

/** A page of the cluster's shards: GET /shards and `dagstore ls` on a clustered store. */
export interface ClusterListQuery {
  /** Start after this key (a previous page's `next`). */
  after?: ShardKey | undefined
  /** At most this many shards (1..1000). */
  limit: number
  /** Only shards whose owner last persisted this state. */
  state?: ShardState | undefined
  /** Only keys that start with this. */
  prefix?: string | undefined
  /** Only shards this node owns. */
  node?: string | undefined
}

/** One shard of another node as the database has it: its owner's restart form. */
export interface ClusterShardEntry {
  record: ShardRecord
  owner: string
  /** Blocks in its full index, once indexed. */
  blocks: number | undefined
}

export interface ClusterShardPage {
  shards: ClusterShardEntry[]
  /** Where the next page starts; absent when the listing is complete. */
  next?: ShardKey
}

export interface ClusterDirectory {
  /** This node's name. */
  readonly node: string
  /** Every shard holding the block, with its owner's whereabouts: one round trip. */
  locate: (multihash: Uint8Array) => Promise<BlockHolder[]>
  /** Every node known to the database, in name order, with its shard counts. */
  nodes: () => Promise<ClusterNode[]>
  /**
   * Moves the http/https-mounted shards of `from` to this node, in one transaction, and returns
   * their records. @throws NodeAliveError while `from` holds a current lease; NodeUnknownError
   * when no node has that name.
   */
  adopt: (from: string) => Promise<ShardRecord[]>
  /**
   * One page of every node's shards in the database's key order, each with its owner. Bounded
   * work per page: a page looks at a bounded number of keys and may come back short (even
   * empty) with a `next` when the filters match few of them.
   */
  listShards: (query: ClusterListQuery) => Promise<ClusterShardPage>
}
