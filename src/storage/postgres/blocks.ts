/**
 * The full index and the top-level index over ONE table, dagstore_blocks: a row per block per
 * shard (shard, multihash, pos). The full index reads it by its primary key (shard first), the
 * top-level index by the secondary index on multihash, so indexing a shard writes each block
 * once, not once per index.
 *
 * What that makes of the TopLevelIndex calls (docs/CLUSTER.md): addMultihashesForShard writes
 * only the pairs that have no row yet (`ON CONFLICT DO NOTHING`, pos -1) — after the store
 * stored the shard's full index, none, and it knows that without asking (StoredIndices); removeShard deletes the pairs' rows, which are the full
 * index's rows too (the store drops the full index right after, and the full index's size is
 * kept apart, in dagstore_indices). Neither index writes or deletes rows of a key another node
 * holds.
 */
import type pg from 'pg'
import { IndexNotFoundError, ShardExistsError } from '../../base/errors.js'
import type { AddMultihashesOptions, FullIndexRepo, ShardIndex, TopLevelIndex } from '../../base/index-types.js'
import type { ShardKey } from '../../base/types.js'
import { SortedIndexBuilder } from '../../format/index/sorted-index.js'
import { transaction } from './pool.js'

/** Rows per INSERT (array parameters): large enough to amortise the round trip, small enough for one message. */
const ROWS = 5000
/** Rows per page when a full index is read back. */
const PAGE = 50_000

type Queryable = pg.Pool | pg.PoolClient

/** Stored indices remembered for the top-level add that follows (see StoredIndices). */
const REMEMBERED = 64

/**
 * The full indices this backend stored last, whose rows are committed and have not been
 * removed since: the top-level add that follows a full index's (the store's order) checks its
 * multihashes against it in memory and writes only those it lacks — none — instead of sending
 * every pair for the database to find present. Forgotten on drop and removeShard, and taken
 * by the top-level add; a few at most (the oldest go first).
 */
export class StoredIndices {
  private readonly byKey = new Map<ShardKey, ShardIndex>()

  remember (key: ShardKey, index: ShardIndex): void {
    this.byKey.delete(key)
    this.byKey.set(key, index)
    if (this.byKey.size > REMEMBERED) this.byKey.delete(this.byKey.keys().next().value as ShardKey)
  }

  forget (key: ShardKey): void { this.byKey.delete(key) }

  take (key: ShardKey): ShardIndex | undefined {
    const index = this.byKey.get(key)
    this.byKey.delete(key)
    return index
  }
}

/** Rejects a write under a key another node holds (the caller lost it, or never had it). */
async function assertNotForeign (db: Queryable, key: ShardKey, node: string): Promise<void> {
  const r = await db.query<{ owner: string }>('SELECT owner FROM dagstore_shards WHERE key = $1', [key])
  const owner = r.rows[0]?.owner
  if (owner !== undefined && owner !== node) {
    throw new ShardExistsError(`shard ${JSON.stringify(key)} is held by node ${JSON.stringify(owner)}`)
  }
}

/** The guard of every delete: rows of a key another node holds are left alone. */
const NOT_FOREIGN = 'NOT EXISTS (SELECT 1 FROM dagstore_shards WHERE key = $1 AND owner <> $2)'

async function insertRows (client: pg.PoolClient, key: ShardKey, multihashes: Uint8Array[], offsets: number[]): Promise<void> {
  await client.query(
    `INSERT INTO dagstore_blocks (shard, multihash, pos)
     SELECT $1, m, p FROM unnest($2::bytea[], $3::bigint[]) AS t (m, p)
     ON CONFLICT (shard, multihash) DO NOTHING`, [key, multihashes, offsets])
}

export class PgIndexRepo implements FullIndexRepo {
  constructor (private readonly pool: pg.Pool, private readonly node: string, private readonly stored = new StoredIndices()) {}

  /** One transaction: the old rows go, the new ones come, and the size is recorded. */
  async add (key: ShardKey, index: ShardIndex): Promise<void> {
    this.stored.forget(key)
    await transaction(this.pool, async (client) => {
      await assertNotForeign(client, key, this.node)
      await client.query('DELETE FROM dagstore_blocks WHERE shard = $1', [key])
      await client.query(
        'INSERT INTO dagstore_indices (shard, blocks) VALUES ($1, $2) ON CONFLICT (shard) DO UPDATE SET blocks = excluded.blocks',
        [key, index.size])
      let multihashes: Uint8Array[] = []
      let offsets: number[] = []
      for (const { multihash, offset } of index) {
        multihashes.push(multihash)
        offsets.push(offset)
        if (multihashes.length === ROWS) {
          await insertRows(client, key, multihashes, offsets)
          multihashes = []
          offsets = []
        }
      }
      if (multihashes.length > 0) await insertRows(client, key, multihashes, offsets)
    })
    this.stored.remember(key, index)
  }

  async get (key: ShardKey): Promise<ShardIndex> {
    const stat = await this.stat(key)
    if (!stat.exists) throw new IndexNotFoundError(`index not found for shard ${JSON.stringify(key)}`)
    const builder = new SortedIndexBuilder(stat.size)
    let after: Uint8Array | undefined
    for (;;) {
      // Keyset pages in primary-key order: no cursor held open between them.
      const r = await this.pool.query<{ multihash: Buffer, pos: number }>(after === undefined
        ? 'SELECT multihash, pos FROM dagstore_blocks WHERE shard = $1 AND pos >= 0 ORDER BY multihash LIMIT $2'
        : 'SELECT multihash, pos FROM dagstore_blocks WHERE shard = $1 AND pos >= 0 AND multihash > $3 ORDER BY multihash LIMIT $2',
      after === undefined ? [key, PAGE] : [key, PAGE, after])
      for (const row of r.rows) builder.add(row.multihash, row.pos)
      if (r.rows.length < PAGE) break
      after = (r.rows[r.rows.length - 1] as { multihash: Buffer }).multihash
    }
    return builder.build()
  }

  async drop (key: ShardKey): Promise<boolean> {
    this.stored.forget(key)
    return await transaction(this.pool, async (client) => {
      await client.query(`DELETE FROM dagstore_blocks WHERE shard = $1 AND ${NOT_FOREIGN}`, [key, this.node])
      const r = await client.query(`DELETE FROM dagstore_indices WHERE shard = $1 AND ${NOT_FOREIGN}`, [key, this.node])
      return (r.rowCount ?? 0) > 0
    })
  }

  async stat (key: ShardKey): Promise<{ exists: boolean, size: number }> {
    const r = await this.pool.query<{ blocks: number }>('SELECT blocks FROM dagstore_indices WHERE shard = $1', [key])
    const row = r.rows[0]
    return row === undefined ? { exists: false, size: 0 } : { exists: true, size: row.blocks }
  }

  async * keys (): AsyncIterable<ShardKey> {
    let after: string | undefined
    for (;;) {
      const r = await this.pool.query<{ shard: string }>(after === undefined
        ? 'SELECT shard FROM dagstore_indices ORDER BY shard LIMIT $1'
        : 'SELECT shard FROM dagstore_indices WHERE shard > $2 ORDER BY shard LIMIT $1',
      after === undefined ? [PAGE] : [PAGE, after])
      for (const row of r.rows) yield row.shard
      if (r.rows.length < PAGE) return
      after = (r.rows[r.rows.length - 1] as { shard: string }).shard
    }
  }
}

/** Where a block is: one row per shard holding it, with the section's offset and the shard's owner. */
export interface BlockLocation {
  shard: ShardKey
  /** Offset of the section in the shard's CARv1 payload; undefined for a top-level-only entry. */
  offset: number | undefined
  /** The node holding the shard; undefined when no shard record names it (an index without a shard). */
  owner: string | undefined
}

export class PgTopLevelIndex implements TopLevelIndex {
  /** removeShard(key) without the multihashes is one statement here: the store need not read the full index to list them. */
  readonly removesByShard = true

  constructor (private readonly pool: pg.Pool, private readonly node: string, private readonly stored = new StoredIndices()) {}

  async addMultihashesForShard (key: ShardKey, multihashes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: AddMultihashesOptions = {}): Promise<void> {
    const after = options.after
    // Gathered while `after` is pending; nothing is written before it fulfils.
    let failed: { reason: unknown } | undefined
    after?.catch((reason: unknown) => { failed = { reason } })
    const all: Uint8Array[] = []
    for await (const mh of multihashes) {
      if (failed !== undefined) throw failed.reason
      all.push(mh)
    }
    await after
    // After the shard's full index (stored by this backend, untouched since): its rows are
    // these pairs; only what it lacks is written.
    const stored = this.stored.take(key)
    const missing = stored === undefined ? all : all.filter((mh) => stored.get(mh) === undefined)
    if (missing.length === 0) return
    await transaction(this.pool, async (client) => {
      await assertNotForeign(client, key, this.node)
      for (let i = 0; i < missing.length; i += ROWS) {
        const batch = missing.slice(i, i + ROWS)
        await insertRows(client, key, batch, new Array<number>(batch.length).fill(-1))
      }
    })
  }

  async removeShard (key: ShardKey, multihashes?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    this.stored.forget(key)
    if (multihashes === undefined) {
      await this.pool.query(`DELETE FROM dagstore_blocks WHERE shard = $1 AND ${NOT_FOREIGN}`, [key, this.node])
      return
    }
    let batch: Uint8Array[] = []
    const flush = async (): Promise<void> => {
      await this.pool.query(`DELETE FROM dagstore_blocks WHERE shard = $1 AND ${NOT_FOREIGN} AND multihash = ANY($3::bytea[])`,
        [key, this.node, batch])
      batch = []
    }
    for await (const mh of multihashes) {
      batch.push(mh)
      if (batch.length === ROWS) await flush()
    }
    if (batch.length > 0) await flush()
  }

  async shardsForMultihash (multihash: Uint8Array): Promise<ShardKey[]> {
    const r = await this.pool.query<{ shard: string }>('SELECT shard FROM dagstore_blocks WHERE multihash = $1', [multihash])
    return r.rows.map((row) => row.shard)
  }

  /** Every shard holding the block, its offset and owner: one round trip. */
  async locate (multihash: Uint8Array): Promise<BlockLocation[]> {
    const r = await this.pool.query<{ shard: string, pos: number, owner: string | null }>(
      `SELECT b.shard, b.pos, s.owner FROM dagstore_blocks b
       LEFT JOIN dagstore_shards s ON s.key = b.shard
       WHERE b.multihash = $1`, [multihash])
    return r.rows.map((row) => ({ shard: row.shard, offset: row.pos >= 0 ? row.pos : undefined, owner: row.owner ?? undefined }))
  }
}
