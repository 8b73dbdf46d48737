/**
 * The single event loop. One writer: only tasks processed here mutate shard state.
 *
 * Each drain takes tasks — the internal queue (follow-ups the loop staged) strictly first,
 * then completions and external calls alternately — and runs each through `process`. Shards
 * whose restart form changed go into the next group commit (ONE batch, one commit in flight
 * at a time; drains processed meanwhile add to the next). An effect (result, trace, job start)
 * runs once its shard's writes are durable: at the end of its drain when none is pending (an
 * acquire or release of an available shard), else after that commit. So a delivered result
 * always describes durable state, and the loop never waits for the disk.
 */
import { Queue } from './queue.js'
import { Drain } from './drain.js'
import { Commit } from './commit.js'
import type { Shard } from '../shard/shard.js'
import type { ShardKey } from '../../base/types.js'
import { isControl, type OpTask, type Task } from './tasks.js'
import type { BatchOutcome, StateStore } from '../../storage/state/state-store.js'
import type { ErrorReporter, Waiter } from '../shard/waiter.js'

export interface LoopHooks {
  process: (task: OpTask, tx: Drain) => void
  store: StateStore
  report: ErrorReporter
  /** Tasks left queued when the loop stops: their waiters get StoreClosedError. */
  abandon: (task: Task) => void
  /**
   * The store refused the shard's record: another node holds its key. The shard's effects
   * waiting for that commit are dropped; `waiters` are the callers they would have answered.
   */
  refused: (shard: Shard, waiters: Waiter[]) => void
}

/** Bounds one drain so a flood of calls cannot starve result delivery. */
const MAX_TASKS_PER_DRAIN = 8192
/** A failed commit is tried again after this long (doubling per failure, up to the max) unless a drain writes first. */
const RETRY_MIN_MS = 50
const RETRY_MAX_MS = 5000

export class EventLoop {
  private readonly internal = new Queue<Task>()
  private readonly completion = new Queue<Task>()
  private readonly external = new Queue<Task>()
  private wake: (() => void) | undefined
  private stopping = false
  private preferCompletion = false
  private running: Promise<void> | undefined
  /** The commit being written, if any. */
  private writing: Commit | undefined
  /** What the drains since `writing` started will write next. */
  private next = new Commit()
  /** The latest commit holding each shard's pending writes. */
  private readonly pending = new Map<Shard, Commit>()
  private lastWriteFailed = false
  private failures = 0
  private retryTimer: NodeJS.Timeout | undefined

  constructor (private readonly hooks: LoopHooks) {}

  start (): void {
    this.running ??= this.run()
  }

  /** Follow-up staged by the loop itself: runs before any other queued task. */
  stage (task: Task): void { this.push(this.internal, task) }
  /** Completion of an async job. */
  complete (task: Task): void { this.push(this.completion, task) }
  /** A public API call. */
  submit (task: Task): void { this.push(this.external, task) }

  /** Finishes the drain in progress, then stops; tasks still queued are abandoned. */
  async stop (): Promise<void> {
    this.stopping = true
    clearTimeout(this.retryTimer)
    this.kick()
    await this.running
    for (const q of [this.internal, this.completion, this.external]) {
      for (const task of q.drain()) this.hooks.abandon(task)
    }
  }

  private push (queue: Queue<Task>, task: Task): void {
    if (this.stopping) {
      this.hooks.abandon(task)
      return
    }
    queue.push(task)
    this.kick()
  }

  private kick (): void {
    const wake = this.wake
    if (wake !== undefined) {
      this.wake = undefined
      wake()
    }
  }

  private take (): Task | undefined {
    if (this.internal.length > 0) return this.internal.shift()
    // Neither completions nor callers may starve the other.
    this.preferCompletion = !this.preferCompletion
    const [a, b] = this.preferCompletion ? [this.completion, this.external] : [this.external, this.completion]
    return a.shift() ?? b.shift()
  }

  private get idle (): boolean {
    return this.internal.length === 0 && this.completion.length === 0 && this.external.length === 0
  }

  private async run (): Promise<void> {
    for (;;) {
      if (this.idle) {
        if (this.stopping && this.writing === undefined) {
          if (!this.next.hasWrites || this.lastWriteFailed) {
            // Writes that keep failing are given up at stop; their results still go out.
            for (const effect of this.next.effects.splice(0)) this.runEffect(effect.run)
            return
          }
          this.flush()
        }
        await new Promise<void>((resolve) => { this.wake = resolve })
        continue
      }
      const tx = new Drain()
      for (let n = 0; n < MAX_TASKS_PER_DRAIN; n++) {
        const task = this.take()
        if (task === undefined) break
        try {
          if (isControl(task)) task.control(tx)
          else this.hooks.process(task, tx)
        } catch (err) {
          // A bug in one task must not take the store down with it.
          this.hooks.report(err, 'event loop task failed')
        }
      }
      this.settle(tx)
      // The loop awaits no commit: let I/O (commits finishing, jobs) run before the next drain.
      await new Promise<void>((resolve) => { setImmediate(resolve) })
    }
  }

  /** Queues the drain's writes and routes each effect: now, or after the commit it depends on. */
  private settle (tx: Drain): void {
    const next = this.next
    if (tx.hasWrites) {
      next.absorb(tx)
      for (const shard of tx.dirty) this.pending.set(shard, next)
      for (const shard of tx.deleted) this.pending.set(shard, next)
    }
    for (const effect of tx.effects) {
      const commit = effect.shard !== undefined ? this.pending.get(effect.shard) : (next.hasWrites ? next : this.writing)
      if (commit !== undefined) commit.effects.push(effect)
      else this.runEffect(effect.run)
    }
    this.flush()
  }

  /** Starts writing `next` unless a commit is already being written. */
  private flush (): void {
    if (this.writing !== undefined || !this.next.hasWrites) return
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    const commit = this.next
    this.writing = commit
    this.next = new Commit()
    this.hooks.store.writeBatch(Array.from(commit.dirty, (s) => s.record()), commit.deletes, commit.tombstones).then(
      (outcome) => { this.committed(commit, undefined, outcome) },
      (err: unknown) => { this.committed(commit, err, undefined) })
  }

  private committed (commit: Commit, err: unknown, outcome: BatchOutcome | void): void {
    this.writing = undefined
    this.lastWriteFailed = err !== undefined
    if (err !== undefined) {
      // Retried with the next drain's batch, or after a pause if none comes first (not at once:
      // a failing disk or an unreachable database would spin). The effects wait for the retry:
      // no result is delivered for a write that did not commit.
      this.hooks.report(err, 'persisting shard state failed')
      this.next.retry(commit)
      for (const shard of commit.shards) if (this.pending.get(shard) === commit) this.pending.set(shard, this.next)
      this.failures++
      if (!this.stopping) {
        const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.failures - 1, 16))
        clearTimeout(this.retryTimer)
        this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.flush() }, delay)
      }
      this.kick()
      return
    }
    this.failures = 0
    if (outcome !== undefined && outcome.refused.length > 0) this.withdrawRefused(commit, outcome.refused)
    for (const shard of commit.shards) if (this.pending.get(shard) === commit) this.pending.delete(shard)
    for (const effect of commit.effects) this.runEffect(effect.run)
    this.flush()
    this.kick()
  }

  /** Shards whose record the store refused: their effects here are dropped and their callers told. */
  private withdrawRefused (commit: Commit, keys: ShardKey[]): void {
    const refused = new Set(keys)
    for (const shard of [...commit.dirty]) {
      if (!refused.has(shard.key)) continue
      const waiters: Waiter[] = []
      for (const effect of commit.withdraw(shard)) if (effect.waiter !== undefined) waiters.push(effect.waiter)
      if (this.pending.get(shard) === commit) this.pending.delete(shard)
      this.hooks.refused(shard, waiters)
    }
  }

  private runEffect (run: () => void): void {
    try {
      run()
    } catch (err) {
      this.hooks.report(err, 'post-commit effect failed')
    }
  }
}
