/**
 * A `Range` header against a representation of `size` bytes (RFC 9110 §14). One range is
 * served; several are answered with the whole representation (a server may ignore Range;
 * multipart/byteranges buys clients of whole CARs nothing). A header that does not parse, or
 * another unit, is ignored the same way, as the RFC says.
 */
export type RangeAnswer =
  | { kind: 'whole' }
  | { kind: 'part', start: number, end: number } // inclusive, as Content-Range writes it
  | { kind: 'unsatisfiable' }

const SPEC = /^(\d*)-(\d*)$/

/** Digits as a number; past the safe integers, Infinity (larger than any size). */
function count (digits: string): number {
  const n = Number(digits)
  return Number.isSafeInteger(n) ? n : Infinity
}

export function parseRange (header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: 'whole' }
  const eq = header.indexOf('=')
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'whole' }
  const specs = header.slice(eq + 1).split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (specs.length !== 1) return { kind: 'whole' }
  const m = SPEC.exec(specs[0] as string)
  if (m === null) return { kind: 'whole' }
  const [, first = '', last = ''] = m
  if (first === '' && last === '') return { kind: 'whole' }
  if (first === '') {
    // A suffix: the last n bytes (all of them when n ≥ size).
    const n = count(last)
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'part', start: Math.max(0, size - n), end: size - 1 }
  }
  const start = count(first)
  if (last !== '' && count(last) < start) return { kind: 'whole' }
  if (start >= size) return { kind: 'unsatisfiable' }
  return { kind: 'part', start, end: last === '' ? size - 1 : Math.min(count(last), size - 1) }
}
