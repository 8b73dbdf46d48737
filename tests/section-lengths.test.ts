// Block lengths from the index (SectionLengths) and blocks out of their located ranges
// (LocatedBlockReader): what a random get of a shard read in place does with one ranged read.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { fixture, carBlocks } from './helpers/fixtures.js'
import { bytesReader, hex } from './helpers/file-reader.js'
import { at, rejectsWith } from './helpers/assert.js'
import { carOf, carSpecArb, encodeCar, makeBlock, patterned, RAW } from './helpers/car-gen.js'
import type { BlockKind } from './helpers/car-gen.js'
import { indexCar } from '../src/format/car/indexer.js'
import { LocatedBlockReader } from '../src/format/car/located-block.js'
import { SectionLengths } from '../src/format/index/section-lengths.js'
import { MultihashIndexSortedView } from '../src/format/index/index-view.js'
import { SortedIndex } from '../src/format/index/sorted-index.js'
import { encodeMultihashIndexSorted } from '../src/format/index/multihash-index-sorted.js'
import { HashMismatchError, InvalidCarError } from '../src/base/errors.js'
import type { IndexEntry, ShardIndex } from '../src/base/index-types.js'

const test = suite('section lengths and located blocks')

/** A ShardIndex with nothing but the interface: SectionLengths must copy it into positions. */
function plainIndex (entries: IndexEntry[]): ShardIndex {
  const map = new Map(entries.map((e) => [hex(e.multihash), e.offset]))
  return {
    get: (mh) => map.get(hex(mh)),
    size: map.size,
    * [Symbol.iterator] () { yield * entries }
  }
}

/** For every block of the CAR at `name`: locate it, read exactly that range from the file, decode it. */
async function checkFixture (name: string, blocksOf = name): Promise<number> {
  const bytes = await readFile(fixture(name))
  const { index, layout } = await indexCar(bytesReader(bytes))
  const payloadSize = layout.payloadSize ?? bytes.length
  const blocks = await carBlocks(blocksOf)
  const reader = new LocatedBlockReader()
  const views: ShardIndex[] = [index, new MultihashIndexSortedView(encodeMultihashIndexSorted(index)), plainIndex([...index])]
  for (const view of views) {
    const lengths = new SectionLengths(view, payloadSize)
    assert.is(lengths.byteLength, 0, 'nothing is computed before the first locate')
    for (const block of blocks) {
      // Identity CIDs are never indexed: their data is the digest.
      if (block.cid.multihash.code === 0x00) {
        assert.is(lengths.locate(block.cid.multihash.bytes), undefined)
        assert.is(hex(await reader.read(block.cid, new Uint8Array(0), 0)), hex(block.bytes))
        continue
      }
      const range = lengths.locate(block.cid.multihash.bytes)
      if (range === undefined) throw new Error(`${block.cid.toString()} not located`)
      const start = layout.payloadOffset + range.offset
      const got = await reader.read(block.cid, bytes.subarray(start, start + range.length), start)
      assert.is(hex(got), hex(block.bytes), block.cid.toString())
    }
    assert.is(lengths.byteLength, 4 * index.size, 'one u32 per entry')
  }
  return blocks.length
}

test('every block of the fixtures, read from its located range, decodes to exactly that block', async () => {
  assert.is(await checkFixture('sample-v1.car'), 1049)
  assert.is(await checkFixture('sample-wrapped-v2.car'), 1049)
  // @ipld/car cannot read past a zero-length section: the same blocks from sample-v1.car.
  assert.is(await checkFixture('sample-v1-with-zero-len-section.car', 'sample-v1.car'), 1049)
})

test('lengths are exact section lengths when the index holds every section; the last runs to the payload end', () => {
  const kinds: BlockKind[] = ['raw', 'sha512', 'blake2b', 'cbor', 'v0']
  const car = encodeCar(Array.from({ length: 40 }, (_, i) => makeBlock(at(kinds, i % kinds.length), patterned(i * 37 % 900, i + 1))))
  const index = SortedIndex.from(car.sections.map((s) => ({ multihash: s.block.cid.multihash.bytes, offset: s.offset })))
  const lengths = new SectionLengths(index, car.v1.length)
  for (const s of car.sections) {
    assert.equal(lengths.locate(s.block.cid.multihash.bytes), { offset: s.offset, length: s.end - s.offset })
  }
  assert.is(at(car.sections, car.sections.length - 1).end, car.v1.length)
  assert.is(lengths.locate(makeBlock('raw', patterned(5, 999_999)).cid.multihash.bytes), undefined)
})

test('property: in any generated CAR every indexed block is located and read back byte-equal', async () => {
  const reader = new LocatedBlockReader()
  await fc.assert(fc.asyncProperty(carSpecArb, async (spec) => {
    const car = carOf(spec)
    const { index, layout } = await indexCar(bytesReader(car.bytes))
    const lengths = new SectionLengths(index, layout.payloadSize ?? car.bytes.length)
    for (const s of car.sections) {
      const cid = s.block.cid
      if (cid.multihash.code === 0x00) continue
      const range = lengths.locate(cid.multihash.bytes)
      if (range === undefined) throw new Error(`${cid.toString()} not located`)
      // A repeated block is indexed at its first section only.
      if (range.offset !== s.offset) continue
      assert.ok(range.length >= s.end - s.offset, 'a range never cuts its section short')
      const start = car.payloadOffset + range.offset
      assert.equal(await reader.read(cid, car.bytes.subarray(start, start + range.length), start), s.block.bytes)
    }
  }), { numRuns: 150 })
})

test('offsets past the payload and two entries at one offset are InvalidCarError', () => {
  const a = makeBlock('raw', patterned(10, 1)).cid.multihash.bytes
  const b = makeBlock('raw', patterned(10, 2)).cid.multihash.bytes
  const past = new SectionLengths(SortedIndex.from([{ multihash: a, offset: 10 }, { multihash: b, offset: 100 }]), 100)
  assert.throws(() => past.build(), (e: Error) => e instanceof InvalidCarError && /offset 100 .*100-byte payload/.test(e.message))
  const twice = new SectionLengths(SortedIndex.from([{ multihash: a, offset: 10 }, { multihash: b, offset: 10 }]), 100)
  assert.throws(() => twice.locate(a), (e: Error) => e instanceof InvalidCarError && /two entries .* offset 10/.test(e.message))
  assert.throws(() => new SectionLengths(SortedIndex.empty, -1), RangeError)
  assert.is(new SectionLengths(SortedIndex.empty, 0).locate(a), undefined)
})

// ---- LocatedBlockReader -------------------------------------------------------------------------

function sectionBytes (kind: BlockKind, size: number, seed: number): { cid: CID, data: Uint8Array, bytes: Uint8Array } {
  const car = encodeCar([makeBlock(kind, patterned(size, seed))])
  const s = at(car.sections, 0)
  return { cid: s.block.cid, data: s.block.bytes, bytes: car.v1.slice(s.offset, s.end) }
}

test('sha2-256, sha2-512, blake2b-256 and identity blocks verify; a flipped data byte is ERR_HASH_MISMATCH', async () => {
  const reader = new LocatedBlockReader()
  for (const kind of ['raw', 'v0', 'sha512', 'blake2b'] as const) {
    const { cid, data, bytes } = sectionBytes(kind, 3000, 7)
    const got = await reader.read(cid, bytes, 1234)
    assert.equal(got, data, kind)
    got[0] = at(got, 0) ^ 1
    assert.equal(await reader.read(cid, bytes, 1234), data, `${kind}: a copy is returned, the range is untouched`)
    const bad = bytes.slice()
    bad[bad.length - 1] = at(bad, bad.length - 1) ^ 0x10
    await rejectsWith(reader.read(cid, bad, 1234), (e) => {
      assert.instance(e, HashMismatchError)
      assert.is(e.code, 'ERR_HASH_MISMATCH')
      assert.match(e.message, cid.toString())
      assert.match(e.message, 'byte 1234')
    })
  }
  const identity = makeBlock('identity', patterned(20, 3))
  assert.equal(await reader.read(identity.cid, new Uint8Array(0), 0), identity.bytes, 'identity: from the CID, no bytes needed')
})

test('a hash function without a hasher is ERR_UNSUPPORTED_HASH; a custom hasher makes it verifiable', async () => {
  const data = patterned(100, 5)
  const cid = CID.createV1(RAW, Digest.create(0x1e, new Uint8Array(32).fill(9)))
  const car = encodeCar([{ cid, bytes: data }])
  const s = car.v1.subarray(at(car.sections, 0).offset)
  await rejectsWith(new LocatedBlockReader().read(cid, s, 0), (e) => { assert.is(e.code, 'ERR_UNSUPPORTED_HASH') })
  const fixed = { code: 0x1e, digest: (d: Uint8Array) => Digest.create(0x1e, new Uint8Array(32).fill(d.length === 100 ? 9 : 0)) }
  assert.equal(await new LocatedBlockReader({ hashers: [fixed] }).read(cid, s, 0), data)
})

test('a range holding another block, or cut short, is ERR_INVALID_CAR (the index does not describe this CAR)', async () => {
  const reader = new LocatedBlockReader()
  const one = sectionBytes('raw', 500, 1)
  const other = sectionBytes('raw', 500, 2)
  await rejectsWith(reader.read(one.cid, other.bytes, 77), (e) => {
    assert.is(e.code, 'ERR_INVALID_CAR')
    assert.match(e.message, /different block at byte 77/)
  })
  await rejectsWith(reader.read(one.cid, one.bytes.subarray(0, one.bytes.length - 1), 77), (e) => {
    assert.is(e.code, 'ERR_INVALID_CAR')
    assert.match(e.message, /runs past its located range/)
  })
  await rejectsWith(reader.read(one.cid, one.bytes.subarray(0, 10), 77), (e) => { assert.is(e.code, 'ERR_INVALID_CAR') })
  await rejectsWith(reader.read(one.cid, new Uint8Array([0]), 77), (e) => { assert.is(e.code, 'ERR_INVALID_CAR') })
})

test.run()
