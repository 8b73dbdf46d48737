/**
 * Bytes kept as the chunks they arrived in: views of the response's own buffers, in order.
 * A section is never copied into a buffer of its own: the socket's buffers are recycled memory,
 * a fresh section-sized buffer is new pages to fault in (docs/REMOTE.md).
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

/** Views of the bytes of `chunks` from `offset` on. */
export function * chunksFrom (chunks: Chunks, offset: number): Generator<Uint8Array> {
  let at = 0
  for (const part of chunks.parts) {
    const partEnd = at + part.byteLength
    if (partEnd > offset) yield offset > at ? part.subarray(offset - at) : part
    at = partEnd
  }
}

/**
 * Cuts a body arriving in chunks into pieces of `pieceBytes` (the last one shorter), by views:
 * a chunk across a boundary is split, never copied.
 */
export class PieceCutter {
  readonly #pieceBytes: number
  readonly #pieces: Chunks[] = []
  readonly #onPiece: ((piece: Chunks) => void) | undefined
  #parts: Uint8Array[] = []
  #filled = 0

  /** `onPiece` hears of each piece as soon as it is complete, in order. */
  constructor (pieceBytes: number, onPiece?: (piece: Chunks) => void) {
    this.#pieceBytes = pieceBytes
    this.#onPiece = onPiece
  }

  push (chunk: Uint8Array): void {
    const size = this.#pieceBytes
    let rest = chunk
    while (rest.byteLength > 0) {
      const room = size - this.#filled
      const part = rest.byteLength <= room ? rest : rest.subarray(0, room)
      this.#parts.push(part)
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
    const piece = { parts: this.#parts, byteLength: this.#filled }
    this.#pieces.push(piece)
    this.#parts = []
    this.#filled = 0
    this.#onPiece?.(piece)
  }
}
