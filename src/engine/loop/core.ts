/**
 * What the interpreter and the jobs share: the shard map and the services behind the seams.
 * Built once by DAGStore.start(); only the loop mutates `shards` and `counts`.
 */
import type { EventLoop } from './loop.js'
import type { EventBuffer } from '../observe/event-buffer.js'
import type { Shard } from '../shard/shard.js'
import type { ShardMap } from '../shard/shard-map.js'
import type { ErrorReporter } from '../shard/waiter.js'
import type { ShardKey, ShardResult, ShardState, Trace } from '../../base/types.js'
import type { FullIndexRepo, ShardIndexer, TopLevelIndex, VerifyHashes } from '../../base/index-types.js'
import type { Transients } from '../../storage/transients/transients.js'
import type { MountRegistry } from '../../storage/mount/registry.js'
import type { Mount } from '../../base/mount-types.js'
import type { ReaderPool } from '../accessor/reader-pool.js'
import type { StoreMetrics } from '../observe/metrics.js'
import type { Tombstones } from './tombstones.js'
import type { SectionCache } from '../../storage/remote/section-cache.js'
import type { CopyPolicy } from '../../base/types.js'

interface Throttle { add: <T>(fn: () => Promise<T>) => Promise<T> }

export interface Core {
  /** Keys kept in order too, for paged listings. */
  readonly shards: ShardMap
  readonly counts: Record<ShardState, number>
  readonly loop: EventLoop
  readonly traces: EventBuffer<Trace>
  readonly failures: EventBuffer<ShardResult>
  readonly transients: Transients
  readonly indexRepo: FullIndexRepo
  readonly topLevelIndex: TopLevelIndex
  readonly indexer: ShardIndexer
  readonly verifyHashes: VerifyHashes
  readonly indexThrottle: Throttle | undefined
  readonly mounts: MountRegistry
  /** Open shard readers shared by accessors; dropped whenever a shard's bytes may change. */
  readonly readers: ReaderPool
  readonly report: ErrorReporter
  readonly metrics: StoreMetrics
  readonly graceMs: number
  /** The section cache of shards read in place (one budget per store). */
  readonly sections: SectionCache
  /** The store's `remote.copy`; a shard's own policy overrides it. */
  readonly copyPolicy: CopyPolicy
  /** True once close() began: aborted jobs then report nothing. */
  closing: boolean
  /** Per-key cleanups (destroy, GC) that later work on the same key must wait for. */
  readonly barriers: Map<ShardKey, Promise<void>>
  /** Destroys whose cleanup is not finished: their tombstones. */
  readonly tombstones: Tombstones
}

export function mountOf (core: Core, shard: Shard): Mount {
  // After a restart the mount is re-created from its URL on first use, not at load: a
  // million idle shards should not each hold a mount object.
  shard.mount ??= core.mounts.instantiate(shard.url)
  return shard.mount
}

/** Whether the blocks of a shard behind `mount` are hashed while it is indexed. */
export function verifiesHashes (core: Core, mount: Mount): boolean {
  return core.verifyHashes === 'remote' ? mount.info().kind === 'remote' : core.verifyHashes
}

export async function awaitBarrier (core: Core, key: ShardKey): Promise<void> {
  for (;;) {
    const barrier = core.barriers.get(key)
    if (barrier === undefined) return
    await barrier
  }
}

/** Runs `cleanup` once the current drain is durable; later work on `key` waits for it. */
export function raiseBarrier (core: Core, key: ShardKey, cleanup: () => Promise<void>): { start: () => Promise<void> } {
  let release!: () => void
  const done = new Promise<void>((resolve) => { release = resolve })
  const previous = core.barriers.get(key)
  core.barriers.set(key, done)
  return {
    start: async () => {
      try {
        if (previous !== undefined) await previous
        await cleanup()
      } finally {
        if (core.barriers.get(key) === done) core.barriers.delete(key)
        release()
      }
    }
  }
}
