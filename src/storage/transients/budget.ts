/**
 * Space accounting for automated GC (docs/ARCHITECTURE.md): the bytes of every store-owned transient plus
 * the space reserved by downloads in progress, held under `maxBytes`.
 *
 * Downloads reserve before they write: their whole announced size up front, or, when the size
 * is unknown, `stepBytes` at a time as they grow. A reservation that does not fit asks the
 * evictor (which runs in the event loop, where it can tell which shards are idle) to free room
 * down to the low watermark; if nothing more can be freed, the reservation is refused with
 * TransientsFullError and the download fails. Finished transients are remembered in least
 * recently used order (a Map's insertion order, refreshed on every acquire and release), which
 * is the order the evictor takes them in.
 *
 * Only files inside the transients dir are counted: a user's existingTransient is not the
 * store's to evict, so it is not charged against the bound either.
 */
import { TransientsFullError } from '../../base/errors.js'

export interface BudgetOptions {
  maxBytes: number
  /** Fraction of maxBytes above which collection starts in the background. Default 0.9. */
  highWatermark?: number | undefined
  /** Fraction of maxBytes collection brings usage down to. Default 0.7. */
  lowWatermark?: number | undefined
  /** Reservation step for downloads of unknown size. Default min(128 MiB, maxBytes / 10). */
  stepBytes?: number | undefined
}

export interface TransientEntry {
  readonly key: string
  readonly size: number
}

/** Frees at least `bytes` if it can (evicting least recently used first); resolves with what it freed. */
export type Evictor = (bytes: number) => Promise<number>

const DEFAULT_HIGH_WATERMARK = 0.9
const DEFAULT_LOW_WATERMARK = 0.7
const DEFAULT_STEP = 128 * 1024 * 1024

function fraction (name: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) throw new RangeError(`gc.${name} must be a fraction in (0, 1], got ${String(value)}`)
  return value
}

/** Checks every gc option that has a value, whether or not a bound is set (a typo should not pass silently). */
export function validateGCOptions (
  gc: { maxTransientsBytes?: number, highWatermark?: number, lowWatermark?: number, reservationBytes?: number } | undefined
): void {
  if (gc === undefined) return
  const high = gc.highWatermark !== undefined ? fraction('highWatermark', gc.highWatermark) : DEFAULT_HIGH_WATERMARK
  const low = gc.lowWatermark !== undefined ? fraction('lowWatermark', gc.lowWatermark) : DEFAULT_LOW_WATERMARK
  if (!(low < high)) throw new RangeError(`gc.lowWatermark (${low}) must be below gc.highWatermark (${high})`)
  if (gc.reservationBytes !== undefined && (!Number.isSafeInteger(gc.reservationBytes) || gc.reservationBytes <= 0)) {
    throw new RangeError(`gc.reservationBytes must be a positive integer, got ${String(gc.reservationBytes)}`)
  }
  if (gc.maxTransientsBytes !== undefined && (!Number.isSafeInteger(gc.maxTransientsBytes) || gc.maxTransientsBytes <= 0)) {
    throw new RangeError(`gc.maxTransientsBytes must be a positive integer, got ${String(gc.maxTransientsBytes)}`)
  }
}

export class TransientBudget {
  readonly maxBytes: number
  readonly highBytes: number
  readonly lowBytes: number
  readonly stepBytes: number
  /** Finished transients by path, least recently used first. */
  readonly #files = new Map<string, TransientEntry>()
  #filesBytes = 0
  #reservedBytes = 0
  #evictor: Evictor | undefined
  #collecting: Promise<void> | undefined
  /** Evictions running now: the bytes they free are not yet off the books. */
  readonly #evictions = new Set<Promise<number>>()
  #onError: (err: unknown) => void

  constructor (options: BudgetOptions, onError: (err: unknown) => void = () => {}) {
    const { maxBytes } = options
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new RangeError(`gc.maxTransientsBytes must be a positive integer, got ${String(maxBytes)}`)
    }
    const high = fraction('highWatermark', options.highWatermark ?? DEFAULT_HIGH_WATERMARK)
    const low = fraction('lowWatermark', options.lowWatermark ?? DEFAULT_LOW_WATERMARK)
    if (!(low < high)) throw new RangeError(`gc.lowWatermark (${low}) must be below gc.highWatermark (${high})`)
    const step = options.stepBytes ?? Math.max(1, Math.min(DEFAULT_STEP, Math.floor(maxBytes / 10)))
    if (!Number.isSafeInteger(step) || step <= 0) throw new RangeError(`gc.reservationBytes must be a positive integer, got ${String(step)}`)
    this.maxBytes = maxBytes
    this.highBytes = Math.floor(maxBytes * high)
    this.lowBytes = Math.floor(maxBytes * low)
    this.stepBytes = step
    this.#onError = onError
  }

  /** Set once the loop exists: eviction needs it. */
  setEvictor (evictor: Evictor): void {
    this.#evictor = evictor
  }

  /** Files plus reservations: what the transients dir holds or is promised. */
  get usedBytes (): number {
    return this.#filesBytes + this.#reservedBytes
  }

  get reservedBytes (): number {
    return this.#reservedBytes
  }

  get fileCount (): number {
    return this.#files.size
  }

  /**
   * Reserves `bytes` for a download, evicting idle transients if needed. Rejects with
   * TransientsFullError when even eviction cannot make room.
   */
  async reserve (bytes: number): Promise<void> {
    if (bytes > this.maxBytes) {
      throw new TransientsFullError(`a transient of ${bytes} bytes can never fit in gc.maxTransientsBytes (${this.maxBytes})`)
    }
    while (this.usedBytes + bytes > this.maxBytes) {
      const short = this.usedBytes + bytes - this.maxBytes
      // Down to the low watermark, so the next downloads do not each pay for an eviction.
      const freed = await this.#evict(Math.max(short, this.usedBytes + bytes - this.lowBytes))
      if (this.usedBytes + bytes <= this.maxBytes) break
      // Another eviction may have taken the files ours would have: its bytes count once its
      // deletions finish. Refuse only when no eviction anywhere can free more.
      if (this.#evictions.size > 0) {
        await Promise.allSettled([...this.#evictions])
        continue
      }
      if (freed === 0) {
        throw new TransientsFullError(`transients dir full: ${bytes} bytes needed, ${this.usedBytes} of ${this.maxBytes} in use by transients that are in use, downloading or within their grace period`)
      }
    }
    this.#reservedBytes += bytes
    this.collectIfHigh()
  }

  /** Runs the evictor, tracked so that concurrent reservations can wait for it. */
  async #evict (bytes: number): Promise<number> {
    if (this.#evictor === undefined) return 0
    const run = this.#evictor(bytes)
    this.#evictions.add(run)
    try {
      return await run
    } finally {
      this.#evictions.delete(run)
    }
  }

  unreserve (bytes: number): void {
    this.#reservedBytes = Math.max(0, this.#reservedBytes - bytes)
  }

  /** A finished transient (its reservation, if any, is released separately). Most recently used. */
  add (path: string, key: string, size: number): void {
    this.remove(path)
    this.#files.set(path, { key, size })
    this.#filesBytes += size
    this.collectIfHigh()
  }

  remove (path: string): void {
    const entry = this.#files.get(path)
    if (entry === undefined) return
    this.#files.delete(path)
    this.#filesBytes -= entry.size
  }

  /** Marks the transient as just used: the last to be evicted. */
  touch (path: string): void {
    const entry = this.#files.get(path)
    if (entry === undefined) return
    this.#files.delete(path)
    this.#files.set(path, entry)
  }

  /** Finished transients, least recently used first. */
  entries (): IterableIterator<[string, TransientEntry]> {
    return this.#files.entries()
  }

  /** Starts a background collection down to the low watermark when usage is above the high one. */
  collectIfHigh (): void {
    if (this.usedBytes <= this.highBytes || this.#collecting !== undefined || this.#evictor === undefined) return
    this.#collecting = (async () => {
      try {
        await this.#evict(this.usedBytes - this.lowBytes)
      } catch (err) {
        this.#onError(err)
      } finally {
        this.#collecting = undefined
      }
    })()
  }

  /** Resolves when no background collection is running (tests, close). */
  async idle (): Promise<void> {
    while (this.#collecting !== undefined) await this.#collecting
  }
}
