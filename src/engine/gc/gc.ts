/**
 * GC of transient copies, manual (gc()) and automated (eviction under the space budget). Each
 * runs as one loop task, so the candidate set is consistent (no acquire can slip in between
 * choosing and marking); the file deletions run after the drain commits, behind a per-key
 * barrier that any later fetch of the same shard waits for.
 */
import { raiseBarrier, type Core } from '../loop/core.js'
import type { Drain } from '../loop/drain.js'
import type { Shard } from '../shard/shard.js'
import type { GCResult, ShardKey } from '../../base/types.js'

/** Idle enough to lose its transient: nobody holds, awaits or downloads it, and its grace is over. */
function reclaimable (core: Core, shard: Shard, now: number): boolean {
  if (shard.state !== 'available' && shard.state !== 'errored') return false
  if (shard.refs > 0 || shard.liveParked() > 0 || core.transients.isDownloading(shard.key)) return false
  const releasedAt = shard.extra?.releasedAt
  return releasedAt === undefined || now - releasedAt >= core.graceMs
}

class Reclaim {
  readonly shards = new Map<ShardKey, Error | null>()
  reclaimedBytes = 0
  readonly #deletions: Array<() => Promise<void>> = []

  constructor (private readonly core: Core, private readonly tx: Drain) {}

  /** Forgets the shard's transient now (durably, with this drain) and deletes the file after. */
  take (shard: Shard, transient: string): void {
    const { core } = this
    shard.transient = undefined
    this.tx.markDirty(shard)
    core.readers.invalidate(shard.key)
    const key = shard.key
    const barrier = raiseBarrier(core, key, async () => {
      try {
        // Not `+= await`: that reads the sum before the await, and deletions run concurrently.
        const freed = await core.transients.delete(transient)
        this.reclaimedBytes += freed
      } catch (err) {
        this.shards.set(key, err as Error)
      }
    })
    this.#deletions.push(barrier.start)
  }

  finish (done: (result: GCResult) => void): void {
    this.tx.afterCommit(() => {
      void Promise.all(this.#deletions.map(async (start) => { await start() }))
        .then(() => { done({ shards: this.shards, reclaimedBytes: this.reclaimedBytes }) })
    })
  }
}

export function collectGarbage (core: Core, tx: Drain, done: (result: GCResult) => void): void {
  const now = Date.now()
  const run = new Reclaim(core, tx)
  for (const shard of core.shards.values()) {
    if (!reclaimable(core, shard, now)) continue
    run.shards.set(shard.key, null)
    const transient = shard.transient
    // A user's existingTransient is never deleted: only copies inside transientsDir are ours.
    if (transient === undefined || !core.transients.isOwned(transient)) continue
    run.take(shard, transient)
  }
  run.finish(done)
}

/**
 * Automated GC: evicts reclaimable transients, least recently used first, until `bytes` are
 * freed or none is left. Walks only the budget's list of transients, never every shard.
 */
export function evictTransients (core: Core, tx: Drain, bytes: number, done: (result: GCResult) => void): void {
  const budget = core.transients.budget
  const run = new Reclaim(core, tx)
  if (budget !== undefined) {
    const now = Date.now()
    let planned = 0
    for (const [path, entry] of budget.entries()) {
      if (planned >= bytes) break
      const shard = core.shards.get(entry.key)
      // Only a file its shard points at: one just downloaded may not be recorded yet.
      if (shard === undefined || shard.transient !== path) continue
      if (!reclaimable(core, shard, now)) continue
      run.shards.set(shard.key, null)
      planned += entry.size
      run.take(shard, path)
    }
  }
  run.finish(done)
}
