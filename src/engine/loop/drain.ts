import type { ShardKey } from '../../base/types.js'
import type { Shard } from '../shard/shard.js'
import type { Waiter } from '../shard/waiter.js'

/**
 * An effect (result, trace, job start) and the shard whose durable state it reports, if one.
 * A class, not an object literal: V8 pretenures a literal's allocation site once its objects
 * survive (effects waiting for commits during a burst of registers do), and from then on every
 * effect of the hot path would be allocated in the old generation (docs/PERFORMANCE.md).
 */
export class Effect {
  constructor (
    readonly run: () => void,
    /** Undefined: it may depend on any write made so far (e.g. a GC run over many shards). */
    readonly shard: Shard | undefined,
    /** The caller `run` delivers a result to, if any: it is told otherwise when the write is refused. */
    readonly waiter: Waiter | undefined
  ) {}
}

/**
 * What one drain of the loop accumulates: the shards whose restart form changed (written in
 * the next group commit) and the effects to release. An effect waits for the commit of its
 * shard's writes — this drain's or an earlier one still in flight — and for nothing else.
 */
export class Drain {
  readonly dirty = new Set<Shard>()
  readonly deleted = new Set<Shard>()
  /** Tombstones to set (a destroy commits) or clear (its cleanup is done); the last word wins. */
  readonly tombstones = new Map<ShardKey, boolean>()
  readonly effects: Effect[] = []

  markDirty (shard: Shard): void { this.dirty.add(shard) }

  markDeleted (shard: Shard): void {
    this.dirty.delete(shard)
    this.deleted.add(shard)
  }

  /** Runs `run` once `shard`'s state as of this drain is durable (at once if nothing of it is pending). */
  afterCommit (run: () => void, shard?: Shard, waiter?: Waiter): void { this.effects.push(new Effect(run, shard, waiter)) }

  get hasWrites (): boolean { return this.dirty.size > 0 || this.deleted.size > 0 || this.tombstones.size > 0 }
}
