/**
 * Executes the shard machine. For each op task: compute the facts, look up the compiled
 * transition, run its actions in order, record the new state, mark the shard for the
 * drain's batch and stage its trace. The transitions themselves live only in
 * src/engine/shard/machine.ts; this file says what each action name *does*.
 */
import { transitionTable, factsMask, type TableCell } from '../shard/table.js'
import type { OpOutcome } from '../observe/metrics.js'
import type { ActionName } from '../shard/machine.js'
import { restartState, type Shard } from '../shard/shard.js'
import type { Waiter } from '../shard/waiter.js'
import type { Drain } from './drain.js'
import type { OpTask } from './tasks.js'
import { raiseBarrier, type Core } from './core.js'
import type { Jobs } from './jobs.js'
import { endCleanup, removeShardData } from './cleanup.js'
import { forgetOrigin } from './placement.js'
import type { ShardState } from '../../base/types.js'
import {
  ShardDrainingError, ShardErroredError, ShardInitializationFailedError, ShardInUseError,
  ShardExistsError, ShardNotErroredError, ShardUnknownError
} from '../../base/errors.js'

interface Step { shard: Shard, task: OpTask, tx: Drain }

const REJECTIONS: ReadonlySet<ActionName> = new Set(['rejectNotErrored', 'rejectErrored', 'rejectInUse', 'rejectDraining'])
const outcomes = new WeakMap<TableCell, OpOutcome>()

/** Whether the caller got a refusal; worked out once per table cell. */
function outcomeOf (cell: TableCell): OpOutcome {
  let outcome = outcomes.get(cell)
  if (outcome === undefined) {
    outcome = cell.actions.some((a) => REJECTIONS.has(a)) ? 'rejected' : 'applied'
    outcomes.set(cell, outcome)
  }
  return outcome
}

type ActionImpl = (step: Step) => void

export class Interpreter {
  private readonly table = transitionTable()
  private readonly actions: Record<ActionName, ActionImpl>
  /** Filled by process() before any action runs. */
  private readonly step = { shard: undefined, task: undefined, tx: undefined } as unknown as Step

  constructor (private readonly core: Core, private readonly jobs: Jobs) {
    this.actions = this.defineActions()
  }

  readonly process = (task: OpTask, tx: Drain): void => {
    const { core } = this
    const shard = core.shards.get(task.key)
    if (shard === undefined || (task.shard !== undefined && task.shard !== shard)) {
      // Work for a destroyed (or never registered) shard: no transition, no trace.
      const waiter = task.waiter
      if (waiter !== undefined) {
        tx.afterCommit(() => {
          waiter.deliver(task.op === 'release'
            ? { key: task.key }
            : { key: task.key, error: new ShardUnknownError(`shard ${JSON.stringify(task.key)} not found`) })
        })
      }
      return
    }
    if (task.jobId !== undefined) {
      // Only the shard's current job may complete it.
      if (shard.extra?.job?.id !== task.jobId) return
      shard.extra.job = undefined
      if (task.transient !== undefined) shard.transient = task.transient ?? undefined
      if (task.inPlace !== undefined) shard.inPlace = task.inPlace
    }

    // An accessor that failed on bytes a recovery has since replaced says nothing about the new ones.
    if (task.epoch !== undefined && task.epoch !== shard.epoch) return

    const stateBefore = shard.state
    const errorBefore = shard.error
    const transientBefore = shard.transient
    const refs = shard.refs
    const extra = shard.extra
    const cell = this.table.lookup(shard.state, task.op, factsMask(
      shard.lazy && task.eager !== true,
      refs === 1,
      refs > 0,
      extra !== undefined && task.op === 'makeAvailable' && shard.liveParked() > 0,
      extra?.recoverOnAcquire === true,
      task.op === 'destroy' ? task.drain === true : extra !== undefined && shard.draining()
    ))
    // One step object, reused: actions read it synchronously and never keep it.
    const step = this.step
    step.shard = shard
    step.task = task
    step.tx = tx
    const actions = cell.actions
    for (let i = 0; i < actions.length; i++) this.actions[actions[i] as ActionName](step)
    core.metrics.op(task.op, outcomeOf(cell))

    const destroyed = core.shards.get(shard.key) !== shard
    if (!destroyed) {
      if (cell.next !== stateBefore) this.setState(shard, cell.next)
      // Register creates the record; every other op writes it only if its restart form changed
      // (serving is persisted as available: acquire and release of an available shard write nothing).
      if (task.op === 'register' || restartState(shard.state) !== restartState(stateBefore) ||
        shard.error !== errorBefore || shard.transient !== transientBefore) tx.markDirty(shard)
      shard.compact()
    }
    if (task.op === 'release' && task.waiter !== undefined) {
      const waiter = task.waiter
      tx.afterCommit(() => { waiter.deliver({ key: shard.key }) }, shard, waiter)
    }
    // Nobody subscribed: the trace would be dropped on publish, so none is built (hot path).
    if (core.traces.wanted) {
      const trace = { key: shard.key, op: task.op, after: shard.info() }
      tx.afterCommit(() => { core.traces.publish(trace) }, shard)
    }
  }

  private setState (shard: Shard, next: ShardState): void {
    this.core.counts[shard.state]--
    this.core.counts[next]++
    shard.state = next
  }

  private reply (step: Step, waiter: Waiter | undefined, error?: Error): void {
    if (waiter === undefined) return
    const key = step.shard.key
    step.tx.afterCommit(() => { waiter.deliver(error === undefined ? { key } : { key, error }) }, step.shard, waiter)
  }

  /**
   * The store refused the shard's record: its key is held by another node (a register that lost
   * the race for it, decided by the database). The shard leaves memory as if never registered,
   * and every caller waiting on it learns that the key exists.
   */
  readonly refuse = (shard: Shard, waiters: Waiter[]): void => {
    const { core } = this
    const held = new ShardExistsError(`${JSON.stringify(shard.key)}: shard already exists (registered on another node)`)
    if (core.shards.get(shard.key) === shard) {
      core.shards.delete(shard.key)
      core.counts[shard.state]--
      core.readers.invalidate(shard.key)
    }
    const extra = shard.extra
    shard.extra = undefined
    extra?.job?.controller.abort(held)
    const told = [...waiters, ...extra?.register ?? [], ...extra?.parked ?? [], ...extra?.drain ?? []]
    if (extra?.recover !== undefined) told.push(extra.recover)
    for (const w of told) w.deliver({ key: shard.key, error: held })
  }

  private defineActions (): Record<ActionName, ActionImpl> {
    const { core, jobs } = this
    return {
      replyOk: (s) => { this.reply(s, s.task.waiter) },
      holdRegisterWaiter: ({ shard, task }) => {
        if (task.waiter !== undefined) (shard.x().register ??= []).push(task.waiter)
      },
      stageInitialize: ({ shard }) => { core.loop.stage({ op: 'initialize', key: shard.key, shard }) },
      startInitialize: ({ shard, tx }) => {
        // Only an eager register's caller may cancel initialization; acquirers share it.
        const linked: AbortSignal[] = []
        for (const w of shard.extra?.register ?? []) if (w.signal !== undefined) linked.push(w.signal)
        jobs.startIndexing(shard, tx, 'initialize', linked)
      },
      parkAcquirer: ({ shard, task }) => {
        if (task.waiter !== undefined) (shard.x().parked ??= []).push(task.waiter)
      },
      stageRecover: ({ shard }) => { core.loop.stage({ op: 'recover', key: shard.key, shard }) },
      consumeRecoverOnAcquire: ({ shard }) => { shard.x().recoverOnAcquire = false },
      clearError: ({ shard }) => { shard.error = undefined },
      resolveWaiters: (s) => {
        const extra = s.shard.extra
        if (extra === undefined) return
        for (const w of extra.register ?? []) this.reply(s, w)
        this.reply(s, extra.recover)
        extra.register = undefined
        extra.recover = undefined
      },
      serveParked: ({ shard, tx }) => {
        const parked = shard.extra?.parked ?? []
        if (shard.extra !== undefined) shard.extra.parked = undefined
        for (const w of parked) {
          if (w.done) continue
          shard.refs++
          tx.afterCommit(() => { jobs.openAccessor(shard, w) }, shard, w)
        }
      },
      incRef: ({ shard }) => {
        shard.refs++
        if (shard.transient !== undefined) core.transients.budget?.touch(shard.transient)
      },
      openAccessor: ({ shard, task, tx }) => {
        const waiter = task.waiter
        if (waiter === undefined) return
        tx.afterCommit(() => { jobs.openAccessor(shard, waiter) }, shard, waiter)
      },
      decRef: ({ shard }) => { shard.refs-- },
      markReleased: ({ shard }) => {
        // Only GC grace reads it; with no grace, idle shards stay small.
        if (core.graceMs > 0) shard.x().releasedAt = Date.now()
        if (shard.transient !== undefined) core.transients.budget?.touch(shard.transient)
      },
      recordError: ({ shard, task }) => {
        shard.error = task.error ?? new Error('shard failed')
        core.readers.invalidate(shard.key)
      },
      failWaiters: (s) => {
        const { shard } = s
        const extra = shard.extra
        if (extra === undefined) return
        const cause = shard.error
        const why = cause?.message ?? 'unknown error'
        for (const w of extra.register ?? []) this.reply(s, w, new ShardInitializationFailedError(`failed to register shard: ${why}`, { cause }))
        this.reply(s, extra.recover, new ShardInitializationFailedError(`failed to recover shard: ${why}`, { cause }))
        for (const w of extra.parked ?? []) this.reply(s, w, new ShardErroredError(`failed to acquire shard: ${why}`, { cause }))
        extra.register = undefined
        extra.recover = undefined
        extra.parked = undefined
      },
      publishFailure: ({ shard, tx }) => {
        const result = { key: shard.key, error: shard.error ?? new Error('shard failed') }
        tx.afterCommit(() => { core.failures.publish(result) }, shard)
      },
      rejectNotErrored: (s) => {
        this.reply(s, s.task.waiter, new ShardNotErroredError(`refused to recover shard in state ${s.shard.state}: only errored shards can be recovered`))
      },
      rejectErrored: (s) => {
        const cause = s.shard.error
        this.reply(s, s.task.waiter, new ShardErroredError(`shard is in errored state: ${cause?.message ?? 'unknown error'}`, { cause }))
      },
      rejectInUse: (s) => {
        this.reply(s, s.task.waiter, new ShardInUseError(`failed to destroy shard: ${s.shard.refs} active references`))
      },
      rejectDraining: (s) => {
        this.reply(s, s.task.waiter, new ShardDrainingError(`shard ${JSON.stringify(s.shard.key)} is being destroyed: it waits for its ${s.shard.refs} accessor(s) to close`))
      },
      startDrain: ({ shard, task }) => {
        if (task.waiter !== undefined) (shard.x().drain ??= []).push(task.waiter)
      },
      stageDestroy: ({ shard }) => { core.loop.stage({ op: 'destroy', key: shard.key, shard, drain: true }) },
      holdRecoverWaiter: ({ shard, task }) => { shard.x().recover = task.waiter },
      startRecover: ({ shard, tx }) => {
        // Recovery re-learns the origin: whether it honours Range, and its validator.
        forgetOrigin(shard)
        shard.inPlace = undefined
        shard.epoch++
        core.readers.invalidate(shard.key)
        jobs.startIndexing(shard, tx, 'recover', [])
      },
      abortJob: ({ shard }) => {
        // The job object stays so destroy can wait for it before cleaning up.
        shard.extra?.job?.controller.abort(new ShardUnknownError('shard destroyed'))
      },
      destroy: (s) => {
        const { shard, tx, task } = s
        core.shards.delete(shard.key)
        core.counts[shard.state]--
        core.readers.invalidate(shard.key)
        tx.markDeleted(shard)
        const extra = shard.extra
        const gone = new ShardUnknownError(`shard ${JSON.stringify(shard.key)} was destroyed`)
        for (const w of extra?.register ?? []) this.reply(s, w, gone)
        this.reply(s, extra?.recover, gone)
        for (const w of extra?.parked ?? []) this.reply(s, w, gone)
        // The destroy's own caller, and those of destroys that waited for the accessors.
        const waiters = [task.waiter, ...extra?.drain ?? []]
        const job = extra?.job
        const transient = shard.transient
        const key = shard.key
        core.tombstones.begin(key, tx)
        // The barrier lasts until the tombstone is cleared: a new shard of the same key writes
        // nothing before, so a restart that finds the tombstone can remove all under the key.
        const cleanup = raiseBarrier(core, key, async () => {
          // Let aborted work finish first so nothing it writes outlives the cleanup.
          if (job !== undefined) await this.jobs.settledJob(job)
          let ok = true
          try {
            await removeShardData(core, key, transient)
          } catch (err) {
            ok = false
            core.report(err, `cleanup of destroyed shard ${JSON.stringify(key)} failed`)
          }
          await endCleanup(core, key, ok, true)
        })
        const deliver = (): void => { for (const w of waiters) w?.deliver({ key }) }
        tx.afterCommit(() => {
          cleanup.start().then(deliver, (err: unknown) => {
            core.report(err, `cleanup of destroyed shard ${JSON.stringify(key)} failed`)
            deliver()
          })
        }, shard)
      }
    }
  }
}
