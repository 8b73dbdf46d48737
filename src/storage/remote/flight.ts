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
  #interest = 0
  #settled = false

  constructor (start: number, end: number, slot: number | string, pieceBytes: number, run: (signal: AbortSignal) => Promise<Chunks[]>) {
    this.start = start
    this.end = end
    this.slot = slot
    this.pieceBytes = pieceBytes
    this.done = run(this.#controller.signal).finally(() => { this.#settled = true })
    // Handled here: a flight every reader left rejects with nobody to see it.
    this.done.catch(() => {})
  }

  get settled (): boolean {
    return this.#settled
  }

  join (): void {
    this.#interest++
  }

  leave (): void {
    this.#interest--
    if (this.#interest === 0 && !this.#settled) this.#controller.abort(new AbortError('no reader waits for this request any more'))
  }
}

/** What to throw once `signal` fired: its reason when that is one of ours (a reader's close), else an AbortError. */
export function stoppedBy (signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof DAGStoreError ? reason : abortErrorFrom(signal)
}

/** The flight's pieces, or the signal's error as soon as it fires. The caller has joined the flight and leaves it. */
export async function waitFor (flight: Flight, signal: AbortSignal): Promise<Chunks[]> {
  if (signal.aborted) throw stoppedBy(signal)
  return await new Promise<Chunks[]>((resolve, reject) => {
    const onAbort = (): void => { reject(stoppedBy(signal)) }
    signal.addEventListener('abort', onAbort, { once: true })
    flight.done.then(
      (data) => { signal.removeEventListener('abort', onAbort); resolve(data) },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err) })
  })
}
