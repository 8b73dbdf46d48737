/**
 * One caller waiting for one result. Exactly one result is ever delivered: the first of the
 * loop's result or the caller's abort wins; a result that arrives after an abort is
 * discarded, and an accessor in it is closed so its refcount is released.
 */
import { abortErrorFrom } from '../../base/errors.js'
import type { ResultCallback, ShardKey, ShardResult } from '../../base/types.js'

export type ErrorReporter = (err: unknown, context: string) => void

export class Waiter {
  done = false
  private readonly onAbort: (() => void) | undefined

  constructor (
    readonly key: ShardKey,
    private readonly out: ResultCallback | null | undefined,
    readonly signal: AbortSignal | undefined,
    private readonly report: ErrorReporter
  ) {
    if (signal !== undefined) {
      this.onAbort = () => { this.settle({ key, error: abortErrorFrom(signal) }) }
      // Already aborted: the abort still wins, but the result is never delivered inside the call.
      if (signal.aborted) queueMicrotask(this.onAbort)
      else signal.addEventListener('abort', this.onAbort, { once: true })
    }
  }

  /** Delivers `result` unless a result was already delivered. Never throws. */
  deliver (result: ShardResult): void {
    if (this.done) {
      if (result.accessor !== undefined) {
        result.accessor.close().catch((err: unknown) => { this.report(err, 'closing an undeliverable accessor') })
      }
      return
    }
    this.settle(result)
  }

  private settle (result: ShardResult): void {
    if (this.done) return
    this.done = true
    if (this.onAbort !== undefined) this.signal?.removeEventListener('abort', this.onAbort)
    if (this.out == null) {
      // Nobody to hand an accessor to: release it rather than leak the reference.
      if (result.accessor !== undefined) result.accessor.close().catch((err: unknown) => { this.report(err, 'closing an unwanted accessor') })
      return
    }
    try {
      this.out(result)
    } catch (err) {
      this.report(err, `result callback for shard ${JSON.stringify(this.key)} threw`)
    }
  }
}
