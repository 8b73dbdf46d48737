/**
 * A bounded single-writer / multi-reader event stream.
 *
 * The writer (the event loop) never waits: it overwrites the oldest slot of a ring. Each
 * subscriber keeps only a cursor, so one that never reads costs nothing; when it falls more
 * than `capacity` events behind, its next read throws SubscriptionLaggedError instead of
 * silently skipping events.
 */
import { SubscriptionLaggedError, abortErrorFrom } from '../../base/errors.js'

export class EventBuffer<T> {
  private readonly ring: Array<T | undefined>
  /** Sequence number of the next event to be written. */
  private written = 0
  private closed = false
  private wakeReaders: Array<() => void> = []
  /** Subscriptions not yet finished: without any, no event can ever be read. */
  private subscribers = 0

  constructor (readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('event buffer capacity must be a positive integer')
    this.ring = new Array(capacity)
  }

  /** Whether anyone would read an event published now: publishers may skip building one. */
  get wanted (): boolean { return this.subscribers > 0 && !this.closed }

  publish (event: T): void {
    if (this.closed) return
    // A subscriber reads only what is published after it subscribed, so with none an event is
    // dropped at once: kept in the ring it would outlive every young-generation GC for nothing.
    this.ring[this.written % this.capacity] = this.subscribers > 0 ? event : undefined
    this.written++
    if (this.wakeReaders.length > 0) {
      const wake = this.wakeReaders
      this.wakeReaders = []
      for (const w of wake) w()
    }
  }

  /** Ends every subscription after it has read what was already published. */
  close (): void {
    this.closed = true
    const wake = this.wakeReaders
    this.wakeReaders = []
    for (const w of wake) w()
  }

  /** Events published from now on. */
  subscribe (options: { signal?: AbortSignal } = {}): AsyncIterableIterator<T> {
    const { signal } = options
    let cursor = this.written
    let finished = false
    let wakeSelf: (() => void) | undefined
    const onAbort = (): void => { wakeSelf?.() }
    signal?.addEventListener('abort', onAbort, { once: true })
    this.subscribers++
    const finish = (): void => {
      if (finished) return
      finished = true
      this.subscribers--
      signal?.removeEventListener('abort', onAbort)
    }

    const iterator: AsyncIterableIterator<T> = {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          if (finished) return { done: true, value: undefined }
          if (signal?.aborted === true) { finish(); throw abortErrorFrom(signal) }
          if (this.written - cursor > this.capacity) {
            const missed = this.written - cursor - this.capacity
            finish()
            throw new SubscriptionLaggedError(`subscriber fell ${missed} events behind the last ${this.capacity} kept`)
          }
          if (cursor < this.written) {
            const event = this.ring[cursor % this.capacity] as T
            cursor++
            return { done: false, value: event }
          }
          if (this.closed) { finish(); return { done: true, value: undefined } }
          await new Promise<void>((resolve) => { wakeSelf = resolve; this.wakeReaders.push(resolve) })
          wakeSelf = undefined
        }
      },
      return: async (): Promise<IteratorResult<T>> => {
        finish()
        wakeSelf?.()
        return { done: true, value: undefined }
      },
      [Symbol.asyncIterator] () { return iterator }
    }
    return iterator
  }
}
