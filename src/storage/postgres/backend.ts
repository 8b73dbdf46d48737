/**
 * postgresBackend(): the store's records, full indices and top-level index in a database that
 * speaks the PostgreSQL protocol (PostgreSQL, YugabyteDB YSQL, CockroachDB), shared by the
 * nodes of a cluster. Each node names itself (`node`): the shards it registers are its own, and
 * a restart, even on an empty dir, resumes them. Keys are unique across the database.
 */
import type pg from 'pg'
import { InvalidArgumentError } from '../../base/errors.js'
import type { BackendSeams, StoreBackend } from '../state/backend.js'
import { openPool, type PoolOptions } from './pool.js'
import { migrate, type MigrateResult } from './schema.js'
import { PgStateStore } from './state-store.js'
import { PgIndexRepo, PgTopLevelIndex, StoredIndices, type BlockLocation } from './blocks.js'

export interface PostgresBackendOptions extends PoolOptions {
  /** This node's name: unique in the cluster, the same across its restarts. */
  node: string
  /** How other nodes reach this one (its server's base URL), recorded with the node. */
  advertise?: string
  /** Bring the schema up to date when opening (default true); false: `dagstore migrate` does it. */
  migrate?: boolean
}

const MAX_NODE_NAME = 255

function validate (o: PostgresBackendOptions): void {
  if (typeof o?.url !== 'string' || o.url === '') throw new InvalidArgumentError('postgresBackend needs `url` (postgres://…)')
  if (typeof o.node !== 'string' || o.node === '' || o.node.length > MAX_NODE_NAME || /\p{Cc}/u.test(o.node)) {
    throw new InvalidArgumentError(`postgresBackend needs \`node\`: 1..${MAX_NODE_NAME} characters, no control characters`)
  }
  if (o.advertise !== undefined) {
    let url: URL
    try {
      url = new URL(o.advertise)
    } catch {
      throw new InvalidArgumentError(`advertise must be a URL, not ${JSON.stringify(o.advertise)}`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('advertise must be an http: or https: URL')
  }
  for (const name of ['max', 'connectTimeoutMs', 'statementTimeoutMs'] as const) {
    const v = o[name]
    if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new InvalidArgumentError(`${name} must be a positive integer`)
  }
}

export class PostgresBackend implements StoreBackend {
  readonly node: string
  readonly advertise: string | undefined
  private pool: pg.Pool | undefined
  private topLevel: PgTopLevelIndex | undefined

  constructor (private readonly options: PostgresBackendOptions) {
    validate(options)
    this.node = options.node
    this.advertise = options.advertise
  }

  async open (): Promise<BackendSeams> {
    if (this.pool !== undefined) throw new Error('the PostgreSQL backend is open already (one store at a time)')
    const pool = openPool(this.options)
    this.pool = pool
    try {
      if (this.options.migrate !== false) await migrate(pool)
      await pool.query(
        `INSERT INTO dagstore_nodes (name, advertise, started_at, heartbeat_at) VALUES ($1, $2, now(), now())
         ON CONFLICT (name) DO UPDATE SET advertise = excluded.advertise, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
        [this.node, this.advertise ?? null])
    } catch (err) {
      await this.close()
      throw err
    }
    // The two indices are one table: the top-level index learns which full indices were just stored.
    const stored = new StoredIndices()
    this.topLevel = new PgTopLevelIndex(pool, this.node, stored)
    return {
      stateStore: new PgStateStore(pool, this.node),
      indexRepo: new PgIndexRepo(pool, this.node, stored),
      topLevelIndex: this.topLevel
    }
  }

  /** Every shard holding the block, with its offset and owner, in one round trip. Only while open. */
  async locate (multihash: Uint8Array): Promise<BlockLocation[]> {
    if (this.topLevel === undefined) throw new Error('the PostgreSQL backend is not open')
    return await this.topLevel.locate(multihash)
  }

  async close (): Promise<void> {
    const pool = this.pool
    this.pool = undefined
    this.topLevel = undefined
    await pool?.end()
  }
}

export function postgresBackend (options: PostgresBackendOptions): PostgresBackend {
  return new PostgresBackend(options)
}

/** Creates or upgrades the schema of the database at `url` (`dagstore migrate`). Idempotent. */
export async function migrateDatabase (options: PoolOptions): Promise<MigrateResult> {
  const pool = openPool({ ...options, max: 1 })
  try {
    return await migrate(pool)
  } finally {
    await pool.end()
  }
}
