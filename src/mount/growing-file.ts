/**
 * The progress of one file being written by one writer and read by many readers at once (a
 * transient while it downloads). Readers ask for the bytes up to some offset and wait until the
 * writer has put them on disk, has finished (they then get a short read at the end), or has
 * failed (they then get the writer's error). The bytes themselves are read from the file; this
 * only says how far they are good.
 */

interface Wait {
  readonly end: number
  readonly resolve: () => void
  readonly reject: (err: Error) => void
}

export class GrowingFile {
  /** Bytes written and readable so far. */
  written = 0
  /** Total size announced before the first byte (stat or Content-Length), when known. */
  readonly expectedSize: number | undefined
  #finalSize: number | undefined
  #error: Error | undefined
  #waits: Wait[] = []

  constructor (expectedSize: number | undefined) {
    this.expectedSize = expectedSize
  }

  /** The size the file will have: final once complete, else the announced one (if any). */
  get size (): number | undefined {
    return this.#finalSize ?? this.expectedSize
  }

  get complete (): boolean {
    return this.#finalSize !== undefined
  }

  get failed (): boolean {
    return this.#error !== undefined
  }

  get error (): Error | undefined {
    return this.#error
  }

  /** Resolves once bytes [0, end) are readable or the file is complete; rejects if the writer failed. */
  async waitFor (end: number): Promise<void> {
    if (this.#error !== undefined) throw this.#error
    if (this.written >= end || this.#finalSize !== undefined) return
    await new Promise<void>((resolve, reject) => { this.#waits.push({ end, resolve, reject }) })
  }

  /** The writer put `bytes` more on disk (written, not necessarily synced: readers share the page cache). */
  grew (bytes: number): void {
    this.written += bytes
    if (this.#waits.length === 0) return
    const still: Wait[] = []
    for (const w of this.#waits) {
      if (w.end <= this.written) w.resolve()
      else still.push(w)
    }
    this.#waits = still
  }

  finish (): void {
    if (this.#error !== undefined || this.#finalSize !== undefined) return
    this.#finalSize = this.written
    this.#settle((w) => { w.resolve() })
  }

  fail (err: Error): void {
    if (this.#error !== undefined || this.#finalSize !== undefined) return
    this.#error = err
    this.#settle((w) => { w.reject(err) })
  }

  #settle (fn: (w: Wait) => void): void {
    const waits = this.#waits
    this.#waits = []
    for (const w of waits) fn(w)
  }
}
