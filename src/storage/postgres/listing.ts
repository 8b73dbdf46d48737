/**
 * Pages of every node's shards (`GET /shards`, `dagstore ls` on a clustered store) straight from
 * dagstore_shards, in the database's key order (its collation: the order the cursor continues
 * in, not necessarily JavaScript's). A page never costs more than SCANNED keys of the primary
 * key (or of the (owner, key) index with a node filter): the filters are applied to that bounded
 * run, so a filter that few shards match answers a short page with a `next` instead of a scan
 * of the whole table.
 */
import type pg from 'pg'
import type { ClusterListQuery, ClusterShardPage } from '../state/cluster.js'
import { decodeRecord } from '../state/record.js'
import { openPool, type PoolOptions } from './pool.js'

/** Keys one page looks at, at most (the in-memory listing's bound, src/engine/list-shards.ts). */
const SCANNED = 4096

/** `prefix` as a LIKE pattern matching the strings that start with it. */
function likePrefix (prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => '\\' + c) + '%'
}

export async function listShardsPage (pool: pg.Pool, query: ClusterListQuery): Promise<ClusterShardPage> {
  const params: unknown[] = []
  const bind = (value: unknown): string => { params.push(value); return `$${params.length}` }
  const range: string[] = []
  if (query.after !== undefined) range.push(`key > ${bind(query.after)}`)
  // A string sorts before its extensions in every collation: the run of the prefix starts here.
  if (query.prefix !== undefined && query.prefix !== '') range.push(`key >= ${bind(query.prefix)}`)
  if (query.node !== undefined) range.push(`owner = ${bind(query.node)}`)
  const scanned = Math.max(SCANNED, query.limit + 1)
  const scan = `SELECT key, owner, state, record FROM dagstore_shards${range.length === 0 ? '' : ' WHERE ' + range.join(' AND ')}` +
    ` ORDER BY key LIMIT ${bind(scanned)}`
  const filters: string[] = []
  if (query.state !== undefined) filters.push(`state = ${bind(query.state)}`)
  // Not a range bound: under a linguistic collation keys with the prefix need not be contiguous.
  if (query.prefix !== undefined && query.prefix !== '') filters.push(`key LIKE ${bind(likePrefix(query.prefix))} ESCAPE '\\'`)
  const where = filters.length === 0 ? '' : ' WHERE ' + filters.join(' AND ')
  type Row = { key: string, owner: string | null, record: string | null, blocks: number | null, tail: boolean }
  const r = await pool.query<Row>(
    `WITH scanned AS (${scan}),
     hits AS (SELECT key, owner, record FROM scanned${where} ORDER BY key LIMIT ${bind(query.limit + 1)})
     SELECT h.key, h.owner, h.record, i.blocks, false AS tail FROM hits h LEFT JOIN dagstore_indices i ON i.shard = h.key
     UNION ALL
     SELECT max(key), NULL, NULL, count(*), true FROM scanned
     ORDER BY tail, key`, params)
  const tail = r.rows.find((row) => row.tail)
  // In the database's order (ORDER BY above), which the cursor continues in.
  const hits = r.rows.filter((row) => !row.tail)
  const page: ClusterShardPage = { shards: [] }
  for (const row of hits.slice(0, query.limit)) {
    try {
      page.shards.push({ record: decodeRecord(row.record as string), owner: row.owner as string, blocks: row.blocks ?? undefined })
    } catch {
      // Not a record of ours (written by something else): not a shard to list.
    }
  }
  const last = hits[query.limit - 1]
  if (hits.length > query.limit && last !== undefined) page.next = last.key
  else if (tail !== undefined && Number(tail.blocks) === scanned && tail.key !== null) page.next = tail.key
  return page
}

/** The cluster's shard listing without a node: `dagstore ls --db` reads the database itself. */
export class ShardListing {
  private readonly pool: pg.Pool

  constructor (options: PoolOptions) {
    this.pool = openPool({ ...options, max: 1 })
  }

  async page (query: ClusterListQuery): Promise<ClusterShardPage> {
    return await listShardsPage(this.pool, query)
  }

  async close (): Promise<void> {
    await this.pool.end()
  }
}
