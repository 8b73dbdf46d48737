/**
 * The in-memory shard: what the loop (and only the loop) mutates.
 *
 * Kept small on purpose (≤ 400 B per shard with a million registered): rarely used fields
 * live in `extra`, which exists only while a shard has waiters, a job or GC bookkeeping.
 */
import type { Mount } from '../../base/mount-types.js'
import { COPY_POLICIES, type CopyPolicy, type ShardKey, type ShardState, type ShardInfo, type ShardProgress } from '../../base/types.js'
import type { ShardRecord } from '../../storage/state/record.js'
import type { Waiter } from './waiter.js'
import { codeOf } from '../../base/errors/inspect.js'

/** A CARv2's payload is a window of the file; a CARv1's starts at 0 and has no set size. */
export interface PayloadSpan { readonly offset: number, readonly size?: number }

export interface Job {
  readonly id: number
  readonly controller: AbortController
  /** Settles when the job's work has finished (set when it starts, after the drain commits). */
  done?: Promise<void>
  /** How far the job has read the shard's CAR, once it reads it (describeShard shows it). */
  progress?: ShardProgress
}

export interface ShardExtra {
  register?: Waiter[] | undefined
  recover?: Waiter | undefined
  parked?: Waiter[] | undefined
  /** Destroys waiting for the accessors to close (destroy with drain); aborted ones are skipped. */
  drain?: Waiter[] | undefined
  job?: Job | undefined
  /** Set by recoverOnStart 'on-acquire'; consumed by the first acquire. */
  recoverOnAcquire?: boolean
  /** ms timestamp of the last release to zero refs (GC grace). */
  releasedAt?: number
}

/** What a restart makes of a state (docs/CONTRACT.md): nobody holds a reference after a restart. */
export function restartState (state: ShardState): ShardState {
  return state === 'serving' ? 'available' : state
}

const LAZY = 1
const PLACED = 2
const IN_PLACE = 4
const COPY_SHIFT = 3
const EPOCH_SHIFT = 5
const EPOCH_LOW = (1 << EPOCH_SHIFT) - 1
/** The epoch's bits: the whole stays a small integer (no heap number). */
const EPOCH_MAX = (1 << 25) - 1

export class Shard {
  state: ShardState
  refs = 0
  error: Error | undefined = undefined
  /** Path of a complete transient copy, when one exists. */
  transient: string | undefined
  /** The mount the caller registered, or undefined until instantiated from `url` (after a restart). */
  mount: Mount | undefined
  extra: ShardExtra | undefined = undefined
  /**
   * lazy, inPlace, copy and the epoch packed in one small integer: four fields would cost 12
   * bytes more per shard, and a million shards must fit (docs/PERFORMANCE.md, bench/scale).
   */
  private bits: number

  constructor (
    readonly key: ShardKey,
    readonly url: string,
    lazy: boolean,
    state: ShardState,
    mount: Mount | undefined,
    transient: string | undefined,
    /** The shard's own copy policy (RegisterOpts.copy), persisted with it. */
    copy: CopyPolicy | undefined = undefined
  ) {
    this.state = state
    this.mount = mount
    this.transient = transient
    this.bits = (lazy ? LAZY : 0) | (copy === undefined ? 0 : (COPY_POLICIES.indexOf(copy) + 1) << COPY_SHIFT)
  }

  /**
   * Bumped when recovery starts replacing the shard's bytes: failures seen on older bytes are
   * stale. Compared for equality only, so it may wrap.
   */
  get epoch (): number { return this.bits >>> EPOCH_SHIFT }

  set epoch (value: number) {
    this.bits = (this.bits & EPOCH_LOW) | ((value & EPOCH_MAX) << EPOCH_SHIFT)
  }

  /** Registered lazily (indexed on first use). */
  get lazy (): boolean { return (this.bits & LAZY) !== 0 }

  /** The shard's own copy policy, if it was registered with one. */
  get copy (): CopyPolicy | undefined {
    const n = (this.bits >> COPY_SHIFT) & 3
    return n === 0 ? undefined : COPY_POLICIES[n - 1]
  }

  /** Read by ranged requests to the origin (no transient), once decided; undefined until then. */
  get inPlace (): boolean | undefined {
    return (this.bits & PLACED) === 0 ? undefined : (this.bits & IN_PLACE) !== 0
  }

  set inPlace (value: boolean | undefined) {
    this.bits &= ~(PLACED | IN_PLACE)
    if (value !== undefined) this.bits |= PLACED | (value ? IN_PLACE : 0)
  }

  x (): ShardExtra {
    this.extra ??= {}
    return this.extra
  }

  info (): ShardInfo {
    const info: ShardInfo = { state: this.state, refs: this.refs }
    if (this.error !== undefined) info.error = this.error
    if (this.draining()) info.draining = true
    return info
  }

  /** A destroy whose caller has not given up waits for the accessors to close. */
  draining (): boolean {
    const drain = this.extra?.drain
    if (drain === undefined) return false
    for (const w of drain) if (!w.done) return true
    return false
  }

  /** Live (not aborted) parked acquirers. */
  liveParked (): number {
    let n = 0
    for (const w of this.extra?.parked ?? []) if (!w.done) n++
    return n
  }

  record (): ShardRecord {
    const r: ShardRecord = { key: this.key, url: this.url, state: restartState(this.state), lazy: this.lazy }
    if (this.transient !== undefined) r.transient = this.transient
    if (this.copy !== undefined) r.copy = this.copy
    if (this.inPlace === true) r.inPlace = true
    if (this.error !== undefined) {
      r.error = this.error.message
      const code = codeOf(this.error)
      if (code !== undefined) r.errorCode = code
    }
    return r
  }

  /** Drops `extra` once nothing in it matters, so idle shards stay small. */
  compact (): void {
    const e = this.extra
    if (e === undefined) return
    if (e.drain !== undefined && !this.draining()) e.drain = undefined
    if ((e.register?.length ?? 0) === 0 && e.recover === undefined && (e.parked?.length ?? 0) === 0 && e.drain === undefined &&
      e.job === undefined && e.recoverOnAcquire !== true && e.releasedAt === undefined) {
      this.extra = undefined
    }
  }
}
