import type { ShardKey } from '../../base/types.js'
import type { Shard } from '../shard/shard.js'

/**
 * What one drain of the loop accumulates: the shards to persist in one batch (group commit)
 * and the effects (results, traces, job starts) released only once that batch is durable.
 */
export class Drain {
  readonly dirty = new Set<Shard>()
  readonly deletes = new Set<ShardKey>()
  /** Tombstones to set (a destroy commits) or clear (its cleanup is done); the last word wins. */
  readonly tombstones = new Map<ShardKey, boolean>()
  readonly effects: Array<() => void> = []
  /** Set when the batch could not be written: results of this drain report it. */
  persistError: Error | undefined = undefined

  markDirty (shard: Shard): void { this.dirty.add(shard) }

  markDeleted (shard: Shard): void {
    this.dirty.delete(shard)
    this.deletes.add(shard.key)
  }

  afterCommit (effect: () => void): void { this.effects.push(effect) }

  get hasWrites (): boolean { return this.dirty.size > 0 || this.deletes.size > 0 || this.tombstones.size > 0 }
}
