/**
 * The connection pool of the PostgreSQL backend (node-postgres), with the timeouts that turn a
 * lost or hung server into a failed call instead of a wait without end, and the transaction
 * helper every multi-statement write goes through.
 */
import pg from 'pg'

export interface PoolOptions {
  /** postgres://user:password@host:port/database (unix sockets: ?host=/path/to/dir). */
  url: string
  /** Connections at most. Default 10. */
  max?: number
  /** Giving up on opening a connection. Default 10,000 ms. */
  connectTimeoutMs?: number
  /**
   * The server cancels a statement running longer (statement_timeout), and the client gives up
   * on an answer that long overdue (a server that vanished without closing the socket). Default
   * 60,000 ms.
   */
  statementTimeoutMs?: number
}

const INT8_OID = 20

/**
 * bigint columns (offsets, counts) come back as numbers, not strings. Per pool, never through
 * pg's global type registry, which the application may use for its own connections.
 */
const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => oid === INT8_OID && format !== 'binary'
    ? (value: string) => Number(value)
    : pg.types.getTypeParser(oid, format)
}

export function openPool (o: PoolOptions): pg.Pool {
  const statementTimeout = o.statementTimeoutMs ?? 60_000
  const pool = new pg.Pool({
    connectionString: o.url,
    max: o.max ?? 10,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 10_000,
    statement_timeout: statementTimeout,
    // Client side, a little later than the server's own limit: it fires only when the server cannot answer.
    query_timeout: statementTimeout + 5_000,
    keepAlive: true,
    types
  })
  // An idle connection the server dropped (restart, failover): the pool discards it and the next
  // query opens a new one. Without a listener the error would take the process down.
  pool.on('error', () => {})
  return pool
}

/**
 * Runs `fn` in one transaction on one connection: COMMIT if it fulfils, ROLLBACK if it rejects.
 * A connection that failed is destroyed rather than returned to the pool.
 */
export async function transaction<T> (pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => { broken = rollbackErr as Error })
    throw err
  } finally {
    client.release(broken)
  }
}

/** SQLSTATE of a driver error, if it has one. */
export function sqlState (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}
