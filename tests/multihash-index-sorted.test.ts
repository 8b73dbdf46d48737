import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { readFile } from 'node:fs/promises'
import { fixture } from './helpers/fixtures.js'
import { bytesReader, concatBytes, hex } from './helpers/file-reader.js'
import { indexCar } from '../src/format/car/indexer.js'
import { encodeVarint, varintLength } from '../src/format/varint.js'
import {
  CAR_INDEX_SORTED, CAR_MULTIHASH_INDEX_SORTED, decodeCarIndex, encodeMultihashIndexSorted
} from '../src/format/index/multihash-index-sorted.js'
import { SortedIndex, SortedIndexBuilder } from '../src/format/index/sorted-index.js'
import type { InvalidCarError } from '../src/base/errors.js'
import type { IndexEntry, ShardIndex } from '../src/base/index-types.js'
import { at } from './helpers/assert.js'

const INDEX_OFFSET = 479958
const INDEX_LENGTH = 41750

function entriesOf (index: ShardIndex): Array<[string, number]> {
  return [...index].map(({ multihash, offset }) => [hex(multihash), offset])
}

function multihash (code: number, digest: Uint8Array): Uint8Array {
  const out = new Uint8Array(varintLength(code) + varintLength(digest.length) + digest.length)
  let p = encodeVarint(code, out, 0)
  p += encodeVarint(digest.length, out, p)
  out.set(digest, p)
  return out
}

async function rejectsSync (fn: () => unknown, pattern: RegExp): Promise<void> {
  assert.throws(fn, (err: InvalidCarError) => err.code === 'ERR_INVALID_CAR' && pattern.test(err.message))
}

// ---- go-car compatibility ---------------------------------------------------------------------

const compat = suite('MultihashIndexSorted: go-car compatibility')
let embedded: Uint8Array
let scanned: SortedIndex
compat.before(async () => {
  const wrapped = await readFile(fixture('sample-wrapped-v2.car'))
  embedded = wrapped.subarray(INDEX_OFFSET)
  scanned = (await indexCar(bytesReader(await readFile(fixture('sample-v1.car'))).stream())).index
})

compat('the embedded index is 41,750 bytes of codec 0x0401', () => {
  assert.is(embedded.length, INDEX_LENGTH)
  assert.equal([...embedded.subarray(0, 2)], [0x81, 0x08])
})

compat('decodes to the (multihash → offset) set the streaming indexer computes for sample-v1.car', () => {
  const decoded = decodeCarIndex(embedded)
  assert.is(decoded.size, 1043)
  assert.equal(entriesOf(decoded), entriesOf(scanned))
})

compat('encode(decode(embedded)) equals the embedded bytes', () => {
  assert.equal(hex(encodeMultihashIndexSorted(decodeCarIndex(embedded))), hex(embedded))
})

compat('encode(scanned sample-v1 index) equals the embedded bytes', () => {
  const encoded = encodeMultihashIndexSorted(scanned)
  assert.is(encoded.length, INDEX_LENGTH)
  assert.ok(Buffer.from(encoded).equals(Buffer.from(embedded)))
})

compat('IndexSorted (0x0400) decodes as sha2-256', () => {
  const entries: IndexEntry[] = []
  for (let i = 0; i < 50; i++) {
    const d = new Uint8Array(32).map((_, k) => (i * 31 + k * 7) & 0xff)
    entries.push({ multihash: multihash(0x12, d), offset: i * 1000 + 3 })
  }
  const mhis = encodeMultihashIndexSorted(entries)
  // MultihashIndexSorted = codec, u32 count, u64 code, then the IndexSorted body.
  const body = mhis.subarray(2 + 4 + 8)
  const codec = new Uint8Array(2)
  encodeVarint(CAR_INDEX_SORTED, codec, 0)
  const decoded = decodeCarIndex(concatBytes([codec, body]))
  assert.equal(entriesOf(decoded), entriesOf(SortedIndex.from(entries)))
})

compat.run()

// ---- format ---------------------------------------------------------------------------------------

const format = suite('MultihashIndexSorted: format')

format('empty index', () => {
  const bytes = encodeMultihashIndexSorted([])
  assert.equal([...bytes], [0x81, 0x08, 0, 0, 0, 0])
  assert.is(decodeCarIndex(bytes).size, 0)
})

format('buckets: codes ascending, then widths ascending; digests sorted; offsets past 4 GiB', () => {
  const entries: IndexEntry[] = [
    { multihash: multihash(0xb220, new Uint8Array(32).fill(9)), offset: 2 ** 40 + 5 },
    { multihash: multihash(0x12, new Uint8Array(32).fill(2)), offset: 7 },
    { multihash: multihash(0x12, new Uint8Array(32).fill(1)), offset: 2 ** 33 },
    { multihash: multihash(0x12, new Uint8Array(20).fill(3)), offset: 11 },
    { multihash: multihash(0x13, new Uint8Array(64).fill(4)), offset: 13 }
  ]
  const bytes = encodeMultihashIndexSorted(entries)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let p = 2
  assert.is(view.getUint32(p, true), 3); p += 4
  // code 0x12: widths 28 then 40
  assert.is(Number(view.getBigUint64(p, true)), 0x12); p += 8
  assert.is(view.getUint32(p, true), 2); p += 4
  assert.is(view.getUint32(p, true), 28); p += 4
  assert.is(Number(view.getBigUint64(p, true)), 28); p += 8 + 28
  assert.is(view.getUint32(p, true), 40); p += 4
  assert.is(Number(view.getBigUint64(p, true)), 80); p += 8
  assert.is(bytes[p], 1, 'smaller digest first')
  assert.is(Number(view.getBigUint64(p + 32, true)), 2 ** 33)
  p += 80
  assert.is(Number(view.getBigUint64(p, true)), 0x13); p += 8 + 4 + 4 + 8 + 72
  assert.is(Number(view.getBigUint64(p, true)), 0xb220)
  const decoded = decodeCarIndex(bytes)
  assert.equal(entriesOf(decoded), entriesOf(SortedIndex.from(entries)))
  assert.is(decoded.get(at(entries, 0).multihash), 2 ** 40 + 5)
})

format('identity entries can be skipped on decode', () => {
  const entries: IndexEntry[] = [
    { multihash: multihash(0x00, Uint8Array.of(1, 2, 3)), offset: 1 },
    { multihash: multihash(0x12, new Uint8Array(32).fill(2)), offset: 2 }
  ]
  const bytes = encodeMultihashIndexSorted(entries)
  assert.is(decodeCarIndex(bytes).size, 2)
  assert.is(decodeCarIndex(bytes, { skipIdentity: true }).size, 1)
})

format('malformed input → ERR_INVALID_CAR with the offset', async () => {
  const good = encodeMultihashIndexSorted([{ multihash: multihash(0x12, new Uint8Array(32)), offset: 1 }])
  await rejectsSync(() => decodeCarIndex(good.subarray(0, good.length - 1)), /truncated bucket entries at byte/)
  await rejectsSync(() => decodeCarIndex(concatBytes([good, Uint8Array.of(0)])), /trailing bytes at byte/)
  await rejectsSync(() => decodeCarIndex(Uint8Array.of(0x82, 0x08, 0, 0, 0, 0)), /unsupported index codec 0x402/)
  await rejectsSync(() => decodeCarIndex(new Uint8Array(0)), /malformed codec/)
  const badWidth = Uint8Array.from(good)
  new DataView(badWidth.buffer).setUint32(2 + 4 + 8 + 4, 8, true)
  await rejectsSync(() => decodeCarIndex(badWidth), /width 8/)
  const badLength = Uint8Array.from(good)
  new DataView(badLength.buffer).setUint32(2 + 4 + 8 + 4 + 4, 39, true)
  await rejectsSync(() => decodeCarIndex(badLength), /not a multiple/)
  assert.is(CAR_MULTIHASH_INDEX_SORTED, 0x0401)
})

const entryArb = fc.record({
  code: fc.constantFrom(0x12, 0x13, 0x16, 0x1b, 0xb220, 0x1e, 0x22),
  digest: fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 1, maxLength: 70 })),
  offset: fc.oneof(fc.nat(), fc.maxSafeNat())
})

format('property: decode(encode(entries)) equals SortedIndex.from(entries)', () => {
  fc.assert(fc.property(fc.array(entryArb, { maxLength: 60 }), (specs) => {
    const entries = specs.map(({ code, digest, offset }) => ({ multihash: multihash(code, digest), offset }))
    const expected = SortedIndex.from(entries)
    const bytes = encodeMultihashIndexSorted(entries)
    assert.equal(entriesOf(decodeCarIndex(bytes)), entriesOf(expected))
    assert.equal(hex(encodeMultihashIndexSorted(decodeCarIndex(bytes))), hex(bytes))
  }), { numRuns: 300 })
})

format.run()

// ---- SortedIndex ---------------------------------------------------------------------------------

const sorted = suite('SortedIndex and SortedIndexBuilder')

function naive (entries: Array<{ multihash: Uint8Array, offset: number }>): Array<[string, number]> {
  const best = new Map<string, number>()
  for (const { multihash, offset } of entries) {
    const k = hex(multihash)
    const cur = best.get(k)
    if (cur === undefined || offset < cur) best.set(k, offset)
  }
  return [...best.entries()].sort((a, b) => Buffer.compare(Buffer.from(a[0], 'hex'), Buffer.from(b[0], 'hex')))
}

sorted('duplicates keep the smallest (first in the CAR) offset; get, size and iteration', () => {
  const b = new SortedIndexBuilder(1)
  const a = Uint8Array.of(0x12, 2, 5, 5)
  b.add(Uint8Array.of(0x12, 2, 9, 9), 50)
  b.add(a, 40)
  b.add(a, 10)
  b.add(a, 30)
  b.add(Uint8Array.of(0x12, 2, 5), 60)
  const index = b.build()
  assert.is(index.size, 3)
  assert.is(index.get(a), 10)
  assert.is(index.get(Uint8Array.of(0x12, 2, 5)), 60)
  assert.is(index.get(Uint8Array.of(0x12, 2, 5, 6)), undefined)
  assert.is(index.get(new Uint8Array(0)), undefined)
  assert.equal(entriesOf(index), [['120205', 60], ['12020505', 10], ['12020909', 50]])
  assert.is(SortedIndex.from(index), index)
  assert.is(new SortedIndexBuilder().build().size, 0)
})

sorted('the builder copies its input (views may alias reused chunks)', () => {
  const b = new SortedIndexBuilder()
  const buf = Uint8Array.of(1, 2, 3)
  b.add(buf, 0)
  buf[0] = 9
  b.addRange(Uint8Array.of(7, 7, 7, 1, 2, 4), 3, 6, 1)
  assert.equal(entriesOf(b.build()), [['010203', 0], ['010204', 1]])
})

sorted('property: build equals a naive sort, with shared prefixes, varied lengths and duplicates', () => {
  const mhArb = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 8 }),
    fc.uint8Array({ minLength: 4, maxLength: 4 }).map((d) => concatBytes([Uint8Array.of(0x12, 0x20, 0, 0), d])),
    fc.uint8Array({ minLength: 1, maxLength: 40 })
  )
  fc.assert(fc.property(fc.array(fc.record({ multihash: mhArb, offset: fc.maxSafeNat() }), { maxLength: 200 }), fc.boolean(), (entries, dup) => {
    const all = dup ? [...entries, ...entries.map((e) => ({ multihash: e.multihash, offset: Math.floor(e.offset / 2) }))] : entries
    const index = SortedIndex.from(all)
    const expected = naive(all)
    assert.equal(entriesOf(index), expected)
    for (const [k, off] of expected) assert.is(index.get(Buffer.from(k, 'hex')), off)
  }), { numRuns: 300 })
})

sorted('large builds (bucketed path) equal a naive sort', () => {
  const entries: Array<{ multihash: Uint8Array, offset: number }> = []
  let x = 12345
  const rnd = (): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x >>> 8 }
  for (let i = 0; i < 100000; i++) {
    const d = new Uint8Array(i % 10 === 0 ? 20 : 32)
    for (let k = 0; k < d.length; k++) d[k] = rnd() & 0xff
    // Collisions on the first 4 digest bytes and exact duplicates, to exercise tie handling.
    if (i % 97 === 0) d.set([1, 2, 3, 4], 0)
    entries.push({ multihash: multihash(i % 3 === 0 ? 0xb220 : 0x12, d), offset: i * 10 })
    if (i % 1000 === 0) entries.push({ multihash: at(entries, entries.length - 1).multihash.slice(), offset: i * 10 + 1 })
  }
  entries.reverse()
  const index = SortedIndex.from(entries)
  assert.equal(entriesOf(index), naive(entries))
})

sorted.run()
