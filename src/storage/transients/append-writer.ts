/**
 * Appends chunks to an open file with at most one write in flight: chunks that arrive while a
 * write runs go out together in the next `writev`. A download then never waits on the disk
 * between network reads, and a fast network costs one syscall per batch, not per chunk (what
 * fs.WriteStream does too, but it reports nothing per chunk, and readers of a streaming
 * transient need to know exactly how many bytes are on disk).
 *
 * Hand-written over the callback API: this is the hot path of every download.
 */
import { writev } from 'node:fs'
import { toError } from '../../base/errors/inspect.js'

function writevAt (fd: number, buffers: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, buffers, position, (err, n) => { if (err != null) reject(err); else resolve(n) })
  })
}

/** The buffers left after `n` bytes of them were written (a short writev is rare but legal). */
function after (buffers: Uint8Array[], n: number): Uint8Array[] {
  let i = 0
  for (let b = buffers[0]; b !== undefined && n >= b.byteLength; b = buffers[++i]) n -= b.byteLength
  const rest = buffers.slice(i)
  const first = rest[0]
  if (n > 0 && first !== undefined) rest[0] = first.subarray(n)
  return rest
}

export class AppendWriter {
  /** Bytes on disk (written, not necessarily synced). */
  written = 0
  #queue: Uint8Array[] = []
  #queuedBytes = 0
  #flushing: Promise<void> | undefined
  #error: Error | undefined

  /** `onWritten(bytes)` runs after every completed write, with the bytes it added. */
  constructor (private readonly fd: number, private readonly onWritten: (bytes: number) => void = () => {}) {}

  /** Bytes handed to write() and not yet on disk. */
  get pendingBytes (): number {
    return this.#queuedBytes
  }

  /** Queues `chunk` (kept by reference: do not reuse it); throws the error of an earlier failed write. */
  write (chunk: Uint8Array): void {
    if (this.#error !== undefined) throw this.#error
    if (chunk.byteLength === 0) return
    this.#queue.push(chunk)
    this.#queuedBytes += chunk.byteLength
    this.#flushing ??= this.#flush()
  }

  /** Resolves when everything queued is on disk; rejects with the first write error. */
  async flushed (): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing
    if (this.#error !== undefined) throw this.#error
  }

  async #flush (): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        let batch = this.#queue
        const bytes = this.#queuedBytes
        this.#queue = []
        let left = bytes
        while (left > 0) {
          const n = await writevAt(this.fd, batch, this.written)
          this.written += n
          this.#queuedBytes -= n
          left -= n
          this.onWritten(n)
          if (left > 0) batch = after(batch, n)
        }
      }
    } catch (err) {
      this.#error = toError(err)
      this.#queue = []
    } finally {
      this.#flushing = undefined
    }
  }
}
