/**
 * The shard machine compiled into a lookup table: (state, op, facts) → (next state, actions).
 *
 * xstate's `transition()` builds a throwaway actor on every call and needs a snapshot object
 * per shard; a table lookup is one array read and needs nothing per shard (docs/PERFORMANCE.md). The table is built from the machine
 * at start-up, so the machine stays the single place transitions are written.
 */
import { transition } from 'xstate'
import { SHARD_STATES, OP_TYPES, type OpType, type ShardState } from '../../base/types.js'
import { shardMachine, FACT_NAMES, type ActionName, type OpFacts } from './machine.js'

export interface TableCell {
  readonly next: ShardState
  readonly actions: readonly ActionName[]
}

const FACT_COMBINATIONS = 1 << FACT_NAMES.length

/** The facts (in OpFacts / FACT_NAMES order) as a table index; positional, so no object per op. */
export function factsMask (lazy: boolean, lastRef: boolean, hasRefs: boolean, hasParked: boolean,
  recoverOnAcquire: boolean, draining: boolean): number {
  return (lazy ? 1 : 0) | (lastRef ? 2 : 0) | (hasRefs ? 4 : 0) |
    (hasParked ? 8 : 0) | (recoverOnAcquire ? 16 : 0) | (draining ? 32 : 0)
}

export function factsFromMask (mask: number): OpFacts {
  const facts = {} as OpFacts
  FACT_NAMES.forEach((name, bit) => { facts[name] = (mask & (1 << bit)) !== 0 })
  return facts
}

const STATE_INDEX: Readonly<Record<ShardState, number>> =
  Object.fromEntries(SHARD_STATES.map((s, i) => [s, i])) as Record<ShardState, number>
const OP_INDEX: Readonly<Record<OpType, number>> =
  Object.fromEntries(OP_TYPES.map((op, i) => [op, i])) as Record<OpType, number>

/** Runs the machine itself for one combination: the reference the table must agree with. */
export function machineTransition (state: ShardState, op: OpType, facts: OpFacts): TableCell {
  const snapshot = shardMachine.resolveState({ value: state, context: {} })
  const [next, actions] = transition(shardMachine, snapshot, { type: op, ...facts })
  return { next: next.value as ShardState, actions: actions.map((a) => a.type as ActionName) }
}

export class TransitionTable {
  private readonly cells: TableCell[]

  constructor () {
    this.cells = new Array(SHARD_STATES.length * OP_TYPES.length * FACT_COMBINATIONS)
    for (const state of SHARD_STATES) {
      for (const op of OP_TYPES) {
        for (let mask = 0; mask < FACT_COMBINATIONS; mask++) {
          const cell = machineTransition(state, op, factsFromMask(mask))
          this.cells[this.slot(STATE_INDEX[state], OP_INDEX[op], mask)] =
            Object.freeze({ next: cell.next, actions: Object.freeze(cell.actions) })
        }
      }
    }
  }

  lookup (state: ShardState, op: OpType, mask: number): TableCell {
    // The constructor filled every slot for every state, op and fact mask.
    return this.cells[this.slot(STATE_INDEX[state], OP_INDEX[op], mask)]!
  }

  private slot (state: number, op: number, mask: number): number {
    return (state * OP_TYPES.length + op) * FACT_COMBINATIONS + mask
  }
}

let shared: TransitionTable | undefined
/** One table per process: it is immutable, built once on first use. */
export function transitionTable (): TransitionTable {
  shared ??= new TransitionTable()
  return shared
}
