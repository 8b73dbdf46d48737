/**
 * What a shard leaves in the store's folders — top-level entries, full index, transient copies —
 * and the cleanup of a destroyed shard's, whose end clears its tombstone (./tombstones.ts).
 */
import type { Core } from './core.js'
import type { ShardIndex } from '../../base/index-types.js'
import { SortedIndex } from '../../format/index/sorted-index.js'
import type { ShardKey } from '../../base/types.js'

/** The index's multihashes; a SortedIndex (what the indexer builds) hands them out without entry objects. */
export function multihashesOf (index: ShardIndex): Iterable<Uint8Array> {
  return index instanceof SortedIndex ? index.multihashes() : entryMultihashes(index)
}

function * entryMultihashes (index: ShardIndex): Iterable<Uint8Array> {
  for (const entry of index) yield entry.multihash
}

/**
 * Stores the shard's full index, then its top-level entries: they are prepared while the full
 * index is written, and written only once it is stored, so they are always a subset of a stored
 * full index. Settles once both writes have, so a failure's cleanup never races either.
 */
export async function storeShardIndices (core: Core, key: ShardKey, index: ShardIndex): Promise<void> {
  const stored = core.indexRepo.add(key, index)
  const entries = core.topLevelIndex.addMultihashesForShard(key, multihashesOf(index), { after: stored })
  const [full, topLevel] = await Promise.allSettled([stored, entries])
  if (full.status === 'rejected') throw full.reason
  if (topLevel.status === 'rejected') throw topLevel.reason
}

/**
 * Drops the shard's top-level entries, then its full index. Top-level entries are only ever
 * added after the full index is stored and removed before it is dropped, so they are always
 * a subset of the full index: it names every pair to delete, and a shard without one has none.
 */
export async function removeShardIndices (core: Core, key: ShardKey): Promise<void> {
  if (core.topLevelIndex.removesByShard === true) {
    // Its entries are a subset of the full index's, so all of the shard's entries are exactly those.
    await core.topLevelIndex.removeShard(key)
  } else {
    const index = await core.indexRepo.get(key).catch(() => undefined)
    if (index !== undefined) await core.topLevelIndex.removeShard(key, multihashesOf(index))
  }
  await core.indexRepo.drop(key)
}

/**
 * Removes everything stored under `key`: its indices, `transient` (when inside the transients
 * folder) and the transient the store names after the key, stopping a download that would
 * write it. Idempotent.
 */
export async function removeShardData (core: Core, key: ShardKey, transient?: string): Promise<void> {
  await removeShardIndices(core, key)
  if (transient !== undefined) await core.transients.delete(transient)
  await core.transients.discard(key)
}

/**
 * Tells the loop a cleanup of `key` ended (`counted`: one a destroy began) and resolves once
 * the tombstone's clearing, if this ends the last cleanup, is durable — or at once when the
 * tombstone stays. Whoever waits on it (the key's barrier) lets a new shard of the key write
 * its index only then, so a restart that finds the tombstone never removes a newer shard's data.
 * (A failed state write is retried with the next commit, and, like every result, this resolves
 * anyway: only a kill before that retry lands can then cost the newer shard its index.)
 */
export async function endCleanup (core: Core, key: ShardKey, ok: boolean, counted: boolean): Promise<void> {
  await new Promise<void>((resolve) => {
    core.loop.complete({
      control: (tx) => {
        // The clearing is a write of this drain: the effect runs once its commit is done.
        if (core.tombstones.end(key, ok, tx, counted)) tx.afterCommit(resolve)
        else resolve()
      },
      // Closing: the tombstone stays and the next start finishes the cleanup.
      abandon: resolve
    })
  })
}

/**
 * Before a shard writes anything under `key`: finishes the cleanup of a destroyed shard of the
 * same key whose cleanup failed (its tombstone stayed), or fails with that cleanup's error.
 */
export async function finishUnfinishedDestroy (core: Core, key: ShardKey): Promise<void> {
  if (!core.tombstones.isUnfinished(key)) return
  await removeShardData(core, key)
  await endCleanup(core, key, true, false)
}
