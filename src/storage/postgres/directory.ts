/**
 * The cluster seen from one node (storage/state/cluster.ts) over the shared tables: where a
 * block is and whether its owner is alive (one query joining blocks, shards and nodes), the
 * node list with shard counts (one GROUP BY), and adopt (one transaction).
 */
import type pg from 'pg'
import { InvalidArgumentError, NodeAliveError, NodeUnknownError } from '../../base/errors.js'
import {
  isReachableUrl, type BlockHolder, type ClusterDirectory, type ClusterListQuery, type ClusterNode, type ClusterShardPage
} from '../state/cluster.js'
import { decodeRecord, encodeRecord, type ShardRecord } from '../state/record.js'
import { transaction } from './pool.js'
import { ALIVE } from './nodes.js'
import { listShardsPage } from './listing.js'

function urlOf (record: string | null): string | undefined {
  if (record === null) return undefined
  try {
    return decodeRecord(record).url
  } catch {
    return undefined
  }
}

export class PgClusterDirectory implements ClusterDirectory {
  constructor (private readonly pool: pg.Pool, readonly node: string) {}

  async locate (multihash: Uint8Array): Promise<BlockHolder[]> {
    type Row = { shard: string, pos: number, owner: string | null, record: string | null, advertise: string | null, alive: boolean }
    const r = await this.pool.query<Row>(
      `SELECT b.shard, b.pos, s.owner, s.record, n.advertise, COALESCE(${ALIVE}, false) AS alive
       FROM dagstore_blocks b
       LEFT JOIN dagstore_shards s ON s.key = b.shard
       LEFT JOIN dagstore_nodes n ON n.name = s.owner
       WHERE b.multihash = $1`, [multihash])
    return r.rows.map((row) => ({
      shard: row.shard,
      owner: row.owner ?? undefined,
      offset: row.pos >= 0 ? row.pos : undefined,
      url: urlOf(row.record),
      advertise: row.advertise ?? undefined,
      alive: row.alive
    }))
  }

  async nodes (): Promise<ClusterNode[]> {
    type Row = { name: string, advertise: string | null, heartbeat_at: Date | null, alive: boolean, state: string | null, shards: number }
    const r = await this.pool.query<Row>(
      `SELECT n.name, n.advertise, n.heartbeat_at, COALESCE(${ALIVE}, false) AS alive, s.state, count(s.key) AS shards
       FROM dagstore_nodes n
       LEFT JOIN dagstore_shards s ON s.owner = n.name
       GROUP BY n.name, n.advertise, n.heartbeat_at, n.stopped_at, n.lease_ms, s.state
       ORDER BY n.name`)
    const out: ClusterNode[] = []
    for (const row of r.rows) {
      let node = out[out.length - 1]
      if (node?.name !== row.name) {
        node = {
          name: row.name,
          advertise: row.advertise ?? undefined,
          heartbeatAt: row.heartbeat_at === null ? undefined : new Date(row.heartbeat_at).toISOString(),
          alive: row.alive,
          shards: {}
        }
        out.push(node)
      }
      if (row.state !== null) node.shards[row.state] = Number(row.shards)
    }
    return out
  }

  async listShards (query: ClusterListQuery): Promise<ClusterShardPage> {
    return await listShardsPage(this.pool, query)
  }

  async adopt (from: string): Promise<ShardRecord[]> {
    if (from === this.node) throw new InvalidArgumentError('a node cannot adopt its own shards')
    return await transaction(this.pool, async (client) => {
      const n = await client.query<{ alive: boolean }>(
        `SELECT COALESCE(${ALIVE}, false) AS alive FROM dagstore_nodes n WHERE n.name = $1`, [from])
      const row = n.rows[0]
      if (row === undefined) throw new NodeUnknownError(`no node ${JSON.stringify(from)} in the database`)
      if (row.alive) throw new NodeAliveError(`node ${JSON.stringify(from)} is alive (its lease is current): stop it or wait for its lease to run out`)
      const shards = await client.query<{ key: string, record: string }>(
        'SELECT key, record FROM dagstore_shards WHERE owner = $1 ORDER BY key', [from])
      const moved: ShardRecord[] = []
      for (const s of shards.rows) {
        let record: ShardRecord
        try {
          record = decodeRecord(s.record)
        } catch {
          continue
        }
        if (!isReachableUrl(record.url)) continue
        // A copy on the dead node's disk is no copy here: this node reads in place or fetches again.
        delete record.transient
        moved.push(record)
      }
      if (moved.length === 0) return []
      // The liveness test again, in the statement that moves the rows: a node that came back
      // since the check above keeps its shards.
      const done = await client.query<{ key: string }>(
        `UPDATE dagstore_shards SET owner = $2, record = t.r
         FROM unnest($3::text[], $4::text[]) AS t (k, r)
         WHERE dagstore_shards.key = t.k AND dagstore_shards.owner = $1
           AND NOT EXISTS (SELECT 1 FROM dagstore_nodes n WHERE n.name = $1 AND ${ALIVE})
         RETURNING dagstore_shards.key`,
        [from, this.node, moved.map((m) => m.key), moved.map(encodeRecord)])
      const keys = new Set(done.rows.map((d) => d.key))
      if (keys.size === 0 && moved.length > 0) throw new NodeAliveError(`node ${JSON.stringify(from)} came back while its shards were being adopted`)
      return moved.filter((m) => keys.has(m.key))
    })
  }
}
