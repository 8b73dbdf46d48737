import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { CarIndexer } from '@ipld/car/indexer'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { fixture } from './helpers/fixtures.js'
import { bytesReader, concatBytes, hex, openTestReader, wrapCarV2, flipBits } from './helpers/file-reader.js'
import { indexMap, oracleIndex, patterned, writerCar } from './helpers/car-gen.js'
import type { TestReader } from './helpers/file-reader.js'
import { createShardIndexer, defaultShardIndexer, indexCar } from '../src/format/car/indexer.js'
import { readCarLayout } from '../src/format/car/layout.js'
import { readSections, SectionParser } from '../src/format/car/sections.js'
import { decodeVarint, encodeVarint, readVarint, varintLength, VarintError } from '../src/format/varint.js'
import { encodeMultihashIndexSorted } from '../src/format/index/multihash-index-sorted.js'
import { ShardBlockstore } from '../src/engine/accessor/blockstore.js'
import { InvalidCarError } from '../src/base/errors.js'
import { at, rejectsWith } from './helpers/assert.js'

// ---- helpers ----------------------------------------------------------------------------------

function sha256Cid (bytes: Uint8Array, codec: number, version: 0 | 1 = 1): CID {
  const digest = Digest.create(0x12, createHash('sha256').update(bytes).digest())
  return version === 0 ? CID.createV0(digest as never) : CID.createV1(codec, digest)
}

function identityCid (bytes: Uint8Array, codec = 0x55): CID {
  return CID.createV1(codec, Digest.create(0x00, bytes))
}

interface Block { cid: CID, bytes: Uint8Array }

/** The CARv1 @ipld/car's writer makes of `blocks`, rooted at the first block unless told. */
async function writeCar (blocks: Block[], roots: CID[] = blocks.length > 0 ? [at(blocks, 0).cid] : []): Promise<Uint8Array> {
  return await writerCar(blocks, roots)
}

function assertInvalidCar (err: unknown, pattern?: RegExp): void {
  assert.instance(err, InvalidCarError)
  const { code, message } = err as InvalidCarError
  assert.is(code, 'ERR_INVALID_CAR')
  assert.match(message, /at byte \d+/)
  if (pattern !== undefined) assert.match(message, pattern)
}

const CHUNK_SIZES = [1, 2, 3, 7, 31, 100, 4096, 65536, 1 << 22]

/** Tiny chunks come from memory (a syscall per byte would make the suite slow); big ones from the file. */
async function readerFor (name: string, chunkSize: number): Promise<TestReader> {
  if (chunkSize < 4096) return bytesReader(await readFile(fixture(name)), { chunkSize })
  return await openTestReader(fixture(name), { chunkSize })
}

// ---- fixtures ---------------------------------------------------------------------------------

const fixtures = suite('car-indexer: fixtures')
let v1Bytes: Uint8Array
let v1Oracle: Map<string, number>
fixtures.before(async () => {
  v1Bytes = await readFile(fixture('sample-v1.car'))
  v1Oracle = await oracleIndex(v1Bytes)
})

fixtures('sample-v1.car at every chunk size equals @ipld/car CarIndexer', async () => {
  assert.is(v1Oracle.size, 1043)
  for (const chunkSize of CHUNK_SIZES) {
    const reader = await readerFor('sample-v1.car', chunkSize)
    try {
      const result = await indexCar(reader.stream())
      assert.is(result.layout.version, 1)
      assert.is(result.layout.payloadOffset, 0)
      assert.is(result.embeddedIndex, 'absent')
      assert.is(result.sections, 1049)
      assert.equal(indexMap(result.index), v1Oracle, `chunk size ${chunkSize}`)
      assert.is(result.index.size, 1043)
    } finally {
      await reader.close()
    }
  }
})

fixtures('sample-wrapped-v2.car adopts its embedded index, which equals the scanned one', async () => {
  for (const chunkSize of [1, 7, 4096, 1 << 22]) {
    const reader = await readerFor('sample-wrapped-v2.car', chunkSize)
    try {
      const adopted = await indexCar(reader.stream())
      assert.is(adopted.embeddedIndex, 'adopted', adopted.embeddedIndexError?.message)
      assert.is(adopted.layout.version, 2)
      assert.is(adopted.layout.payloadOffset, 51)
      assert.is(adopted.layout.payloadSize, 479907)
      assert.is(adopted.layout.indexOffset, 479958)
      const scanned = await indexCar(reader.stream(), { useEmbeddedIndex: false })
      assert.is(scanned.embeddedIndex, 'ignored')
      assert.equal(indexMap(adopted.index), indexMap(scanned.index))
      assert.equal(indexMap(adopted.index), v1Oracle)
    } finally {
      await reader.close()
    }
  }
})

fixtures('sample-v2-indexless.car', async () => {
  const reader = await openTestReader(fixture('sample-v2-indexless.car'), { chunkSize: 999 })
  try {
    const result = await indexCar(reader.stream())
    assert.is(result.layout.version, 2)
    assert.is(result.layout.indexOffset, undefined)
    assert.is(result.embeddedIndex, 'absent')
    assert.equal(indexMap(result.index), v1Oracle)
  } finally {
    await reader.close()
  }
})

fixtures('sample-v1-with-zero-len-section.car: the zero-length section ends the data', async () => {
  const bytes = await readFile(fixture('sample-v1-with-zero-len-section.car'))
  // @ipld/car refuses this file; go-car reads it with ZeroLengthSectionAsEOF.
  await rejectsWith((async () => { for await (const _ of await CarIndexer.fromBytes(bytes)) { /* drain */ } })(), () => {})
  for (const chunkSize of [1, 5, 65536, 1 << 22]) {
    const reader = await readerFor('sample-v1-with-zero-len-section.car', chunkSize)
    try {
      const result = await indexCar(reader.stream())
      assert.equal(indexMap(result.index), v1Oracle)
    } finally {
      await reader.close()
    }
  }
})

fixtures('junk.dat and sample-corrupt-pragma.car → ERR_INVALID_CAR naming the offset', async () => {
  for (const name of ['junk.dat', 'sample-corrupt-pragma.car']) {
    for (const chunkSize of [1, 65536]) {
      const reader = await readerFor(name, chunkSize)
      try {
        await rejectsWith(defaultShardIndexer(name, reader, new AbortController().signal), (err) => assertInvalidCar(err))
      } finally {
        await reader.close()
      }
    }
  }
})

fixtures('readCarLayout with positional reads and with a stream agree for every fixture', async () => {
  const expected: Record<string, [number, number, number | undefined, number | undefined]> = {
    'sample-v1.car': [1, 0, undefined, undefined],
    'sample-wrapped-v2.car': [2, 51, 479907, 479958],
    'sample-v2-indexless.car': [2, 51, 479907, undefined],
    'sample-v1-with-zero-len-section.car': [1, 0, undefined, undefined]
  }
  for (const [name, [version, payloadOffset, payloadSize, indexOffset]] of Object.entries(expected)) {
    for (const random of [true, false]) {
      const reader = await openTestReader(fixture(name), { random, chunkSize: 10 })
      try {
        const layout = await readCarLayout(reader)
        assert.is(layout.version, version, name)
        assert.is(layout.payloadOffset, payloadOffset)
        assert.is(layout.payloadSize, payloadSize)
        assert.is(layout.indexOffset, indexOffset)
        assert.equal(layout.roots.map(String), ['bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy'])
        assert.is(layout.headerLength, 61)
      } finally {
        await reader.close()
      }
    }
  }
  for (const name of ['junk.dat', 'sample-corrupt-pragma.car']) {
    const reader = await openTestReader(fixture(name))
    try {
      await rejectsWith(readCarLayout(reader), (err) => assertInvalidCar(err))
    } finally {
      await reader.close()
    }
  }
})

fixtures('createShardIndexer over a MountReader', async () => {
  const reader = await openTestReader(fixture('sample-wrapped-v2.car'))
  try {
    const index = await createShardIndexer({ useEmbeddedIndex: false })('k', reader, new AbortController().signal)
    assert.equal(indexMap(index), v1Oracle)
  } finally {
    await reader.close()
  }
})

fixtures.run()

// ---- corrupt and truncated input ---------------------------------------------------------------

const corrupt = suite('car-indexer: corrupt input')
corrupt.before(async () => {
  v1Bytes = await readFile(fixture('sample-v1.car'))
  v1Oracle = await oracleIndex(v1Bytes)
})

corrupt('a truncated section names the byte offset where the section starts', async () => {
  const sections: Array<{ offset: number, dataOffset: number, end: number }> = []
  for await (const e of await CarIndexer.fromBytes(v1Bytes)) {
    sections.push({ offset: e.offset, dataOffset: e.blockOffset, end: e.blockOffset + e.blockLength })
  }
  const picks = [at(sections, 0), at(sections, 10), at(sections, 500), at(sections, sections.length - 1)]
  for (const s of picks) {
    // Cut inside the length varint / CID, and inside the block data.
    for (const cut of [s.offset + 1, s.offset + 5, s.dataOffset + 1, s.end - 1]) {
      if (cut <= s.offset || cut >= s.end) continue
      for (const chunkSize of [1, 13, 65536]) {
        const reader = bytesReader(v1Bytes.subarray(0, cut), { chunkSize })
        await rejectsWith(indexCar(reader.stream()), (err) => {
          assertInvalidCar(err, /truncated section/)
          assert.ok(err.message.includes(`at byte ${s.offset}`), `${err.message} (expected byte ${s.offset}, cut ${cut})`)
        })
      }
    }
  }
})

corrupt('a truncated header', async () => {
  for (const cut of [0, 1, 11, 40, 60]) {
    await rejectsWith(indexCar(bytesReader(v1Bytes.subarray(0, cut)).stream()), (err) => assertInvalidCar(err))
  }
})

corrupt('a CARv2 whose payload is cut short', async () => {
  const v2 = await readFile(fixture('sample-v2-indexless.car'))
  await rejectsWith(indexCar(bytesReader(v2.subarray(0, 300000)).stream()), (err) => assertInvalidCar(err, /truncated section/))
  await rejectsWith(indexCar(bytesReader(v2.subarray(0, 40)).stream()), (err) => assertInvalidCar(err, /CARv2 header/))
})

corrupt('section and header size limits', async () => {
  await rejectsWith(indexCar(bytesReader(v1Bytes).stream(), { maxSectionSize: 100 }), (err) => assertInvalidCar(err, /exceeds the limit/))
  await rejectsWith(indexCar(bytesReader(v1Bytes).stream(), { maxHeaderSize: 10 }), (err) => assertInvalidCar(err, /exceeds the limit/))
})

corrupt('malformed section varints and CIDs', async () => {
  const header = v1Bytes.subarray(0, 61)
  const cases: Array<[Uint8Array, RegExp]> = [
    [Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), /malformed section length/],
    [Uint8Array.of(0x05, 0x02, 0x55, 0x12, 0x01, 0x00), /unsupported CID version 2/],
    [Uint8Array.of(0x04, 0x01, 0x55, 0x12, 0x20), /past the end of its section/],
    [Uint8Array.of(0x01, 0x01), /too short for a CID/]
  ]
  for (const [section, pattern] of cases) {
    for (const chunkSize of [1, 4096]) {
      await rejectsWith(indexCar(bytesReader(concatBytes([header, section]), { chunkSize }).stream()), (err) => {
        assertInvalidCar(err, pattern)
        assert.match(err.message, /at byte 6[1-9]/)
      })
    }
  }
})

corrupt('an inconsistent or undecodable embedded index is rejected; the scanned index is used', async () => {
  const wrapped = await readFile(fixture('sample-wrapped-v2.car'))
  // An offset byte of the first entry (30 bytes of headers + 32 digest bytes in).
  const wrongOffset = Uint8Array.from(wrapped)
  flipBits(wrongOffset, 479958 + 30 + 32, 0x01)
  // A digest byte.
  const wrongDigest = Uint8Array.from(wrapped)
  flipBits(wrongDigest, 479958 + 30 + 5, 0x80)
  // Truncated index.
  const truncated = wrapped.subarray(0, wrapped.length - 3)
  // Index offset inside the payload.
  const inside = Uint8Array.from(wrapped)
  new DataView(inside.buffer).setBigUint64(43, 1000n, true)
  for (const [name, bytes, pattern] of [['offset', wrongOffset, /does not match/], ['digest', wrongDigest, /does not match/],
    ['truncated', truncated, /invalid CARv2 index/], ['inside', inside, /inside the payload/]] as const) {
    const result = await indexCar(bytesReader(bytes, { chunkSize: 4096 }).stream())
    assert.is(result.embeddedIndex, 'rejected', name)
    assert.match(result.embeddedIndexError?.message ?? '', pattern)
    assert.equal(indexMap(result.index), v1Oracle, name)
  }
})

corrupt('an aborted signal rejects with AbortError, also while the stream stalls', async () => {
  const controller = new AbortController()
  controller.abort()
  await rejectsWith(indexCar(bytesReader(v1Bytes).stream(), { signal: controller.signal }), (err) => {
    assert.is(err.name, 'AbortError')
  })
  let returned = false
  const stalled: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator] () {
      let first = true
      return {
        next: async () => {
          if (first) { first = false; return { done: false, value: v1Bytes.subarray(0, 5000) } }
          return await new Promise<IteratorResult<Uint8Array>>(() => {})
        },
        return: async () => { returned = true; return { done: true, value: undefined } }
      }
    }
  }
  const c2 = new AbortController()
  const started = Date.now()
  setTimeout(() => c2.abort(new Error('stop')), 20)
  await rejectsWith(indexCar(stalled, { signal: c2.signal }), (err) => {
    assert.is(err.name, 'AbortError')
    assert.is(err.code, 'ABORT_ERR')
  })
  assert.ok(Date.now() - started < 2000)
  assert.ok(returned, 'the source iterator is closed')
  const reader = await openTestReader(fixture('sample-v1.car'), { chunkSize: 1024 })
  const c3 = new AbortController()
  const indexing = defaultShardIndexer('k', reader, c3.signal)
  c3.abort()
  await rejectsWith(indexing, (err) => assert.is(err.name, 'AbortError'))
  await reader.close()
})

corrupt.run()

// ---- generated CARs -----------------------------------------------------------------------------

const generated = suite('car-indexer: generated CARs')

function assortedBlocks (): Block[] {
  const blocks: Block[] = []
  const sizes = [0, 1, 2, 33, 127, 128, 1000, 1024, 16383, 16384, 65535, 65536, 65537, (1 << 20) + 3, 2 << 20]
  const codecs = [0x55, 0x71, 0x70]
  sizes.forEach((size, i) => {
    const bytes = patterned(size, i + 1)
    blocks.push({ cid: sha256Cid(bytes, at(codecs, i % codecs.length)), bytes })
  })
  // CIDv0 (dag-pb, sha2-256).
  const pb = patterned(300, 99)
  blocks.push({ cid: sha256Cid(pb, 0x70, 0), bytes: pb })
  // Identity CIDs: carried in the CAR, never indexed.
  const inline = new TextEncoder().encode('inline identity block')
  blocks.push({ cid: identityCid(inline), bytes: inline })
  blocks.push({ cid: identityCid(new Uint8Array(0), 0x71), bytes: new Uint8Array(0) })
  // A duplicate block and the same multihash under another codec: one index entry, the first offset.
  blocks.push(at(blocks, 4))
  blocks.push({ cid: CID.createV1(0x71, at(blocks, 6).cid.multihash), bytes: at(blocks, 6).bytes })
  // A 1 KiB tail so the big blocks are not last.
  const tail = patterned(1024, 1234)
  blocks.push({ cid: sha256Cid(tail, 0x55), bytes: tail })
  return blocks
}

generated('assorted sizes, codecs, CID versions and identity CIDs at many chunkings', async () => {
  const blocks = assortedBlocks()
  const car = await writeCar(blocks)
  const oracle = await oracleIndex(car)
  assert.is(oracle.size, 17)
  const chunkings = [[1], [3, 5, 7], [64], [1000], [65536], [1 << 20], [1 << 24], [2, 70000, 1, 9]]
  for (const chunks of chunkings) {
    const result = await indexCar(bytesReader(car, { chunks }).stream())
    assert.equal(indexMap(result.index), oracle, `chunks ${chunks.join(',')}`)
    assert.is(result.sections, blocks.length)
  }
  const index = (await indexCar(bytesReader(car).stream())).index
  for (const b of blocks) {
    if (b.cid.multihash.code === 0x00) assert.is(index.get(b.cid.multihash.bytes), undefined, 'identity CIDs are not indexed')
    else assert.is(index.get(b.cid.multihash.bytes), oracle.get(hex(b.cid.multihash.bytes)))
  }
  // ...but served.
  const bs = new ShardBlockstore({ reader: bytesReader(car), index, payloadOffset: 0 })
  for (const b of blocks) {
    assert.ok(await bs.has(b.cid))
    assert.equal(await bs.get(b.cid), b.bytes, b.cid.toString())
    assert.is(await bs.getSize(b.cid), b.bytes.length)
  }
})

generated('generated CARv2: padded, with our own embedded index (adopted) and without', async () => {
  const blocks = assortedBlocks()
  const v1 = await writeCar(blocks)
  const oracle = await oracleIndex(v1)
  const scanned = (await indexCar(bytesReader(v1).stream())).index
  const embedded = encodeMultihashIndexSorted(scanned)
  for (const [padBefore, padAfter] of [[0, 0], [100, 7], [5000, 70000]] as const) {
    const withIndex = wrapCarV2(v1, embedded, { padBefore, padAfter })
    const r1 = await indexCar(bytesReader(withIndex, { chunkSize: 333 }).stream())
    assert.is(r1.embeddedIndex, 'adopted', r1.embeddedIndexError?.message)
    assert.is(r1.layout.payloadOffset, 51 + padBefore)
    assert.equal(indexMap(r1.index), oracle)
    const without = wrapCarV2(v1, undefined, { padBefore, padAfter })
    const r2 = await indexCar(bytesReader(without, { chunkSize: 333 }).stream())
    assert.is(r2.embeddedIndex, 'absent')
    assert.equal(indexMap(r2.index), oracle)
  }
})

generated('an empty CAR (roots only, no sections)', async () => {
  const root = sha256Cid(new Uint8Array(1), 0x55)
  const car = await writeCar([], [root])
  const result = await indexCar(bytesReader(car).stream())
  assert.is(result.index.size, 0)
  assert.equal(result.layout.roots.map(String), [root.toString()])
})

generated('property: any blocks at any chunking index like @ipld/car', async () => {
  const blockArb = fc.record({
    size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 20000 })),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    kind: fc.constantFrom('raw', 'cbor', 'pb', 'v0', 'identity')
  })
  await fc.assert(fc.asyncProperty(
    fc.array(blockArb, { minLength: 0, maxLength: 25 }),
    fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 8 }),
    async (specs, chunks) => {
      const blocks: Block[] = specs.map(({ size, seed, kind }) => {
        const bytes = patterned(kind === 'identity' ? size % 64 : size, seed)
        const cid = kind === 'identity'
          ? identityCid(bytes)
          : sha256Cid(bytes, kind === 'raw' ? 0x55 : kind === 'cbor' ? 0x71 : 0x70, kind === 'v0' ? 0 : 1)
        return { cid, bytes }
      })
      const car = await writeCar(blocks, [sha256Cid(new Uint8Array(0), 0x55)])
      const result = await indexCar(bytesReader(car, { chunks }).stream())
      assert.equal(indexMap(result.index), await oracleIndex(car))
      assert.is(result.sections, blocks.length)
    }
  ), { numRuns: 150 })
})

generated.run()

// ---- sections and varints ---------------------------------------------------------------------

const parts = suite('car-indexer: sections and varints')

parts('readSections yields what CarIndexer reports, CID bytes included', async () => {
  const bytes = await readFile(fixture('sample-v1.car'))
  const expected: Array<{ cid: string, offset: number, length: number, blockOffset: number, blockLength: number }> = []
  for await (const e of await CarIndexer.fromBytes(bytes)) {
    expected.push({ cid: e.cid.toString(), offset: e.offset, length: e.length, blockOffset: e.blockOffset, blockLength: e.blockLength })
  }
  for (const chunkSize of [1, 17, 65536]) {
    const got = []
    for await (const s of readSections(bytesReader(bytes, { chunkSize }).stream(), { skipHeader: true })) {
      const cid = CID.decode(s.cid)
      assert.is(hex(s.multihash), hex(cid.multihash.bytes))
      got.push({ cid: cid.toString(), offset: s.offset, length: s.sectionLength, blockOffset: s.dataOffset, blockLength: s.dataLength })
    }
    assert.equal(got, expected)
  }
})

parts('SectionParser: zero-length section stops, returning the bytes it used', () => {
  const seen: number[] = []
  const p = new SectionParser((h) => seen.push(h.offset), { startOffset: 10 })
  const section = Uint8Array.of(0x05, 0x01, 0x55, 0x00, 0x01, 0x61)
  const used = p.push(concatBytes([section, Uint8Array.of(0x00), Uint8Array.of(0xde, 0xad)]))
  assert.is(used, 7)
  assert.ok(p.done)
  assert.ok(p.endedByZeroLength)
  assert.equal(seen, [10])
  assert.is(p.push(Uint8Array.of(1, 2, 3)), 0)
})

parts('SectionParser: the limit ends the payload inside a chunk', () => {
  const seen: number[] = []
  const section = Uint8Array.of(0x05, 0x01, 0x55, 0x00, 0x01, 0x61)
  const p = new SectionParser((h) => seen.push(h.offset), { limit: 12 })
  assert.is(p.push(concatBytes([section, section, Uint8Array.of(9, 9, 9)])), 12)
  assert.ok(p.done)
  assert.equal(seen, [0, 6])
  const q = new SectionParser(() => {}, { limit: 9 })
  assert.throws(() => q.push(concatBytes([section, section])),
    (err: InvalidCarError) => err.code === 'ERR_INVALID_CAR' && /truncated section.*at byte 6/.test(err.message))
})

parts('varint: decode, bounds and errors', () => {
  assert.equal(decodeVarint(Uint8Array.of(0x00)), { value: 0, length: 1 })
  assert.equal(decodeVarint(Uint8Array.of(0x81, 0x08)), { value: 0x0401, length: 2 })
  assert.equal(decodeVarint(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f)), { value: 2 ** 53 - 1, length: 8 })
  assert.equal(decodeVarint(Uint8Array.of(9, 0x80, 0x01), 1), { value: 128, length: 2 })
  const out = { value: 0, length: 0 }
  assert.not.ok(readVarint(Uint8Array.of(0x80, 0x80), 0, 2, out))
  assert.throws(() => decodeVarint(Uint8Array.of(0x80)), (e: unknown) => e instanceof VarintError && e.reason === 'truncated')
  assert.throws(() => decodeVarint(new Uint8Array(10).fill(0x80)), (e: unknown) => e instanceof VarintError && e.reason === 'too-long')
  assert.throws(() => readVarint(new Uint8Array(9).fill(0x80), 0, 9, out), (e: unknown) => e instanceof VarintError && e.reason === 'too-long')
  assert.throws(() => decodeVarint(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)), (e: VarintError) => e.reason === 'too-large')
  fc.assert(fc.property(fc.maxSafeNat(), (n) => {
    const buf = new Uint8Array(10)
    const len = encodeVarint(n, buf, 1)
    assert.is(len, varintLength(n))
    assert.equal(decodeVarint(buf, 1), { value: n, length: len })
  }))
})

parts.run()
