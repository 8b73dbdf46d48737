/**
 * The CLI's side of the PostgreSQL backend (docs/CLUSTER.md): the --db, --node and --advertise
 * options (DAGSTORE_DB, DAGSTORE_NODE, DAGSTORE_ADVERTISE) and the backend they make. The
 * backend's code, and the database driver with it, is loaded only when --db is given.
 */
import { Option } from 'commander'
import type { StoreBackend } from '../../storage/state/backend.js'
import { UsageError } from './errors.js'
import type { EnvOptions } from './options.js'
import type { PageQuery } from './backend.js'
import { shardJson, type ShardListJson } from '../wire.js'
import { decodeCursor, encodeCursor } from '../cursor.js'
import { describeRecord } from '../../engine/cluster/listing.js'

export interface DatabaseOpts {
  db?: string | undefined
  node?: string | undefined
  advertise?: string | undefined
}

export function dbOption (env: EnvOptions, what: string): Option {
  return env.add(new Option('--db <url>', what), 'DAGSTORE_DB')
}

export function nodeOption (env: EnvOptions): Option {
  return env.add(new Option('--node <name>', 'with --db: this node\'s name in the cluster (the same across restarts)'), 'DAGSTORE_NODE')
}

export function advertiseOption (env: EnvOptions): Option {
  return env.add(new Option('--advertise <url>', 'with --db: the URL other nodes reach this one at'), 'DAGSTORE_ADVERTISE')
}

/** The backend the options ask for: undefined without --db (the embedded LevelDB default). */
export async function backendFrom (o: DatabaseOpts): Promise<StoreBackend | undefined> {
  if (o.db === undefined || o.db === '') {
    if (o.node !== undefined || o.advertise !== undefined) throw new UsageError('--node and --advertise go with --db')
    return undefined
  }
  if (o.node === undefined || o.node === '') {
    throw new UsageError('--db needs --node <name> (or DAGSTORE_NODE): the name this node has in the cluster')
  }
  const { postgresBackend } = await import('../../storage/postgres/backend.js')
  try {
    return postgresBackend({ url: o.db, node: o.node, ...(o.advertise !== undefined ? { advertise: o.advertise } : {}) })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** What `ls --db` pages through: the cluster's shards read from the database, no node opened. */
export interface DatabaseListing {
  page: (query: PageQuery) => Promise<ShardListJson>
  close: () => Promise<void>
}

/** `ls --db <url>`: the listing a clustered server answers, from the database itself. */
export async function openDatabaseListing (url: string): Promise<DatabaseListing> {
  const { ShardListing } = await import('../../storage/postgres/listing.js')
  const listing = new ShardListing({ url })
  return {
    page: async (query) => {
      const page = await listing.page({
        limit: query.limit,
        after: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
        state: query.state,
        prefix: query.prefix,
        node: query.node
      })
      const out: ShardListJson = { shards: page.shards.map((entry) => shardJson(describeRecord(entry))) }
      if (page.next !== undefined) out.next = encodeCursor(page.next)
      return out
    },
    close: async () => { await listing.close() }
  }
}
