/**
 * Unsigned LEB128 varints as used by CAR sections, CIDs and multihashes.
 *
 * Bounded to 9 bytes and Number.MAX_SAFE_INTEGER: every length or offset a CAR can carry
 * fits, and refusing anything larger keeps hostile input from producing imprecise numbers.
 * Non-minimal encodings are accepted here, as @ipld/car accepts them in section and header
 * lengths; the CAR section parser refuses them inside CIDs, as multiformats does.
 */

export const MAX_VARINT_BYTES = 9

/** A malformed varint. `position` is the index in the decoded buffer where the varint starts. */
export class VarintError extends Error {
  readonly position: number
  readonly reason: 'truncated' | 'too-long' | 'too-large'
  constructor (reason: 'truncated' | 'too-long' | 'too-large', position: number) {
    super(reason === 'truncated'
      ? 'truncated varint'
      : reason === 'too-long' ? `varint longer than ${MAX_VARINT_BYTES} bytes` : 'varint exceeds Number.MAX_SAFE_INTEGER')
    this.name = 'VarintError'
    this.reason = reason
    this.position = position
  }
}

/** Filled in by `readVarint`; reused by callers on hot paths so decoding allocates nothing. */
export interface VarintOut { value: number, length: number }

/**
 * Decodes at `offset`, reading no byte at or past `end`. Returns false when the buffer ends
 * before the varint does (the caller may wait for more bytes); throws VarintError when the
 * varint can never be valid.
 */
export function readVarint (bytes: Uint8Array, offset: number, end: number, out: VarintOut): boolean {
  if (offset >= end) return false
  // The caller's end is within bytes, so every read below (offset <= i < end) finds a byte.
  let b = bytes[offset]!
  if (b < 0x80) {
    out.value = b
    out.length = 1
    return true
  }
  // Bitwise ops are exact up to 28 bits (4 bytes); beyond that switch to multiplication so
  // 53-bit values survive.
  let value = b & 0x7f
  let shift = 7
  let i = offset + 1
  while (i < end) {
    b = bytes[i++]!
    const n = i - offset
    if (n > MAX_VARINT_BYTES) throw new VarintError('too-long', offset)
    if (shift < 28) value |= (b & 0x7f) << shift
    else value += (b & 0x7f) * 2 ** shift
    if (b < 0x80) {
      if (value > Number.MAX_SAFE_INTEGER) throw new VarintError('too-large', offset)
      out.value = value
      out.length = n
      return true
    }
    shift += 7
  }
  if (i - offset >= MAX_VARINT_BYTES) throw new VarintError('too-long', offset)
  return false
}

/** Decodes a complete varint at `offset`; a buffer that ends first is a `truncated` VarintError. */
export function decodeVarint (bytes: Uint8Array, offset = 0, end = bytes.length): VarintOut {
  const out: VarintOut = { value: 0, length: 0 }
  if (!readVarint(bytes, offset, end, out)) throw new VarintError('truncated', offset)
  return out
}

/** Number of bytes `encodeVarint` writes for `value`. */
export function varintLength (value: number): number {
  let n = 1
  while (value >= 0x80) {
    value = Math.floor(value / 128)
    n++
  }
  return n
}

/** Writes `value` at `offset`; returns the number of bytes written. */
export function encodeVarint (value: number, target: Uint8Array, offset = 0): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`cannot encode ${value} as an unsigned varint`)
  let i = offset
  while (value >= 0x80) {
    target[i++] = (value % 128) | 0x80
    value = Math.floor(value / 128)
  }
  target[i++] = value
  return i - offset
}
