import { AbortError, DAGStoreError, abortErrorFrom } from '../../base/errors.js'
import type { Chunks } from './chunks.js'

/**
 * One request for [start, end) of a source, in flight or still waiting for its reservation,
 * shared by every reader that wants bytes it covers. Readers join while they want it and
 * leave when they stop; once nobody is left before it settles, it is aborted, so a request
 * nobody waits for never holds a connection or a reservation.
 */
export class Flight {
  readonly start: number
  readonly end: number
  /** A section index, or `${start}:${length}` for an exact random get. */
  readonly slot: number | string
  /** The bytes from `start`, in pieces of `pieceBytes` (a section each, or one exact extent). */
  readonly done: Promise<Chunks[]>
  readonly pieceBytes: number
  readonly #controller = new AbortController()
  /** Each piece as soon as it has arrived: a reader of the first need not wait for the last. */
  readonly #pieces: Array<Deferred<Chunks>>
  #interest = 0
  #settled = false
  #delivered = 0
  readonly #idleCallbacks: Array<() => void> = []

  /** `run` gets the signal and a `deliver(index, piece)` to call as each piece is complete. */
  constructor (start: number, end: number, slot: number | string, pieceBytes: number,
    run: (signal: AbortSignal, deliver: (index: number, piece: Chunks) => void) => Promise<Chunks[]>) {
    this.start = start
    this.end = end
    this.slot = slot
    this.pieceBytes = pieceBytes
    this.#pieces = Array.from({ length: Math.ceil((end - start) / pieceBytes) }, () => new Deferred<Chunks>())
    const deliver = (index: number, piece: Chunks): void => {
      const p = this.#pieces[index]
      if (p === undefined || p.settled) return
      p.resolve(piece)
      this.#delivered++
    }
    this.done = run(this.#controller.signal, deliver).finally(() => {
      this.#settled = true
      if (this.#interest === 0) this.#becameIdle()
    })
    this.done.then(
      (pieces) => { pieces.forEach((piece, k) => { deliver(k, piece) }) },
      (err: unknown) => { for (const p of this.#pieces) if (!p.settled) p.reject(err) })
    // Handled here: a flight every reader left rejects with nobody to see it.
    this.done.catch(() => {})
  }

  /** Piece `index` (of `pieceBytes` from `start`), as soon as it is complete. */
  piece (index: number): Promise<Chunks> {
    const p = this.#pieces[index]
    if (p === undefined) throw new RangeError(`piece ${index} is outside [${this.start}, ${this.end})`)
    return p.promise
  }

  get settled (): boolean {
    return this.#settled
  }

  /** Settled, and nobody joined any more: no reader can be handed one of its pieces again. */
  get idle (): boolean {
    return this.#settled && this.#interest === 0
  }

  /** `callback` runs once the flight is idle (see `idle`). */
  onIdle (callback: () => void): void {
    this.#idleCallbacks.push(callback)
  }

  #becameIdle (): void {
    const callbacks = this.#idleCallbacks.splice(0)
    for (const callback of callbacks) callback()
  }

  join (): void {
    this.#interest++
  }

  leave (): void {
    this.#interest--
    if (this.#interest !== 0) return
    if (this.#settled) {
      this.#becameIdle()
    } else if (this.#delivered < this.#pieces.length) {
      // A request whose every byte has arrived is let finish: aborting it would cost its connection.
      this.#controller.abort(new AbortError('no reader waits for this request any more'))
    }
  }
}

/** What to throw once `signal` fired: its reason when that is one of ours (a reader's close), else an AbortError. */
export function stoppedBy (signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof DAGStoreError ? reason : abortErrorFrom(signal)
}

/** Piece `index` of the flight, or the signal's error as soon as it fires. The caller has joined the flight and leaves it. */
export async function waitFor (flight: Flight, index: number, signal: AbortSignal): Promise<Chunks> {
  if (signal.aborted) throw stoppedBy(signal)
  return await new Promise<Chunks>((resolve, reject) => {
    const onAbort = (): void => { reject(stoppedBy(signal)) }
    signal.addEventListener('abort', onAbort, { once: true })
    flight.piece(index).then(
      (data) => { signal.removeEventListener('abort', onAbort); resolve(data) },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err) })
  })
}

class Deferred<T> {
  readonly promise: Promise<T>
  settled = false
  resolve!: (value: T) => void
  reject!: (err: unknown) => void

  constructor () {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (value) => { this.settled = true; resolve(value) }
      this.reject = (err) => { this.settled = true; reject(err) }
    })
    // A piece nobody asked for may reject with the flight: not an unhandled rejection.
    this.promise.catch(() => {})
  }
}
