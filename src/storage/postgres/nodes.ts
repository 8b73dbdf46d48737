/**
 * A node's lease: its row in dagstore_nodes, upserted when the backend opens, its heartbeat_at
 * set to the database's now() every heartbeatMs, and marked stopped when it closes. A node is
 * alive while it has not stopped and its last heartbeat is younger than its own lease, both by
 * the database's clock: the nodes' clocks never enter into it. No advisory lock, no
 * LISTEN/NOTIFY: rows only (DESIGN §12, docs/CLUSTER.md).
 */
import type pg from 'pg'

export const DEFAULT_HEARTBEAT_MS = 3_000
export const DEFAULT_LEASE_MS = 15_000

/** The SQL condition "node n is alive" (n: a dagstore_nodes row). */
export const ALIVE = "(n.stopped_at IS NULL AND n.heartbeat_at IS NOT NULL AND n.heartbeat_at > now() - n.lease_ms * interval '1 millisecond')"

export interface LeaseOptions {
  heartbeatMs: number
  leaseMs: number
  /** A heartbeat that failed (the database is away): the next one tries again. */
  report: (err: unknown, context: string) => void
}

export class NodeLease {
  private timer: NodeJS.Timeout | undefined
  private beating: Promise<void> | undefined

  constructor (private readonly pool: pg.Pool, private readonly node: string, private readonly advertise: string | undefined,
    private readonly options: LeaseOptions) {}

  /** Upserts the node's row (a restart under the same name takes it over) and starts the heartbeat. */
  async start (): Promise<void> {
    await this.pool.query(
      `INSERT INTO dagstore_nodes (name, advertise, started_at, heartbeat_at, lease_ms, stopped_at)
       VALUES ($1, $2, now(), now(), $3, NULL)
       ON CONFLICT (name) DO UPDATE SET advertise = excluded.advertise, started_at = excluded.started_at,
         heartbeat_at = excluded.heartbeat_at, lease_ms = excluded.lease_ms, stopped_at = NULL`,
      [this.node, this.advertise ?? null, this.options.leaseMs])
    this.timer = setInterval(() => { this.beat() }, this.options.heartbeatMs)
    this.timer.unref()
  }

  private beat (): void {
    // One at a time: a heartbeat stuck on a lost connection is not joined by more.
    if (this.beating !== undefined) return
    this.beating = this.pool.query('UPDATE dagstore_nodes SET heartbeat_at = now() WHERE name = $1', [this.node])
      .then(() => {}, (err: unknown) => { this.options.report(err, `heartbeat of node ${JSON.stringify(this.node)} failed`) })
      .finally(() => { this.beating = undefined })
  }

  /** Stops the heartbeat and marks the node stopped, so other nodes stop sending it requests at once. */
  async stop (): Promise<void> {
    clearInterval(this.timer)
    if (this.timer === undefined) return
    this.timer = undefined
    await this.beating
    await this.pool.query('UPDATE dagstore_nodes SET stopped_at = now() WHERE name = $1', [this.node])
      .catch((err: unknown) => { this.options.report(err, `marking node ${JSON.stringify(this.node)} stopped failed`) })
  }
}
