import type { ShardKey } from '../../base/types.js'
import type { Shard } from '../shard/shard.js'
import type { Drain, Effect } from './drain.js'

/**
 * One group commit: the restart forms of the shards written by one or more drains, and the
 * effects that wait for them. Drains processed while an earlier commit is being written add
 * to the next one, so the loop never waits for the disk and a burst still costs one fsync.
 */
export class Commit {
  readonly dirty = new Set<Shard>()
  readonly deletes = new Set<ShardKey>()
  /** Destroys' tombstones to set (true) or clear (false), kept apart from the records. */
  readonly tombstones = new Map<ShardKey, boolean>()
  /** Every shard written or deleted here: its later effects wait for this commit. */
  readonly shards = new Set<Shard>()
  effects: Effect[] = []

  /** Takes a drain's writes: they are newer than everything already here. */
  absorb (tx: Drain): void {
    // Deletes before puts: a key destroyed and registered again within one commit ends up present.
    for (const shard of tx.deleted) {
      this.dirty.delete(shard)
      this.deletes.add(shard.key)
      this.shards.add(shard)
    }
    for (const shard of tx.dirty) this.put(shard)
    for (const [key, set] of tx.tombstones) this.tombstones.set(key, set)
  }

  /**
   * Takes back the writes of an older commit that failed, to retry them with this one, and the
   * effects that wait for them (ahead of this commit's own, which are newer). What this commit
   * did to a shard since is newer and wins; the older deletes still run first.
   */
  retry (older: Commit): void {
    for (const key of older.deletes) this.deletes.add(key)
    for (const shard of older.dirty) if (!this.shards.has(shard)) this.put(shard)
    for (const shard of older.shards) this.shards.add(shard)
    for (const [key, set] of older.tombstones) if (!this.tombstones.has(key)) this.tombstones.set(key, set)
    this.effects = older.effects.concat(this.effects)
  }

  /**
   * Takes out a shard whose put the store refused (its key belongs to another node): its write
   * and the effects waiting for it here. Returns those effects.
   */
  withdraw (shard: Shard): Effect[] {
    this.dirty.delete(shard)
    this.shards.delete(shard)
    const kept: Effect[] = []
    const withdrawn: Effect[] = []
    for (const effect of this.effects) (effect.shard === shard ? withdrawn : kept).push(effect)
    this.effects = kept
    return withdrawn
  }

  private put (shard: Shard): void {
    this.dirty.add(shard)
    this.shards.add(shard)
  }

  get hasWrites (): boolean { return this.dirty.size > 0 || this.deletes.size > 0 || this.tombstones.size > 0 }
}
