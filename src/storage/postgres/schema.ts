/**
 * The backend's schema and its versions (docs/CLUSTER.md lists and explains every statement).
 *
 * Each migration is a list of idempotent statements (IF NOT EXISTS) and its row in
 * dagstore_schema, written with ON CONFLICT DO NOTHING in the same transaction. Nodes starting
 * at once may all run a migration: the statements are harmless twice, and the loser of a
 * catalog race (PostgreSQL reports a concurrent CREATE … IF NOT EXISTS as a unique violation
 * once the winner commits; CockroachDB as a retryable serialization failure) starts over and
 * then finds the work done. Nothing depends on DDL being transactional (YugabyteDB commits
 * each DDL statement by itself).
 */
import type pg from 'pg'
import { SchemaVersionError } from '../../base/errors.js'
import { sqlState, transaction } from './pool.js'

interface Migration { version: number, statements: string[] }

const SCHEMA_TABLE = `CREATE TABLE IF NOT EXISTS dagstore_schema (
  version integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
)`

const MIGRATIONS: readonly Migration[] = [{
  version: 1,
  statements: [
    // The cluster's nodes: how to reach each, and its lease (heartbeat_at).
    `CREATE TABLE IF NOT EXISTS dagstore_nodes (
      name text PRIMARY KEY,
      advertise text,
      started_at timestamptz,
      heartbeat_at timestamptz
    )`,
    // One row per shard; the primary key makes keys cluster-wide. record is the shard's
    // restart form (the JSON the LevelDB state store keeps); state is out of it for counting.
    `CREATE TABLE IF NOT EXISTS dagstore_shards (
      key text PRIMARY KEY,
      owner text NOT NULL,
      state text NOT NULL,
      record text NOT NULL
    )`,
    'CREATE INDEX IF NOT EXISTS dagstore_shards_owner ON dagstore_shards (owner, key)',
    // Destroys whose cleanup has not finished, per node.
    `CREATE TABLE IF NOT EXISTS dagstore_tombstones (
      owner text NOT NULL,
      key text NOT NULL,
      PRIMARY KEY (owner, key)
    )`,
    // A stored full index and its size (an empty index is stored too: no block rows).
    `CREATE TABLE IF NOT EXISTS dagstore_indices (
      shard text PRIMARY KEY,
      blocks bigint NOT NULL
    )`,
    // One row per block per shard: the full index by its primary key, the top-level index by
    // the secondary index on multihash. pos is the section's offset; -1 for an entry the
    // top-level index added without a full index.
    `CREATE TABLE IF NOT EXISTS dagstore_blocks (
      shard text NOT NULL,
      multihash bytea NOT NULL,
      pos bigint NOT NULL,
      PRIMARY KEY (shard, multihash)
    )`,
    'CREATE INDEX IF NOT EXISTS dagstore_blocks_multihash ON dagstore_blocks (multihash)'
  ]
}]

export const SCHEMA_VERSION = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), 0)

/** Catalog races between concurrent migrators and transaction conflicts: try again. */
const RETRY = new Set(['23505', '42P07', '42710', '40001', '40P01'])
const ATTEMPTS = 20

export interface MigrateResult {
  /** The schema version the database is at now. */
  version: number
  /** The versions this call applied (none when another node had, or the schema was current). */
  applied: number[]
}

/**
 * Brings the database's schema to SCHEMA_VERSION. Idempotent, and safe when several nodes call
 * it at once. @throws SchemaVersionError when the database is at a version this code does not know.
 */
export async function migrate (pool: pg.Pool): Promise<MigrateResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateOnce(pool)
    } catch (err) {
      const state = sqlState(err)
      if (state === undefined || !RETRY.has(state) || attempt >= ATTEMPTS) throw err
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt + Math.random() * 20))
    }
  }
}

async function migrateOnce (pool: pg.Pool): Promise<MigrateResult> {
  await pool.query(SCHEMA_TABLE)
  const known = await versions(pool)
  const newest = Math.max(0, ...known)
  if (newest > SCHEMA_VERSION) {
    throw new SchemaVersionError(`the database's dagstore schema is at version ${newest}; this dagstore knows up to ${SCHEMA_VERSION}`)
  }
  const applied: number[] = []
  for (const m of MIGRATIONS) {
    if (known.has(m.version)) continue
    const won = await transaction(pool, async (client) => {
      for (const statement of m.statements) await client.query(statement)
      const r = await client.query('INSERT INTO dagstore_schema (version) VALUES ($1) ON CONFLICT (version) DO NOTHING', [m.version])
      return r.rowCount === 1
    })
    if (won) applied.push(m.version)
  }
  return { version: SCHEMA_VERSION, applied }
}

async function versions (pool: pg.Pool): Promise<Set<number>> {
  const r = await pool.query<{ version: number }>('SELECT version FROM dagstore_schema')
  return new Set(r.rows.map((row) => row.version))
}
