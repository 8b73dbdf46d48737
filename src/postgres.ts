/**
 * The `dagstore/postgres` subpath: the PostgreSQL-protocol backend (docs/CLUSTER.md). Kept out
 * of the package root so `import 'dagstore'` never loads the database driver.
 *
 *   const store = new DAGStore({ dir, backend: postgresBackend({ url, node: 'node-a' }) })
 */
export {
  postgresBackend, migrateDatabase, PostgresBackend, type PostgresBackendOptions
} from './storage/postgres/backend.js'
export type { PoolOptions } from './storage/postgres/pool.js'
export type { BlockLocation } from './storage/postgres/blocks.js'
export { SCHEMA_VERSION, type MigrateResult } from './storage/postgres/schema.js'
export { SchemaVersionError } from './base/errors.js'
export type { StoreBackend, BackendSeams } from './storage/state/backend.js'
