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

/**
 * Bytes of the file's tail kept in memory: readers that follow the writer closely (the indexer
 * during a download) copy from here instead of reading the file back — a pread per section
 * header otherwise, each a threadpool round trip competing with the writer's.
 */
const RETAINED_TAIL_BYTES = 4 * 1024 * 1024

export class GrowingFile {
  /** Bytes written and readable so far. */
  written = 0
  /** Total size announced before the first byte (stat or Content-Length), when known. */
  readonly expectedSize: number | undefined
  #finalSize: number | undefined
  #error: Error | undefined
  #waits: Wait[] = []
  #tail: Uint8Array[] = []
  /** File offset of #tail[0]. */
  #tailStart = 0
  #tailBytes = 0

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

  /** The writer is about to write `chunk` at the current end (call in order; the chunk must not change). */
  remember (chunk: Uint8Array): void {
    if (this.#finalSize !== undefined || this.#error !== undefined) return
    this.#tail.push(chunk)
    this.#tailBytes += chunk.byteLength
    let oldest = this.#tail[0]
    while (this.#tail.length > 1 && oldest !== undefined && this.#tailBytes - oldest.byteLength >= RETAINED_TAIL_BYTES) {
      this.#tail.shift()
      this.#tailStart += oldest.byteLength
      this.#tailBytes -= oldest.byteLength
      oldest = this.#tail[0]
    }
  }

  /** A copy of [position, end) if it is on disk and still in memory; undefined otherwise. */
  copy (position: number, end: number): Uint8Array | undefined {
    if (position < this.#tailStart || end > this.written || end > this.#tailStart + this.#tailBytes || end <= position) return undefined
    const out = Buffer.allocUnsafe(end - position)
    // Readers follow the writer closely: walk back from the newest chunk.
    let offset = this.#tailStart + this.#tailBytes
    for (let i = this.#tail.length - 1; i >= 0 && offset > position; i--) {
      const chunk = this.#tail[i]! // 0 <= i < length
      const start = offset - chunk.byteLength
      offset = start
      const from = Math.max(position, start)
      const to = Math.min(end, start + chunk.byteLength)
      if (from < to) out.set(chunk.subarray(from - start, to - start), from - position)
    }
    return out
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
    this.#tail = []
    this.#tailBytes = 0
    const waits = this.#waits
    this.#waits = []
    for (const w of waits) fn(w)
  }
}
