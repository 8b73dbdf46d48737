/**
 * The shard state machine: the one place where every transition of the contract's
 * state table (docs/CONTRACT.md) is written.
 *
 * It is an xstate v5 machine used as a pure transition function: no actor per shard (a
 * million shards must fit in memory). Its guards read only *facts* carried on the event, and
 * its actions are names the event loop interprets (src/engine/loop/interpreter.ts). Because guards
 * depend on nothing but those boolean facts, the machine is compiled into a lookup table at
 * start-up (./table.ts); tests/machine-table.test.ts proves the two agree on every
 * (state, op, facts) combination.
 */
import { and, setup } from 'xstate'
import type { OpType } from '../../base/types.js'

/** The boolean facts guards may read; the loop computes them from the shard before each op. */
export interface OpFacts {
  /** register: the shard was registered lazily. */
  lazy: boolean
  /** release: this release drops the last reference. */
  lastRef: boolean
  /** refs > 0. */
  hasRefs: boolean
  /** makeAvailable: live acquirers are parked on the shard. */
  hasParked: boolean
  /** acquire: the shard is errored and marked to recover on its next acquire (recoverOnStart 'on-acquire'). */
  recoverOnAcquire: boolean
  /**
   * destroy: this destroy asks to drain the shard (refuse new acquires, wait for its accessors).
   * Any other op: the shard is draining — a destroy waits for its accessors to close.
   */
  draining: boolean
}
export const FACT_NAMES: ReadonlyArray<keyof OpFacts> = ['lazy', 'lastRef', 'hasRefs', 'hasParked', 'recoverOnAcquire', 'draining']

export type ShardEvent = { type: OpType } & OpFacts

/**
 * Action names, executed in order by the loop's interpreter. They are declared (with empty
 * bodies) so xstate validates the machine; the interpreter supplies the behaviour.
 */
const ACTIONS = [
  'replyOk', // the op's own caller gets success now
  'holdRegisterWaiter', // the register caller waits for available/errored
  'stageInitialize', // queue an internal initialize op (runs before any other task)
  'startInitialize', // reuse an existing index, else fetch + index in a job
  'parkAcquirer', // the acquirer waits for available/errored
  'stageRecover', // queue an internal recover op (recover-on-acquire)
  'consumeRecoverOnAcquire', // only one recovery per recover-on-acquire mark
  'clearError',
  'resolveWaiters', // register and recover waiters get success
  'serveParked', // refs += live parked acquirers; each gets an accessor
  'incRef',
  'openAccessor', // job: open the local copy, deliver an accessor
  'decRef',
  'markReleased', // remembered for GC grace
  'recordError',
  'failWaiters', // every waiter (register, recover, parked acquirers) gets the error
  'publishFailure', // failures() stream
  'rejectNotErrored', // recover on a non-errored shard
  'rejectErrored', // acquire on an errored shard
  'rejectInUse', // destroy with live references
  'rejectDraining', // acquire or recover of a shard a destroy is draining
  'startDrain', // the destroy waits for the accessors to close; new acquires are refused
  'stageDestroy', // queue an internal destroy op (a drained shard's last accessor closed)
  'holdRecoverWaiter',
  'startRecover', // drop index, delete owned transient, fetch + index in a job
  'abortJob', // in-flight work is discarded
  'destroy' // delete record, index, owned transient, top-level entries
] as const
export type ActionName = (typeof ACTIONS)[number]

const noop = (): void => {}
const declaredActions = Object.fromEntries(ACTIONS.map((name) => [name, noop])) as Record<ActionName, () => void>

const failTransition = { target: 'errored', actions: ['recordError', 'failWaiters', 'publishFailure'] } as const
const rejectRecover = { actions: 'rejectNotErrored' } as const
const ignore = { actions: [] as ActionName[] } as const
const destroyNow = { actions: 'destroy' } as const
const destroyAbortingWork = { actions: ['abortJob', 'destroy'] } as const
const rejectDraining = { guard: 'draining', actions: 'rejectDraining' } as const
const makeAvailable = [
  { guard: 'hasParked', target: 'serving', actions: ['clearError', 'resolveWaiters', 'serveParked'] },
  { guard: 'hasRefs', target: 'serving', actions: ['clearError', 'resolveWaiters'] },
  { target: 'available', actions: ['clearError', 'resolveWaiters'] }
] as const

export const shardMachine = setup({
  types: { events: {} as ShardEvent },
  guards: {
    lazy: ({ event }) => event.lazy,
    lastRef: ({ event }) => event.lastRef,
    hasRefs: ({ event }) => event.hasRefs,
    hasParked: ({ event }) => event.hasParked,
    recoverOnAcquire: ({ event }) => event.recoverOnAcquire,
    draining: ({ event }) => event.draining
  },
  actions: declaredActions
}).createMachine({
  id: 'shard',
  initial: 'new',
  states: {
    new: {
      on: {
        register: [
          { guard: 'lazy', actions: 'replyOk' },
          { actions: ['holdRegisterWaiter', 'stageInitialize'] }
        ],
        initialize: { target: 'initializing', actions: 'startInitialize' },
        makeAvailable: ignore,
        // The initialize is shared: the acquirer's signal does not cancel it.
        acquire: { actions: ['parkAcquirer', 'stageInitialize'] },
        release: ignore,
        fail: failTransition,
        recover: rejectRecover,
        destroy: destroyNow
      }
    },
    initializing: {
      on: {
        register: ignore,
        initialize: ignore,
        makeAvailable,
        acquire: { actions: 'parkAcquirer' },
        release: ignore,
        fail: failTransition,
        recover: rejectRecover,
        destroy: destroyAbortingWork
      }
    },
    available: {
      on: {
        register: ignore,
        initialize: ignore,
        makeAvailable: ignore,
        acquire: { target: 'serving', actions: ['incRef', 'openAccessor'] },
        release: ignore,
        fail: failTransition,
        recover: rejectRecover,
        destroy: destroyNow
      }
    },
    serving: {
      on: {
        register: ignore,
        initialize: ignore,
        makeAvailable: ignore,
        acquire: [rejectDraining, { actions: ['incRef', 'openAccessor'] }],
        release: [
          // The drain's last accessor: the destroy runs next, before any other task.
          { guard: and(['lastRef', 'draining']), target: 'available', actions: ['decRef', 'stageDestroy'] },
          { guard: 'lastRef', target: 'available', actions: ['decRef', 'markReleased'] },
          { actions: 'decRef' }
        ],
        // refs are kept: live accessors go on reading.
        fail: failTransition,
        recover: rejectRecover,
        destroy: [
          { guard: 'draining', actions: 'startDrain' },
          { actions: 'rejectInUse' }
        ]
      }
    },
    recovering: {
      on: {
        register: ignore,
        initialize: ignore,
        makeAvailable,
        acquire: { actions: 'parkAcquirer' },
        // Accessors handed out before the failure may still be released while recovering;
        // the state stays, the count must not leak.
        release: [{ guard: 'hasRefs', actions: 'decRef' }, ignore],
        fail: failTransition,
        recover: rejectRecover,
        destroy: destroyAbortingWork
      }
    },
    errored: {
      on: {
        register: ignore,
        initialize: ignore,
        makeAvailable: ignore,
        acquire: [
          rejectDraining,
          { guard: 'recoverOnAcquire', actions: ['parkAcquirer', 'consumeRecoverOnAcquire', 'stageRecover'] },
          { actions: 'rejectErrored' }
        ],
        // Never back to available on the last release (a Go dagstore defect): errored stays errored.
        release: [
          { guard: and(['lastRef', 'draining']), actions: ['decRef', 'stageDestroy'] },
          { guard: 'lastRef', actions: ['decRef', 'markReleased'] },
          { guard: 'hasRefs', actions: 'decRef' },
          ignore
        ],
        fail: ignore,
        recover: [rejectDraining, { target: 'recovering', actions: ['holdRecoverWaiter', 'startRecover'] }],
        destroy: [
          { guard: and(['hasRefs', 'draining']), actions: 'startDrain' },
          { guard: 'hasRefs', actions: 'rejectInUse' },
          destroyNow
        ]
      }
    }
  }
})
