// Adopting a CARv2's embedded index with two random reads (adoptEmbeddedIndex): what a remote
// shard read in place is indexed with. Structure validated, corrupt indexes fail with a stable
// code, and whatever is adopted never makes a get return wrong bytes.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import fc from 'fast-check'
import { fixture } from './helpers/fixtures.js'
import { bytesReader, hex, wrapCarV2 } from './helpers/file-reader.js'
import { at, rejectsWith } from './helpers/assert.js'
import { carOf, carSpecArb, encodeCar, makeBlock, patterned } from './helpers/car-gen.js'
import type { GeneratedCar } from './helpers/car-gen.js'
import { adoptEmbeddedIndex } from '../src/format/car/remote-index.js'
import type { AdoptedIndex, RandomRead } from '../src/format/car/remote-index.js'
import { LocatedBlockReader } from '../src/format/car/located-block.js'
import { readCarLayout } from '../src/format/car/layout.js'
import { decodeCarIndex, encodeMultihashIndexSorted } from '../src/format/index/multihash-index-sorted.js'
import { encodeVarint } from '../src/format/varint.js'
import { InvalidCarError } from '../src/base/errors.js'

const test = suite('adopting a CARv2 index in place')

interface Counted { read: RandomRead, ranges: Array<[number, number]> }

/** Positional reads over `bytes` that record every range asked for and refuse any past the end. */
function counted (bytes: Uint8Array): Counted {
  const ranges: Array<[number, number]> = []
  return {
    ranges,
    read: async (position, length) => {
      ranges.push([position, length])
      if (position < 0 || length <= 0 || position + length > bytes.length) {
        throw new RangeError(`read [${position}, +${length}) outside ${bytes.length} bytes`)
      }
      return bytes.slice(position, position + length)
    }
  }
}

function adopted (result: Awaited<ReturnType<typeof adoptEmbeddedIndex>>): AdoptedIndex {
  if (result.kind !== 'adopted') throw new Error(`expected adoption, got scan (${result.reason})`)
  return result
}

test('sample-wrapped-v2.car: two reads, the header and the index region; the index is the embedded one', async () => {
  const bytes = new Uint8Array(await readFile(fixture('sample-wrapped-v2.car')))
  const { read, ranges } = counted(bytes)
  const result = adopted(await adoptEmbeddedIndex(read, bytes.length))
  const layout = await readCarLayout(bytesReader(bytes))
  assert.equal(result.layout, { ...layout, version: 2, payloadSize: layout.payloadSize, indexOffset: layout.indexOffset })
  const indexOffset = layout.indexOffset ?? NaN
  assert.equal(ranges, [[0, 4096], [indexOffset, bytes.length - indexOffset]])
  assert.is(result.reads, 2)
  assert.is(result.bytesRead, 4096 + bytes.length - indexOffset)
  const embedded = decodeCarIndex(bytes.subarray(indexOffset), { skipIdentity: true })
  assert.is(result.index.size, 1043)
  for (const { multihash, offset } of embedded) assert.is(result.index.get(multihash), offset)
  assert.is(result.lengths.byteLength, 4 * 1043, 'block lengths built while validating')
})

test('a CARv1, a CARv2 without index, an IndexSorted index and an oversized one ask for one streaming pass', async () => {
  const v1 = new Uint8Array(await readFile(fixture('sample-v1.car')))
  let c = counted(v1)
  let r = await adoptEmbeddedIndex(c.read, v1.length)
  assert.is(r.kind, 'scan')
  assert.is(r.kind === 'scan' && r.reason, 'carv1')
  assert.is(r.layout.version, 1)
  assert.is(c.ranges.length, 1)

  const indexless = new Uint8Array(await readFile(fixture('sample-v2-indexless.car')))
  c = counted(indexless)
  r = await adoptEmbeddedIndex(c.read, indexless.length)
  assert.is(r.kind === 'scan' && r.reason, 'no-index')
  assert.is(c.ranges.length, 1)

  // IndexSorted: the body of a one-code MultihashIndexSorted, under codec 0x0400.
  const car = encodeCar(Array.from({ length: 20 }, (_, i) => makeBlock('raw', patterned(100 + i, i + 1))), { version: 2 })
  const mhis = car.bytes.subarray(car.indexOffset)
  const body = mhis.subarray(2 + 4 + 8)
  const sorted = new Uint8Array(2 + body.length)
  sorted.set(body, encodeVarint(0x0400, sorted, 0))
  const withSorted = wrapCarV2(car.v1, sorted)
  r = await adoptEmbeddedIndex(counted(withSorted).read, withSorted.length)
  assert.is(r.kind === 'scan' && r.reason, 'index-sorted')

  c = counted(car.bytes)
  r = await adoptEmbeddedIndex(c.read, car.bytes.length, { maxIndexSize: mhis.length - 1 })
  assert.is(r.kind === 'scan' && r.reason, 'index-too-large')
  assert.is(c.ranges.length, 1, 'the oversized index is not fetched')
  assert.ok(adopted(await adoptEmbeddedIndex(counted(car.bytes).read, car.bytes.length, { maxIndexSize: mhis.length })))
})

test('a CARv1 header longer than the first read costs one more read; a file smaller than it, none', async () => {
  const roots = Array.from({ length: 200 }, (_, i) => makeBlock('raw', patterned(8, i + 1)).cid)
  const car = encodeCar([makeBlock('raw', patterned(300, 9))], { version: 2, roots })
  const c = counted(car.bytes)
  const r = adopted(await adoptEmbeddedIndex(c.read, car.bytes.length))
  assert.is(r.layout.roots.length, 200)
  assert.is(c.ranges.length, 3)
  const small = encodeCar([makeBlock('raw', patterned(300, 9))], { version: 2 })
  const s = counted(small.bytes)
  adopted(await adoptEmbeddedIndex(s.read, small.bytes.length))
  assert.equal(s.ranges, [[0, small.bytes.length], [small.indexOffset ?? NaN, small.bytes.length - (small.indexOffset ?? NaN)]])
})

// ---- corrupt indexes ------------------------------------------------------------------------------

function carWithIndex (entries: (car: GeneratedCar) => Array<{ multihash: Uint8Array, offset: number }>): Uint8Array {
  const blocks = Array.from({ length: 30 }, (_, i) => makeBlock(i % 3 === 0 ? 'sha512' : 'raw', patterned(200 + i, i + 1)))
  const car = encodeCar(blocks, { version: 2, index: false })
  return wrapCarV2(car.v1, encodeMultihashIndexSorted(entries(car)))
}

const entriesOf = (car: GeneratedCar): Array<{ multihash: Uint8Array, offset: number }> =>
  car.sections.map((s) => ({ multihash: s.block.cid.multihash.bytes, offset: s.offset }))

async function invalid (bytes: Uint8Array, pattern: RegExp): Promise<void> {
  await rejectsWith(adoptEmbeddedIndex(counted(bytes).read, bytes.length), (e) => {
    assert.instance(e, InvalidCarError)
    assert.is(e.code, 'ERR_INVALID_CAR')
    assert.match(e.message, pattern)
    assert.match(e.message, /at byte \d+/)
  })
}

test('corrupt indexes are ERR_INVALID_CAR saying what and where', async () => {
  const good = carWithIndex(entriesOf)
  adopted(await adoptEmbeddedIndex(counted(good).read, good.length))
  const indexOffset = Number(new DataView(good.buffer).getBigUint64(43, true))
  // Entries of the first bucket start after codec (2), code count (4), code (8), bucket count (4), width (4), length (8).
  const first = indexOffset + 2 + 4 + 8 + 4 + 4 + 8
  const width = new DataView(good.buffer).getUint32(indexOffset + 2 + 4 + 8 + 4, true)

  const swapped = good.slice()
  swapped.set(good.subarray(first, first + width), first + width)
  swapped.set(good.subarray(first + width, first + 2 * width), first)
  await invalid(swapped, /entries not sorted by digest/)

  await invalid(carWithIndex((car) => entriesOf(car).map((e, i) => i === 3 ? { ...e, offset: car.v1.length } : e)), /offset \d+ is outside the payload/)
  await invalid(carWithIndex((car) => entriesOf(car).map((e, i) => i === 3 ? { ...e, offset: 2 } : e)), /offset 2 is outside the payload/)
  await invalid(carWithIndex((car) => entriesOf(car).map((e, i) => i === 3 ? { ...e, offset: at(car.sections, 5).offset } : e)), /two entries/)
  await invalid(good.subarray(0, good.length - 1), /truncated/)
  await invalid(Uint8Array.of(...good, 0), /trailing bytes/)
  const unknown = good.slice()
  unknown[indexOffset] = 0x82 // varint 0x81 0x08 (0x0401) becomes 0x82 0x08 (0x0402)
  await invalid(unknown, /unknown CARv2 index codec 0x402/)
  const inside = good.slice()
  new DataView(inside.buffer).setBigUint64(43, BigInt(indexOffset - 10), true)
  await invalid(inside, /index offset \d+ lies inside the data/)
  const past = good.slice()
  new DataView(past.buffer).setBigUint64(43, BigInt(good.length), true)
  await invalid(past, /index offset \d+ is at or past the end/)
})

/** A byte-level damage of a CARv2: overwrite, cut or extend, aimed at the head or the index region. */
const damageArb = fc.record({
  where: fc.constantFrom('index', 'head', 'anywhere'),
  at: fc.nat(),
  kind: fc.constantFrom('xor', 'truncate', 'extend'),
  mask: fc.integer({ min: 1, max: 255 }),
  count: fc.integer({ min: 1, max: 4 })
})

test('property: damaged CARv2s adopt, ask for a scan or fail with ERR_INVALID_CAR; no get through an adopted index returns wrong bytes', async () => {
  const reader = new LocatedBlockReader()
  await fc.assert(fc.asyncProperty(carSpecArb, damageArb, async (spec, d) => {
    const car = carOf({ ...spec, version: 2, index: true })
    const bytes = car.bytes.slice()
    const indexOffset = car.indexOffset ?? car.bytes.length
    const headEnd = Math.min(bytes.length, car.payloadOffset + car.headerLength)
    const region = d.where === 'index' ? [indexOffset, bytes.length] : d.where === 'head' ? [0, headEnd] : [0, bytes.length]
    const span = Math.max(1, at(region, 1) - at(region, 0))
    const position = at(region, 0) + (d.at % span)
    let damaged: Uint8Array = bytes
    if (d.kind === 'xor') {
      for (let k = 0; k < d.count && position + k < bytes.length; k++) bytes[position + k] = at(bytes, position + k) ^ d.mask
    } else if (d.kind === 'truncate') {
      damaged = bytes.subarray(0, Math.min(position, bytes.length - 1))
    } else {
      damaged = Uint8Array.of(...bytes, ...new Uint8Array(d.count).fill(d.mask))
    }
    let result: Awaited<ReturnType<typeof adoptEmbeddedIndex>>
    try {
      result = await adoptEmbeddedIndex(counted(damaged).read, damaged.length)
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_INVALID_CAR', String(err))
      return
    }
    if (result.kind === 'scan') return
    for (const block of car.blocks) {
      if (block.cid.multihash.code === 0x00) continue
      const range = result.lengths.locate(block.cid.multihash.bytes)
      if (range === undefined) continue
      const start = result.layout.payloadOffset + range.offset
      try {
        const got = await reader.read(block.cid, damaged.subarray(start, start + range.length), start)
        assert.is(hex(got), hex(block.bytes), 'a returned block is the block')
      } catch (err) {
        assert.ok(['ERR_INVALID_CAR', 'ERR_HASH_MISMATCH'].includes((err as { code?: string }).code ?? ''), String(err))
      }
    }
  }), { numRuns: 300 })
})

test.run()
