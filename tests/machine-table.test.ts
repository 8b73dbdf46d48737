import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TransitionTable, machineTransition, factsFromMask } from '../src/engine/shard/table.js'
import { SHARD_STATES, OP_TYPES } from '../src/base/types.js'

const table = new TransitionTable()

test('the compiled table agrees with the xstate machine on every (state, op, facts) combination', () => {
  let checked = 0
  for (const state of SHARD_STATES) {
    for (const op of OP_TYPES) {
      for (let mask = 0; mask < 32; mask++) {
        const live = machineTransition(state, op, factsFromMask(mask))
        const cell = table.lookup(state, op, mask)
        assert.is(cell.next, live.next, `${state} × ${op} × ${mask}: next`)
        assert.equal([...cell.actions], live.actions, `${state} × ${op} × ${mask}: actions`)
        checked++
      }
    }
  }
  assert.is(checked, 6 * 8 * 32)
})

// The state table of docs/CONTRACT.md, written out independently of the machine: (state, op, facts) → next.
const f = (o: Partial<Record<'lazy' | 'lastRef' | 'hasRefs' | 'hasParked' | 'recoverOnAcquire', boolean>> = {}): number =>
  (o.lazy === true ? 1 : 0) | (o.lastRef === true ? 2 : 0) | (o.hasRefs === true ? 4 : 0) | (o.hasParked === true ? 8 : 0) | (o.recoverOnAcquire === true ? 16 : 0)
const contract: Array<[string, string, number, string, string[]]> = [
  ['new', 'register', f({ lazy: true }), 'new', ['replyOk']],
  ['new', 'register', f(), 'new', ['holdRegisterWaiter', 'stageInitialize']],
  ['new', 'initialize', f(), 'initializing', ['startInitialize']],
  ['new', 'acquire', f(), 'new', ['parkAcquirer', 'stageInitialize']],
  ['new', 'release', f(), 'new', []],
  ['new', 'fail', f(), 'errored', ['recordError', 'failWaiters', 'publishFailure']],
  ['new', 'recover', f(), 'new', ['rejectNotErrored']],
  ['new', 'destroy', f(), 'new', ['destroy']],
  ['initializing', 'makeAvailable', f(), 'available', ['clearError', 'resolveWaiters']],
  ['initializing', 'makeAvailable', f({ hasParked: true }), 'serving', ['clearError', 'resolveWaiters', 'serveParked']],
  ['initializing', 'acquire', f(), 'initializing', ['parkAcquirer']],
  ['initializing', 'release', f(), 'initializing', []],
  ['initializing', 'fail', f(), 'errored', ['recordError', 'failWaiters', 'publishFailure']],
  ['initializing', 'recover', f(), 'initializing', ['rejectNotErrored']],
  ['initializing', 'destroy', f(), 'initializing', ['abortJob', 'destroy']],
  ['available', 'acquire', f(), 'serving', ['incRef', 'openAccessor']],
  ['available', 'release', f(), 'available', []],
  ['available', 'fail', f(), 'errored', ['recordError', 'failWaiters', 'publishFailure']],
  ['available', 'recover', f(), 'available', ['rejectNotErrored']],
  ['available', 'destroy', f(), 'available', ['destroy']],
  ['serving', 'acquire', f({ hasRefs: true }), 'serving', ['incRef', 'openAccessor']],
  ['serving', 'release', f({ hasRefs: true }), 'serving', ['decRef']],
  ['serving', 'release', f({ hasRefs: true, lastRef: true }), 'available', ['decRef', 'markReleased']],
  ['serving', 'fail', f({ hasRefs: true }), 'errored', ['recordError', 'failWaiters', 'publishFailure']],
  ['serving', 'recover', f({ hasRefs: true }), 'serving', ['rejectNotErrored']],
  ['serving', 'destroy', f({ hasRefs: true }), 'serving', ['rejectInUse']],
  ['recovering', 'makeAvailable', f(), 'available', ['clearError', 'resolveWaiters']],
  ['recovering', 'makeAvailable', f({ hasParked: true }), 'serving', ['clearError', 'resolveWaiters', 'serveParked']],
  ['recovering', 'acquire', f(), 'recovering', ['parkAcquirer']],
  ['recovering', 'release', f(), 'recovering', []],
  ['recovering', 'fail', f(), 'errored', ['recordError', 'failWaiters', 'publishFailure']],
  ['recovering', 'recover', f(), 'recovering', ['rejectNotErrored']],
  ['recovering', 'destroy', f(), 'recovering', ['abortJob', 'destroy']],
  ['errored', 'acquire', f(), 'errored', ['rejectErrored']],
  ['errored', 'acquire', f({ recoverOnAcquire: true }), 'errored', ['parkAcquirer', 'consumeRecoverOnAcquire', 'stageRecover']],
  ['errored', 'release', f({ hasRefs: true, lastRef: true }), 'errored', ['decRef', 'markReleased']],
  ['errored', 'release', f({ hasRefs: true }), 'errored', ['decRef']],
  ['errored', 'fail', f(), 'errored', []],
  ['errored', 'recover', f(), 'recovering', ['holdRecoverWaiter', 'startRecover']],
  ['errored', 'destroy', f({ hasRefs: true }), 'errored', ['rejectInUse']],
  ['errored', 'destroy', f(), 'errored', ['destroy']]
]

test('the machine implements the contract\'s state table', () => {
  for (const [state, op, mask, next, actions] of contract) {
    const cell = table.lookup(state as never, op as never, mask)
    assert.is(cell.next, next, `${state} × ${op}`)
    assert.equal([...cell.actions], actions, `${state} × ${op} actions`)
  }
})

test.run()
