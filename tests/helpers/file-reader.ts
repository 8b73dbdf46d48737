// Test-only MountReaders (the production FileMount lives in src/mount). Chunk sizes are
// configurable so tests can force section headers and block data across chunk boundaries.
import { open } from 'node:fs/promises'
import type { MountReader } from '../../src/base/mount-types.js'
import { at } from './assert.js'

export interface TestReaderOptions {
  /** Size of the chunks stream() yields; default 64 KiB. */
  chunkSize?: number
  /** Offer read(position, length); default true. */
  random?: boolean | undefined
}

export interface TestReader extends MountReader {
  readonly size: number
  /** Calls made to read() so far. */
  readonly reads: number
}

/** A MountReader over a file through one FileHandle. */
export async function openTestReader (path: string, options: TestReaderOptions = {}): Promise<TestReader> {
  const chunkSize = options.chunkSize ?? 64 * 1024
  const handle = await open(path, 'r')
  const { size } = await handle.stat()
  let reads = 0
  const read = async (position: number, length: number): Promise<Uint8Array> => {
    reads++
    const n = Math.max(0, Math.min(length, size - position))
    const buf = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const { bytesRead } = await handle.read(buf, filled, n - filled, position + filled)
      if (bytesRead === 0) break
      filled += bytesRead
    }
    return filled === n ? buf : buf.subarray(0, filled)
  }
  async function * stream (start = 0): AsyncGenerator<Uint8Array> {
    for (let pos = start; pos < size; pos += chunkSize) {
      const buf = new Uint8Array(Math.min(chunkSize, size - pos))
      const { bytesRead } = await handle.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) return
      yield buf.subarray(0, bytesRead)
    }
  }
  const reader: TestReader = {
    size,
    get reads () { return reads },
    stream,
    close: async () => { await handle.close() }
  }
  if (options.random !== false) (reader as { read?: MountReader['read'] }).read = read
  return reader
}

/** A plain Uint8Array copy (Buffer#slice would be a view). */
function copy (bytes: Uint8Array, start: number, end: number): Uint8Array {
  const view = bytes.subarray(start, Math.min(end, bytes.length))
  const out = new Uint8Array(view.length)
  out.set(view)
  return out
}

/** A MountReader over bytes in memory; `chunks` may give an explicit list of chunk sizes (cycled). */
export function bytesReader (bytes: Uint8Array, options: TestReaderOptions & { chunks?: number[] } = {}): TestReader {
  const sizes = options.chunks ?? [options.chunkSize ?? 64 * 1024]
  let reads = 0
  async function * stream (start = 0): AsyncGenerator<Uint8Array> {
    let k = 0
    for (let pos = start; pos < bytes.length;) {
      const n = Math.max(1, at(sizes, k++ % sizes.length))
      // A fresh copy per chunk, like a real stream: nothing may rely on chunks aliasing the source.
      yield copy(bytes, pos, pos + n)
      pos += n
    }
  }
  const reader: TestReader = {
    size: bytes.length,
    get reads () { return reads },
    stream,
    close: async () => {}
  }
  if (options.random !== false) {
    (reader as { read?: MountReader['read'] }).read = async (position: number, length: number) => {
      reads++
      return copy(bytes, position, Math.min(bytes.length, position + length))
    }
  }
  return reader
}

/** Collects a stream (or iterable) of chunks into one buffer. */
export async function concatStream (source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let total = 0
  for await (const c of source) { parts.push(c); total += c.length }
  const out = new Uint8Array(total)
  let p = 0
  for (const c of parts) { out.set(c, p); p += c.length }
  return out
}

// ---- byte helpers ------------------------------------------------------------------------------

/** Lowercase hex of the bytes (a view of `b`, whatever its offset). */
export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** A plain Uint8Array view, so Buffers from the oracle compare equal to our Uint8Arrays. */
export const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)

// ---- CAR construction for tests ----------------------------------------------------------------

/** Concatenates byte arrays. */
export function concatBytes (parts: Uint8Array[]): Uint8Array {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let pos = 0
  for (const p of parts) { out.set(p, pos); pos += p.length }
  return out
}

/**
 * Wraps a CARv1 in a CARv2: pragma, header, `padBefore` zero bytes, the payload, `padAfter`
 * zero bytes, then `index` (if any). Mirrors go-car's layout (dataOffset 51 without padding).
 */
export function wrapCarV2 (v1: Uint8Array, index?: Uint8Array, options: { padBefore?: number, padAfter?: number } = {}): Uint8Array {
  const padBefore = options.padBefore ?? 0
  const padAfter = options.padAfter ?? 0
  const header = new Uint8Array(51)
  header.set([0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02], 0)
  const view = new DataView(header.buffer)
  const dataOffset = 51 + padBefore
  const indexOffset = index === undefined ? 0 : dataOffset + v1.length + padAfter
  view.setBigUint64(27, BigInt(dataOffset), true)
  view.setBigUint64(35, BigInt(v1.length), true)
  view.setBigUint64(43, BigInt(indexOffset), true)
  const parts = [header, new Uint8Array(padBefore), v1, new Uint8Array(padAfter)]
  if (index !== undefined) parts.push(index)
  return concatBytes(parts)
}

/** XORs bytes[position] with `mask`; fails when position is outside bytes (a typed array would drop the write). */
export function flipBits (bytes: Uint8Array, position: number, mask: number): void {
  bytes[position] = at(bytes, position) ^ mask
}
