/**
 * Manual GC: reclaims the transient copies of idle shards. It runs as one loop task, so the
 * candidate set is consistent (no acquire can slip in between choosing and marking); the
 * file deletions run after the drain commits, behind a per-key barrier that any later fetch
 * of the same shard waits for.
 */
import { raiseBarrier, type Core } from '../loop/core.js'
import type { Drain } from '../loop/drain.js'
import type { GCResult, ShardKey } from '../types.js'

export function collectGarbage (core: Core, tx: Drain, done: (result: GCResult) => void): void {
  const now = Date.now()
  const shards = new Map<ShardKey, Error | null>()
  const deletions: Array<{ key: ShardKey, start: () => Promise<void> }> = []
  let reclaimedBytes = 0
  for (const shard of core.shards.values()) {
    if (shard.state !== 'available' && shard.state !== 'errored') continue
    if (shard.refs > 0 || shard.liveParked() > 0 || core.transients.isDownloading(shard.key)) continue
    const releasedAt = shard.extra?.releasedAt
    if (releasedAt !== undefined && now - releasedAt < core.graceMs) continue
    shards.set(shard.key, null)
    const transient = shard.transient
    // A user's existingTransient is never deleted: only copies inside transientsDir are ours.
    if (transient === undefined || !core.transients.isOwned(transient)) continue
    shard.transient = undefined
    tx.markDirty(shard)
    core.readers.invalidate(shard.key)
    const key = shard.key
    deletions.push({
      key,
      ...raiseBarrier(core, key, async () => {
        try {
          reclaimedBytes += await core.transients.delete(transient)
        } catch (err) {
          shards.set(key, err as Error)
        }
      })
    })
  }
  tx.afterCommit(() => {
    void Promise.all(deletions.map(async (d) => { await d.start() })).then(() => { done({ shards, reclaimedBytes }) })
  })
}
