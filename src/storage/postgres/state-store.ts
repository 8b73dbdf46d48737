/**
 * The StateStore seam over PostgreSQL: one node's shard records in dagstore_shards (owner =
 * the node), its tombstones in dagstore_tombstones. A group commit is one transaction. Keys
 * are cluster-wide: a put of a key another node holds is refused (reported, never written)
 * while the rest of the batch commits, so a register that lost the race fails alone.
 */
import type pg from 'pg'
import { decodeRecord, encodeRecord, type ShardRecord } from '../state/record.js'
import type { BatchOutcome, StateStore } from '../state/state-store.js'
import type { ShardKey } from '../../base/types.js'
import { transaction } from './pool.js'

const PAGE = 4096

export class PgStateStore implements StateStore {
  constructor (private readonly pool: pg.Pool, private readonly node: string) {}

  async writeBatch (
    puts: Iterable<ShardRecord>, deletes: Iterable<ShardKey>, tombstones: Iterable<[ShardKey, boolean]> = []
  ): Promise<BatchOutcome | undefined> {
    const dels = [...deletes]
    // One row per key (the last put wins): ON CONFLICT DO UPDATE may not touch a row twice.
    const records = new Map<ShardKey, ShardRecord>()
    for (const r of puts) records.set(r.key, r)
    // The last word on a key wins.
    const marks = new Map<ShardKey, boolean>(tombstones)
    const setTombs: ShardKey[] = []
    const clearTombs: ShardKey[] = []
    for (const [key, set] of marks) (set ? setTombs : clearTombs).push(key)
    if (dels.length === 0 && records.size === 0 && setTombs.length === 0 && clearTombs.length === 0) return undefined
    const node = this.node
    return await transaction(this.pool, async (client) => {
      // Deletes first: a key destroyed and registered again within one batch ends up present.
      // Only this node's rows: a key another node holds is never this node's to delete.
      if (dels.length > 0) {
        await client.query('DELETE FROM dagstore_shards WHERE owner = $1 AND key = ANY($2::text[])', [node, dels])
      }
      let refused: ShardKey[] = []
      if (records.size > 0) {
        const keys: string[] = []
        const states: string[] = []
        const bodies: string[] = []
        for (const r of records.values()) {
          keys.push(r.key)
          states.push(r.state)
          bodies.push(encodeRecord(r))
        }
        // The unique key decides who holds a key: a row of another owner is left as it is and
        // not returned.
        const written = await client.query<{ key: string }>(
          `INSERT INTO dagstore_shards (key, owner, state, record)
           SELECT k, $1, s, r FROM unnest($2::text[], $3::text[], $4::text[]) AS t (k, s, r)
           ON CONFLICT (key) DO UPDATE SET state = excluded.state, record = excluded.record
           WHERE dagstore_shards.owner = excluded.owner
           RETURNING key`, [node, keys, states, bodies])
        if (written.rows.length < keys.length) {
          const done = new Set(written.rows.map((row) => row.key))
          refused = keys.filter((k) => !done.has(k))
        }
      }
      if (setTombs.length > 0) {
        await client.query(
          'INSERT INTO dagstore_tombstones (owner, key) SELECT $1, k FROM unnest($2::text[]) AS t (k) ON CONFLICT (owner, key) DO NOTHING',
          [node, setTombs])
      }
      if (clearTombs.length > 0) {
        await client.query('DELETE FROM dagstore_tombstones WHERE owner = $1 AND key = ANY($2::text[])', [node, clearTombs])
      }
      return refused.length > 0 ? { refused } : undefined
    })
  }

  /** This node's records, in pages of the primary key's order (keyset pagination, no cursor held open). */
  async * loadAll (onBad: (key: string, err: Error) => void): AsyncIterable<ShardRecord[]> {
    let after: string | undefined
    for (;;) {
      const r = after === undefined
        ? await this.pool.query<{ key: string, record: string }>(
          'SELECT key, record FROM dagstore_shards WHERE owner = $1 ORDER BY key LIMIT $2', [this.node, PAGE])
        : await this.pool.query<{ key: string, record: string }>(
          'SELECT key, record FROM dagstore_shards WHERE owner = $1 AND key > $2 ORDER BY key LIMIT $3', [this.node, after, PAGE])
      if (r.rows.length === 0) return
      const page: ShardRecord[] = []
      for (const row of r.rows) {
        try {
          const record = decodeRecord(row.record)
          if (record.key !== row.key) throw new Error('shard record names another key than its row')
          page.push(record)
        } catch (err) {
          onBad(row.key, err as Error)
        }
      }
      yield page
      if (r.rows.length < PAGE) return
      after = (r.rows[r.rows.length - 1] as { key: string }).key
    }
  }

  async * loadTombstones (): AsyncIterable<ShardKey> {
    const r = await this.pool.query<{ key: string }>('SELECT key FROM dagstore_tombstones WHERE owner = $1', [this.node])
    for (const row of r.rows) yield row.key
  }
}
