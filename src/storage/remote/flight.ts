import { AbortError, DAGStoreError, abortErrorFrom } from '../../base/errors.js'
import type { Chunks } from './chunks.js'
import type { Gate } from './types.js'

/**
 * One request for [start, end) of a source, in flight or still waiting for its reservation,
 * shared by every reader that wants bytes it covers. Readers join while they want it and
 * leave when they stop; once nobody is left before it settles, it is aborted, so a request
 * nobody waits for never holds a connection or a reservation.
 *
 * A *run* (`gated`) is a stream's request: from its first section to the end of the source,
 * but allowed to bring only the sections granted so far (a stream grants its read-ahead
 * window as it slides; the transport pauses the response at the grant). One long request
 * instead of one per window step: every new request pays the origin's warm-up again
 * (docs/REMOTE.md). A run covers only what is granted and not yet delivered, and forgets each
 * piece once delivered, so nobody can be handed a section's buffer after it has left the cache.
 */
export class Flight implements Gate {
  readonly start: number
  readonly end: number
  /** A section index, or `${start}:${length}` for an exact random get. */
  readonly slot: number | string
  /** Settles when the request does: the pieces not handed over through `piece()` already ([] for a run). */
  readonly done: Promise<Chunks[]>
  readonly pieceBytes: number
  readonly gated: boolean
  /** Pieces (from `start`) a run may bring so far (their bytes are reserved); all of them for any other request. */
  granted: number
  /** Pieces a run will bring: granted, or promised a grant once their reservation comes through. */
  promised: number
  /** Bytes of the cache's budget this request holds (kept by its source). */
  reservedBytes = 0
  readonly #count: number
  readonly #controller = new AbortController()
  /** Each piece as soon as it has arrived: a reader of the first need not wait for the last. */
  readonly #pieces = new Map<number, Deferred<Chunks>>()
  #failure: { err: unknown } | undefined
  #interest = 0
  #settled = false
  #delivered = 0
  readonly #idleCallbacks: Array<() => void> = []
  #grantCallbacks: Array<() => void> = []

  /** `run` gets the signal and a `deliver(index, piece)` to call as each piece is complete, in order. */
  constructor (start: number, end: number, slot: number | string, pieceBytes: number, gated: boolean,
    run: (signal: AbortSignal, deliver: (index: number, piece: Chunks) => void) => Promise<Chunks[]>) {
    this.start = start
    this.end = end
    this.slot = slot
    this.pieceBytes = pieceBytes
    this.gated = gated
    this.#count = Math.ceil((end - start) / pieceBytes)
    this.granted = gated ? 0 : this.#count
    this.promised = this.granted
    const deliver = (index: number, piece: Chunks): void => {
      if (index < this.#delivered) return
      this.#delivered = index + 1
      const p = this.#pieces.get(index)
      if (gated) this.#pieces.delete(index)
      if (p !== undefined) p.resolve(piece)
      else if (!gated) this.#pieces.set(index, Deferred.resolved(piece))
    }
    this.done = run(this.#controller.signal, deliver).finally(() => {
      this.#settled = true
      if (this.#interest === 0) this.#becameIdle()
    })
    this.done.then(
      (pieces) => { pieces.forEach((piece, k) => { deliver(k, piece) }) },
      (err: unknown) => {
        this.#failure = { err }
        for (const p of this.#pieces.values()) if (!p.settled) p.reject(err)
      })
    // Handled here: a flight every reader left rejects with nobody to see it.
    this.done.catch(() => {})
  }

  /** Where the bytes a reader may still be handed begin: a run's next piece to arrive. */
  get coverStart (): number {
    return this.gated ? this.start + this.#delivered * this.pieceBytes : this.start
  }

  /** Where they end: what a run has been granted or promised. */
  get coverEnd (): number {
    return Math.min(this.end, this.start + this.promised * this.pieceBytes)
  }

  covers (at: number): boolean {
    return this.coverStart <= at && at < this.coverEnd
  }

  /** A run all of whose pieces are promised, or that has ended, can be granted no more. */
  get extendable (): boolean {
    return this.gated && !this.#settled && !this.signal.aborted && this.promised < this.#count
  }

  /** Fires when nobody waits for the request any more. */
  get signal (): AbortSignal {
    return this.#controller.signal
  }

  /** Promises a run `n` more pieces: they are covered now, and granted once their bytes are reserved. */
  promise (n: number): void {
    this.promised = Math.min(this.#count, this.promised + n)
  }

  /** Lets a run bring `n` more of the pieces promised (their bytes are reserved by the caller). */
  grant (n: number): void {
    this.granted = Math.min(this.promised, this.granted + n)
    const callbacks = this.#grantCallbacks
    if (callbacks.length === 0) return
    this.#grantCallbacks = []
    // Not now: bytes held at the gate may complete pieces, and whoever is granting (a stream
    // finding its section) must first ask for the pieces it waits for (a run forgets a piece
    // once delivered).
    queueMicrotask(() => { for (const callback of callbacks) callback() })
  }

  /** Gate: `callback` runs once, the next time the grant grows. */
  onGrant (callback: () => void): void {
    this.#grantCallbacks.push(callback)
  }

  /** Piece `index` (of `pieceBytes` from `start`), as soon as it is complete. Only pieces `covers` (or, for other requests, any of them). */
  piece (index: number): Promise<Chunks> {
    if (index < 0 || index >= this.#count || (this.gated && index < this.#delivered)) {
      throw new RangeError(`piece ${index} is not to come of [${this.start}, ${this.end})`)
    }
    let p = this.#pieces.get(index)
    if (p === undefined) {
      p = new Deferred<Chunks>()
      if (this.#failure !== undefined) p.reject(this.#failure.err)
      else this.#pieces.set(index, p)
    }
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
    } else if (this.#delivered < this.#count) {
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

/**
 * Piece `index` of the flight, or the signal's error as soon as it fires. The caller has joined
 * the flight and leaves it. Called in the turn the caller found the flight covering the piece
 * (a run forgets pieces once delivered).
 */
export async function waitFor (flight: Flight, index: number, signal: AbortSignal): Promise<Chunks> {
  if (signal.aborted) throw stoppedBy(signal)
  return await settleBy(flight.piece(index), signal)
}

/** `promise`, or the signal's error as soon as it fires. */
export async function settleBy<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw stoppedBy(signal)
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(stoppedBy(signal)) }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
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

  static resolved<T> (value: T): Deferred<T> {
    const d = new Deferred<T>()
    d.resolve(value)
    return d
  }
}
