/**
 * The single event loop. One writer: only tasks processed here mutate shard state.
 *
 * Each drain takes tasks — the internal queue (follow-ups the loop staged) strictly first,
 * then completions and external calls alternately — runs each through `process`, writes
 * every shard that changed in ONE batch (group commit), and only then runs the drain's
 * effects: results, traces, job starts. So a delivered result always describes durable state.
 */
import { Queue } from './queue.js'
import { Drain } from './drain.js'
import { isControl, type OpTask, type Task } from './tasks.js'
import type { StateStore } from '../../storage/state/state-store.js'
import type { ErrorReporter } from '../shard/waiter.js'

export interface LoopHooks {
  process: (task: OpTask, tx: Drain) => void
  store: StateStore
  report: ErrorReporter
  /** Tasks left queued when the loop stops: their waiters get StoreClosedError. */
  abandon: (task: Task) => void
}

/** Bounds one drain so a flood of calls cannot starve result delivery. */
const MAX_TASKS_PER_DRAIN = 8192

export class EventLoop {
  private readonly internal = new Queue<Task>()
  private readonly completion = new Queue<Task>()
  private readonly external = new Queue<Task>()
  private wake: (() => void) | undefined
  private stopping = false
  private preferCompletion = false
  private running: Promise<void> | undefined
  /** Shards whose write failed: retried with the next batch. */
  private retry: Drain | undefined

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

  private next (): Task | undefined {
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
        if (this.stopping) return
        await new Promise<void>((resolve) => { this.wake = resolve })
        continue
      }
      const tx = new Drain()
      if (this.retry !== undefined) {
        for (const s of this.retry.dirty) tx.markDirty(s)
        for (const k of this.retry.deletes) tx.deletes.add(k)
        for (const [k, set] of this.retry.tombstones) tx.tombstones.set(k, set)
        this.retry = undefined
      }
      for (let n = 0; n < MAX_TASKS_PER_DRAIN; n++) {
        const task = this.next()
        if (task === undefined) break
        try {
          if (isControl(task)) task.control(tx)
          else this.hooks.process(task, tx)
        } catch (err) {
          // A bug in one task must not take the store down with it.
          this.hooks.report(err, 'event loop task failed')
        }
      }
      if (tx.hasWrites) {
        try {
          await this.hooks.store.writeBatch(Array.from(tx.dirty, (s) => s.record()), tx.deletes, tx.tombstones)
        } catch (err) {
          tx.persistError = err as Error
          this.retry = tx
          this.hooks.report(err, 'persisting shard state failed')
        }
      }
      for (const effect of tx.effects) {
        try {
          effect()
        } catch (err) {
          this.hooks.report(err, 'post-commit effect failed')
        }
      }
      // A drain that wrote nothing awaited nothing: let timers and I/O run before the next.
      if (!tx.hasWrites) await new Promise<void>((resolve) => { setImmediate(resolve) })
    }
  }
}
