/**
 * The restart rules (docs/CONTRACT.md): every persisted shard is loaded and put in the state a restart
 * makes of it; what must run again (re-registration, recovery) is handed back to the caller,
 * who submits it once the loop runs.
 */
import { Shard } from './shard/shard.js'
import type { Core } from './loop/core.js'
import type { StateStore } from '../storage/state/state-store.js'
import type { ShardRecord } from '../storage/state/record.js'
import { RestoredShardError } from '../base/errors.js'
import { CODE } from '../base/errors/codes.js'
import type { RecoverOnStart } from './options.js'
import { multihashesOf } from './loop/cleanup.js'
import type { ShardKey } from '../base/types.js'

export interface Restored {
  /** Shards to register again (eagerly): stopped while initializing without an index, or before initialize. */
  reRegister: Shard[]
  /** Errored shards to recover at once (`recoverOnStart: 'now'`). */
  recoverNow: Shard[]
}

/** serving → available; initializing → available if indexed, else re-registered; recovering → errored; errored → policy. */
export async function restore (core: Core, stateStore: StateStore, policy: RecoverOnStart, signal: AbortSignal | undefined): Promise<Restored> {
  const reRegister: Shard[] = []
  const recoverNow: Shard[] = []
  const changed: ShardRecord[] = []
  for await (const page of stateStore.loadAll((key, err) => { core.report(err, `skipping unreadable shard record ${JSON.stringify(key)}`) })) {
    signal?.throwIfAborted()
    for (const r of page) {
      const shard = new Shard(r.key, r.url, r.lazy, r.state, undefined, r.transient, r.copy)
      if (r.inPlace === true) shard.inPlace = true
      if (r.error !== undefined) shard.error = new RestoredShardError(r.error, r.errorCode ?? CODE.ERR_SHARD_ERRORED)
      const before = shard.state
      if (shard.state === 'serving') shard.state = 'available'
      else if (shard.state === 'recovering') shard.state = 'errored'
      else if (shard.state === 'initializing') {
        if (await restoreTopLevelEntries(core, shard.key)) {
          shard.state = 'available'
        } else {
          shard.state = 'new'
          reRegister.push(shard)
        }
      } else if (shard.state === 'new' && !shard.lazy) {
        // Killed between register and initialize: finish what the caller asked for.
        reRegister.push(shard)
      }
      if (shard.state === 'errored') {
        if (policy === 'on-acquire') shard.x().recoverOnAcquire = true
        else if (policy === 'now') recoverNow.push(shard)
      }
      if (shard.state !== before) changed.push(shard.record())
      core.shards.load(shard.key, shard)
      core.counts[shard.state]++
    }
  }
  if (changed.length > 0) await stateStore.writeBatch(changed, [])
  return { reRegister, recoverNow }
}

/**
 * Stopped while initializing with its full index stored: the top-level entries, written after
 * it, may be missing some. They are written again (idempotent puts) before the shard counts as
 * available. False when there is no index to go by (or a failed destroy's may still be there).
 */
async function restoreTopLevelEntries (core: Core, key: ShardKey): Promise<boolean> {
  if (core.tombstones.isUnfinished(key) || !(await core.indexRepo.stat(key)).exists) return false
  await core.topLevelIndex.addMultihashesForShard(key, multihashesOf(await core.indexRepo.get(key)))
  return true
}
