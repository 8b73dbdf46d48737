/**
 * Start-up: what a kill may have left of shards that no longer exist. Destroys interrupted
 * between their commit and the end of their cleanup left a tombstone: their cleanup is
 * finished before any record is loaded, so no shard of the same key ever sees the old one's
 * index or entries. Index files no shard owns (left by versions without tombstones, or put
 * there by hand) go after the records are loaded, before any shard is initialized — in the
 * store's own index repo only: one given in the options may hold other stores' indices.
 *
 * The cost does not grow with the number of blocks of a clean repo: tombstones are few, and
 * the orphan check compares the index files' names with the loaded keys, never reading the
 * top-level index (nor a file per index).
 */
import type { Core } from './loop/core.js'
import { removeShardIndices } from './loop/cleanup.js'
import type { StateStore } from '../storage/state/state-store.js'
import type { FsIndexRepo } from '../storage/index/fs-repo.js'
import type { ShardKey } from '../base/types.js'

/**
 * Finishes every destroy a kill interrupted and clears its tombstone. A cleanup that fails is
 * reported and its tombstone kept: the key is marked so a shard registered under it finishes
 * the cleanup before writing anything (and a restart tries again).
 */
export async function finishDestroys (core: Core, stateStore: StateStore, signal: AbortSignal | undefined): Promise<void> {
  const finished: Array<[ShardKey, boolean]> = []
  for await (const key of stateStore.loadTombstones()) {
    signal?.throwIfAborted()
    try {
      // The transients are left to the orphan sweep, which knows every shard's files.
      await removeShardIndices(core, key)
      finished.push([key, false])
    } catch (err) {
      core.report(err, `finishing the destroy of shard ${JSON.stringify(key)} failed`)
      core.tombstones.markUnfinished(key)
    }
  }
  if (finished.length > 0) await stateStore.writeBatch([], [], finished)
}

/** Drops every full index in `repo` (and its top-level entries) whose key has no shard. Returns the keys. */
export async function removeOrphanIndices (core: Core, repo: FsIndexRepo): Promise<ShardKey[]> {
  const orphans: ShardKey[] = []
  for await (const key of repo.keysExcept(core.shards.keys())) orphans.push(key)
  const removed: ShardKey[] = []
  for (const key of orphans) {
    try {
      await removeShardIndices(core, key)
      removed.push(key)
    } catch (err) {
      core.report(err, `removing the orphaned index of ${JSON.stringify(key)} failed`)
      core.tombstones.markUnfinished(key)
    }
  }
  return removed
}
