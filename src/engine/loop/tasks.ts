import type { OpType, ShardKey } from '../../base/types.js'
import type { Shard } from '../shard/shard.js'
import type { Waiter } from '../shard/waiter.js'
import type { Drain } from './drain.js'

/** One op for one shard: the unit the machine transitions on. */
export interface OpTask {
  readonly op: OpType
  readonly key: ShardKey
  /** The shard generation this task belongs to; a task for a destroyed generation is dropped. */
  readonly shard?: Shard
  readonly waiter?: Waiter
  /** Completions of a job carry its id; a completion of a superseded job is dropped. */
  readonly jobId?: number
  readonly error?: Error
  /** makeAvailable/fail from a job: the transient the job left behind (null: none). */
  readonly transient?: string | null
  /** makeAvailable from a job: whether the shard is read in place (no transient). */
  readonly inPlace?: boolean
  /** fail from an accessor open: the shard epoch it read; dropped if recovery has moved on since. */
  readonly epoch?: number
  /** register: initialize even if the shard is lazy (re-registration of interrupted work at start). */
  readonly eager?: boolean
  /** destroy: wait for the shard's accessors instead of refusing a shard in use. */
  readonly drain?: boolean
}

/**
 * The task of an acquire or a release, the hot path's calls. A class, not an object literal:
 * V8 pretenures a literal's allocation site once its objects survive (tasks queued behind a
 * burst do), and every later task of that site would then be allocated in the old generation.
 */
export class CallTask implements OpTask {
  constructor (
    readonly op: 'acquire' | 'release',
    readonly key: ShardKey,
    readonly shard: Shard,
    readonly waiter: Waiter
  ) {}
}

/** Loop-exclusive bookkeeping that is not a shard op (GC, caching): runs in the loop, no trace. */
export interface ControlTask {
  readonly control: (tx: Drain) => void
  /** Called instead of `control` when the store closes first. */
  readonly abandon?: () => void
}

export type Task = OpTask | ControlTask

export function isControl (task: Task): task is ControlTask {
  return (task as ControlTask).control !== undefined
}
