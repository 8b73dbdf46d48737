/**
 * Bytes as a list of parts in order: the chunks an exact get's response arrived in (views of
 * its buffers), or a section in one of the cache's reusable buffers (docs/REMOTE.md).
 */
export interface Chunks {
  readonly parts: readonly Uint8Array[]
  readonly byteLength: number
}

/**
 * Copies the part of `chunks` (whose first byte is at `start`) that falls in [position, end)
 * into `out` (whose first byte is at `position`).
 */
export function copyChunks (chunks: Chunks, start: number, out: Uint8Array, position: number, end: number): void {
  let at = start
  for (const part of chunks.parts) {
    const partEnd = at + part.byteLength
    const from = Math.max(position, at)
    const to = Math.min(end, partEnd)
    if (to > from) out.set(part.subarray(from - at, to - at), from - position)
    at = partEnd
    if (at >= end) return
  }
}

/** All the bytes of `chunks` in one new buffer. */
export function joinChunks (chunks: Chunks): Uint8Array {
  const out = new Uint8Array(chunks.byteLength)
  copyChunks(chunks, 0, out, 0, chunks.byteLength)
  return out
}

/**
 * Copies of the bytes of `chunks` from `offset` on, in new buffers of at most `size` bytes
 * each, made now: the caller may hand them out however slowly, the chunks' memory may be
 * reused at once.
 */
export function copiesFrom (chunks: Chunks, offset: number, size: number): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let at = offset; at < chunks.byteLength; at += size) {
    const n = Math.min(size, chunks.byteLength - at)
    const copy = Buffer.allocUnsafe(n)
    copyChunks(chunks, 0, copy, at, at + n)
    out.push(copy)
  }
  return out
}

/**
 * Cuts a body arriving in chunks into pieces of `pieceBytes` (the last one shorter), by views:
 * a chunk across a boundary is split, never copied.
 */
export class PieceCutter {
  readonly #pieceBytes: number
  readonly #pieces: Chunks[] = []
  readonly #onPiece: ((piece: Chunks) => void) | undefined
  readonly #into: ((index: number) => Uint8Array) | undefined
  #parts: Uint8Array[] = []
  #filled = 0
  /** With `into`: the buffer the current piece is copied into. */
  #target: Uint8Array | undefined

  /**
   * `onPiece` hears of each piece as soon as it is complete, in order. With `into`, each piece
   * is copied into the buffer `into(index)` gives (at least `pieceBytes` long) instead of being
   * kept as views of the chunks: the chunks can then die young.
   */
  constructor (pieceBytes: number, onPiece?: (piece: Chunks) => void, into?: (index: number) => Uint8Array) {
    this.#pieceBytes = pieceBytes
    this.#onPiece = onPiece
    this.#into = into
  }

  push (chunk: Uint8Array): void {
    const size = this.#pieceBytes
    let rest = chunk
    while (rest.byteLength > 0) {
      const room = size - this.#filled
      const part = rest.byteLength <= room ? rest : rest.subarray(0, room)
      if (this.#into === undefined) {
        this.#parts.push(part)
      } else {
        this.#target ??= this.#into(this.#pieces.length)
        this.#target.set(part, this.#filled)
      }
      this.#filled += part.byteLength
      rest = rest.subarray(part.byteLength)
      if (this.#filled === size) this.#cut()
    }
  }

  /** The pieces, the last (shorter) one included. */
  finish (): Chunks[] {
    if (this.#filled > 0) this.#cut()
    return this.#pieces
  }

  #cut (): void {
    const target = this.#target
    const piece = { parts: target === undefined ? this.#parts : [target.subarray(0, this.#filled)], byteLength: this.#filled }
    this.#pieces.push(piece)
    this.#parts = []
    this.#filled = 0
    this.#target = undefined
    this.#onPiece?.(piece)
  }
}
