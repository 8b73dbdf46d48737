// Sections kept as the chunks their response arrived in (src/storage/remote/chunks.ts): cutting
// a body into pieces at section boundaries, copying a range out, and streaming from an offset
// must give exactly the body's bytes whatever the chunking.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { PieceCutter, copiesFrom, copyChunks, joinChunks, type Chunks } from '../src/storage/remote/chunks.js'

const test = suite('remote chunks')

/** A body and a way of cutting it into arriving chunks (cut points, possibly repeated: empty chunks). */
const arrival = fc.uint8Array({ minLength: 0, maxLength: 600 }).chain((body) => fc.record({
  body: fc.constant(body),
  cuts: fc.array(fc.integer({ min: 0, max: body.length }), { maxLength: 12 }).map((c) => c.sort((a, b) => a - b))
}))

function arrive (body: Uint8Array, cuts: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = []
  let at = 0
  for (const c of [...cuts, body.length]) {
    chunks.push(body.subarray(at, c))
    at = c
  }
  return chunks
}

function concat (parts: Iterable<Uint8Array>): number[] {
  const out: number[] = []
  for (const p of parts) out.push(...p)
  return out
}

test('PieceCutter: pieces of exactly pieceBytes (the last shorter), together the body, no byte copied', () => {
  fc.assert(fc.property(arrival, fc.integer({ min: 1, max: 200 }), ({ body, cuts }, pieceBytes) => {
    const cutter = new PieceCutter(pieceBytes)
    for (const chunk of arrive(body, cuts)) cutter.push(chunk)
    const pieces = cutter.finish()
    assert.is(pieces.length, Math.ceil(body.length / pieceBytes))
    pieces.forEach((p, k) => {
      assert.is(p.byteLength, Math.min(pieceBytes, body.length - k * pieceBytes))
      assert.is(p.parts.reduce((n, part) => n + part.byteLength, 0), p.byteLength)
      for (const part of p.parts) assert.is(part.buffer, body.buffer, 'a view of what arrived')
    })
    assert.equal(concat(pieces.flatMap((p) => p.parts)), [...body])
  }))
})

test('PieceCutter with buffers to copy into: the same pieces, each in the buffer given for it, the chunks not kept', () => {
  fc.assert(fc.property(arrival, fc.integer({ min: 1, max: 200 }), ({ body, cuts }, pieceBytes) => {
    const given: Uint8Array[] = []
    const cutter = new PieceCutter(pieceBytes, undefined, (k) => {
      assert.is(k, given.length, 'asked for in order, once per piece')
      const buffer = new Uint8Array(pieceBytes + 3)
      given.push(buffer)
      return buffer
    })
    for (const chunk of arrive(body, cuts)) cutter.push(chunk)
    const pieces = cutter.finish()
    assert.is(pieces.length, Math.ceil(body.length / pieceBytes))
    assert.is(given.length, pieces.length)
    pieces.forEach((p, k) => {
      assert.is(p.byteLength, Math.min(pieceBytes, body.length - k * pieceBytes))
      assert.is(p.parts.length, 1)
      assert.is(p.parts[0]?.buffer, given[k]?.buffer, 'in the buffer given for it')
    })
    body.fill(0x55)
    assert.ok(pieces.every((p) => p.parts.every((part) => part.buffer !== body.buffer)))
  }))
})

test('copyChunks and joinChunks give the bytes of any range; copiesFrom the suffix, in new buffers', () => {
  fc.assert(fc.property(arrival, fc.nat(700), fc.nat(700), fc.nat(50), ({ body, cuts }, a, b, base) => {
    const chunks: Chunks = { parts: arrive(body, cuts), byteLength: body.length }
    assert.equal([...joinChunks(chunks)], [...body])
    // [position, end) in the source's coordinates; the chunks start at `base`.
    const position = Math.min(a, b)
    const end = Math.max(a, b)
    const out = new Uint8Array(end - position).fill(0xee)
    copyChunks(chunks, base, out, position, end)
    const expected = Array.from({ length: end - position }, (_, i) => {
      const at = position + i - base
      return at >= 0 && at < body.length ? body[at] : 0xee
    })
    assert.equal([...out], expected)
    const offset = Math.min(a, body.length)
    const size = 1 + (b % 97)
    const copies = copiesFrom(chunks, offset, size)
    assert.ok(copies.every((c) => c.byteLength <= size && c.byteLength > 0))
    const want = [...body.subarray(offset)]
    assert.equal(concat(copies), want)
    // Copies: the chunks' memory may be reused at once.
    for (const part of chunks.parts) part.fill(0x77)
    assert.equal(concat(copies), want)
  }))
})

test.run()
