/**
 * A minimum rate for a response body. A server that trickles bytes (one a second, say) never
 * trips a stall timeout, yet would pin a download for days: this fails it once fewer than
 * `minBytesPerSecond` arrived, on average, over the last `windowMs`.
 *
 * Only time spent waiting on the server counts: while the consumer holds a chunk (pause() ..
 * resume()) the clock stops, so a slow reader is never blamed on the server. Per chunk this is
 * one addition; a timer looks at the total a few times per window, at most once a second.
 */

export interface RateFloorOptions {
  minBytesPerSecond: number
  windowMs: number
  /** Called once, with what arrived over the window that fell short. */
  onTooSlow: (bytes: number, ms: number) => void
  /** Milliseconds, monotonic (tests drive it by hand). Default performance.now. */
  now?: () => number
}

/** Never check more often than this, whatever the window: the timer must stay cheap. */
const MAX_CHECK_MS = 1000
/** Checks per window: how far past a full window of slowness a failure may come. */
const CHECKS_PER_WINDOW = 4

interface Sample { waited: number, bytes: number }

export class RateFloor {
  readonly #min: number
  readonly #windowMs: number
  readonly #onTooSlow: (bytes: number, ms: number) => void
  readonly #now: () => number
  #bytes = 0
  /** Waiting time accrued before the current run of waiting. */
  #waited = 0
  /** When the current run of waiting began; undefined while paused. */
  #since: number | undefined
  /** (waiting time, bytes) at past checks, oldest first: the window's start is among them. */
  #samples: Sample[] = [{ waited: 0, bytes: 0 }]
  #timer: NodeJS.Timeout | undefined
  #done = false

  constructor (options: RateFloorOptions) {
    this.#min = options.minBytesPerSecond
    this.#windowMs = options.windowMs
    this.#onTooSlow = options.onTooSlow
    this.#now = options.now ?? (() => performance.now())
    this.#since = this.#now()
  }

  /** How often start()'s timer checks. */
  get checkEveryMs (): number {
    return Math.min(MAX_CHECK_MS, Math.max(1, Math.ceil(this.#windowMs / CHECKS_PER_WINDOW)))
  }

  /** Checks on a timer (unref'd: it never keeps the process alive) until stop(). */
  start (): void {
    if (this.#timer !== undefined || this.#done) return
    this.#timer = setInterval(() => { this.check() }, this.checkEveryMs)
    this.#timer.unref?.()
  }

  received (bytes: number): void {
    this.#bytes += bytes
  }

  /** The consumer has the data: the server is not being waited on. */
  pause (): void {
    if (this.#since === undefined) return
    this.#waited += this.#now() - this.#since
    this.#since = undefined
  }

  resume (): void {
    this.#since ??= this.#now()
  }

  stop (): void {
    this.#done = true
    clearInterval(this.#timer)
  }

  /**
   * Fails (onTooSlow, then stops) when the bytes since the newest check at least a window ago
   * come to less than the minimum rate. Before a full window has been waited, nothing is judged.
   */
  check (): void {
    if (this.#done) return
    const waited = this.#waited + (this.#since === undefined ? 0 : this.#now() - this.#since)
    const samples = this.#samples
    let base = -1
    for (let i = 0; i < samples.length && (samples[i] as Sample).waited <= waited - this.#windowMs; i++) base = i
    if ((samples.at(-1) as Sample).waited < waited) samples.push({ waited, bytes: this.#bytes })
    if (base < 0) return
    samples.splice(0, base)
    const start = samples[0] as Sample
    const ms = waited - start.waited
    const bytes = this.#bytes - start.bytes
    if (bytes * 1000 < this.#min * ms) {
      this.stop()
      this.#onTooSlow(bytes, ms)
    }
  }
}
