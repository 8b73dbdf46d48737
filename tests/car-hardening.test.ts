import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { bytesReader, concatBytes, hex, u8, wrapCarV2, flipBits } from './helpers/file-reader.js'
import { at, rejectsWith } from './helpers/assert.js'
import { tempDir } from './helpers/fixtures.js'
import { openStore } from './helpers/store.js'
import { blake2b256, encodeCar, encodeHeader, encodeSection, indexMap, makeBlock, oracleIndex, patterned, RAW, strict } from './helpers/car-gen.js'
import type { Block, GeneratedCar } from './helpers/car-gen.js'
import { createShardIndexer, indexCar } from '../src/format/car/indexer.js'
import type { ShardIndexerOptions } from '../src/format/car/indexer.js'
import { encodeVarint } from '../src/format/varint.js'
import { decodeCarIndex, encodeMultihashIndexSorted } from '../src/format/index/multihash-index-sorted.js'
import { MemoryIndexRepo } from '../src/storage/index/memory-repo.js'
import { ShardBlockstore } from '../src/engine/accessor/blockstore.js'
import { BlockNotFoundError, InvalidCarError } from '../src/base/errors.js'
import { BytesMount } from '../src/storage/mount/bytes.js'
import type { IndexEntry, ShardIndex } from '../src/base/index-types.js'
import type { MountReader } from '../src/base/mount-types.js'

type Mode = [string, () => MountReader, ShardIndexerOptions]

/** Every way the indexer reads: streamed at two chunkings, positional with and without a size and tiny windows, verifying. */
function modes (bytes: Uint8Array): Mode[] {
  const sizeless = (): MountReader => {
    const r = strict(bytesReader(bytes))
    return { stream: r.stream, read: r.read, close: r.close }
  }
  return [
    ['stream 5', () => bytesReader(bytes, { random: false, chunkSize: 5 }), {}],
    ['stream 64 KiB', () => bytesReader(bytes, { random: false }), {}],
    ['positional', () => strict(bytesReader(bytes)), {}],
    ['positional, no size', sizeless, {}],
    ['positional, tiny', () => strict(bytesReader(bytes)), { windowSize: 3, probeSize: 2, skipThreshold: 1 }],
    ['positional, verifying', () => strict(bytesReader(bytes)), { verifyHashes: true, hashers: [blake2b256] }],
    ['stream 5, verifying', () => bytesReader(bytes, { random: false, chunkSize: 5 }), { verifyHashes: true, hashers: [blake2b256] }]
  ]
}

/** In every mode: InvalidCarError matching `pattern`, at byte `at` when given. */
async function expectInvalid (bytes: Uint8Array, pattern: RegExp, byte?: number, options: ShardIndexerOptions = {}): Promise<void> {
  for (const [label, reader, tuning] of modes(bytes)) {
    await rejectsWith(indexCar(reader(), { ...tuning, ...options }), (err) => {
      assert.instance(err, InvalidCarError, `${label}: ${String(err)}`)
      assert.is(err.code, 'ERR_INVALID_CAR')
      assert.match(err.message, pattern, `${label}: ${err.message as string}`)
      assert.match(err.message, /at byte \d+$/)
      if (byte !== undefined) assert.ok(err.message.endsWith(`at byte ${byte}`), `${label}: ${err.message as string} (expected byte ${byte})`)
    })
  }
}

const root = makeBlock('raw', new Uint8Array(1)).cid
const HEADER = encodeHeader([root])
const H = HEADER.length
const good = encodeSection(makeBlock('raw', patterned(50, 1)))

/** Header, a good section, then `section`. */
function withSection (section: Uint8Array | number[]): Uint8Array {
  return concatBytes([HEADER, good, Uint8Array.from(section)])
}

// ---- varints ----------------------------------------------------------------------------------------

const varints = suite('car-hardening: malformed varints')

varints('section length: too long, too large, cut short', async () => {
  const byte = H + good.length
  await expectInvalid(withSection([...new Array(10).fill(0xff), 0x01]), /malformed section length \(varint longer than 9 bytes\)/, byte)
  await expectInvalid(withSection([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), /malformed section length \(varint exceeds Number.MAX_SAFE_INTEGER\)/, byte)
  // A valid varint, but 2^53 - 1 bytes is over any limit: refused before anything is read.
  await expectInvalid(withSection([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]), /section length 9007199254740991 exceeds the limit of 33554432/, byte)
  await expectInvalid(withSection([0x80, 0x80]), /truncated section/, byte)
})

varints('CID varints: version, codec, multihash code and length', async () => {
  const byte = H + good.length
  const long = new Array(10).fill(0x80)
  const large = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
  const cases: Array<[number[], RegExp]> = [
    [[...long, 0x01], /malformed CID version \(varint longer than 9 bytes\)/],
    [[0x01, ...large], /malformed CID codec \(varint exceeds/],
    [[0x01, 0x55, ...long, 0x00], /malformed multihash code \(varint longer/],
    [[0x01, 0x55, 0x12, ...large], /malformed multihash length \(varint exceeds/],
    // A multihash length that is a fine number but longer than the section.
    [[0x01, 0x55, 0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /CID runs past the end of its section/],
    [[0x01, 0x55, 0x12, 0x40, ...new Array(32).fill(7)], /CID runs past the end of its section/]
  ]
  for (const [cid, pattern] of cases) {
    const body = [...cid, 1, 2, 3]
    await expectInvalid(withSection([body.length, ...body]), pattern)
    const [label, reader] = at(modes(withSection([body.length, ...body])), 0)
    await rejectsWith(indexCar(reader()), (err) => assert.ok(Number(/at byte (\d+)$/.exec(err.message)?.[1]) >= byte, label))
  }
})

varints('padded CID varints are refused at the CID; a store reports ERR_INVALID_CAR, not its index encoder\'s code-less error', async () => {
  const at = H + good.length + 1
  const digest = new Array(32).fill(7)
  const cases: Array<[number[], string]> = [
    [[0x81, 0x00, 0x55, 0x12, 0x20], 'CID version'],
    [[0x01, 0xd5, 0x00, 0x12, 0x20], 'CID codec'],
    [[0x01, 0x55, 0x92, 0x00, 0x20], 'multihash code'],
    [[0x01, 0x55, 0x12, 0xa0, 0x00], 'multihash length']
  ]
  const { dir, cleanup } = await tempDir()
  // The default FsIndexRepo: it encodes go-car index files, which cannot hold a padded multihash.
  const { store } = await openStore(dir)
  try {
    for (const [prefix, what] of cases) {
      const body = [...prefix, ...digest, 1, 2, 3]
      const bytes = withSection([body.length, ...body])
      const pattern = new RegExp(`malformed ${what} \\(varint not minimally encoded\\)`)
      const key = what.replace(/ /g, '-')
      await rejectsWith(store.register(key, new BytesMount(bytes)), (err) => {
        assert.is(err.code, 'ERR_SHARD_INITIALIZATION_FAILED')
        assert.instance(err.cause, InvalidCarError, `${what}: ${String(err.cause)}`)
      })
      const error = store.getShardInfo(key).error as InvalidCarError
      assert.is(error.code, 'ERR_INVALID_CAR', `${what}: ${String(error)}`)
      assert.match(error.message, pattern)
      assert.ok(error.message.endsWith(`at byte ${at}`), error.message)
      await expectInvalid(bytes, pattern, at)
    }
  } finally {
    await store.close()
    await cleanup()
  }
})

varints('CARv1 header length: too long, too large, zero, past the limit', async () => {
  await expectInvalid(Uint8Array.of(...new Array(10).fill(0xff), 0x01), /malformed header length/, 0)
  await expectInvalid(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), /malformed header length/, 0)
  await expectInvalid(Uint8Array.of(0x00, 0x01), /empty header/, 0)
  await expectInvalid(Uint8Array.of(0x80, 0x80, 0x80, 0x20, 0xa2), /header length 67108864 exceeds the limit of 33554432/, 0)
})

varints('unsupported CID versions: 0 written out, 2, 3, huge', async () => {
  const byte = H + good.length
  for (const [version, text] of [[[0x00], '0'], [[0x02], '2'], [[0x03], '3'], [[0x80, 0x80, 0x80, 0x80, 0x80, 0x20], String(2 ** 40)]] as const) {
    const body = [...version, 0x55, 0x12, 0x20, ...new Array(32).fill(1), 9, 9]
    // Named at the CID, just after the one-byte section length.
    await expectInvalid(withSection([body.length, ...body]), new RegExp(`unsupported CID version ${text}`), byte + 1)
  }
})

varints.run()

// ---- limits -----------------------------------------------------------------------------------------

const limits = suite('car-hardening: size limits')

limits('an oversize section is refused at its declared length, before any of it is read', async () => {
  const byte = H + good.length
  const len = new Uint8Array(10)
  const n = encodeVarint(33 * 1024 * 1024, len, 0)
  await expectInvalid(withSection([...len.subarray(0, n), 0x01, 0x55]), /section length 34603008 exceeds the limit of 33554432/, byte)
  // Configurable, both ways.
  const car = encodeCar([makeBlock('raw', patterned(100, 1)), makeBlock('raw', patterned(3000, 2)), makeBlock('raw', patterned(10, 3))])
  await expectInvalid(car.bytes, /section length 3036 exceeds the limit of 1000/, at(car.sections, 1).offset, { maxSectionSize: 1000 })
  const big = encodeCar([makeBlock('raw', patterned(40 * 1024 * 1024, 1))])
  await rejectsWith(indexCar(bytesReader(big.bytes)), (err) => assert.match(err.message, /exceeds the limit of 33554432 at byte \d+/))
  assert.is((await indexCar(bytesReader(big.bytes), { maxSectionSize: 64 * 1024 * 1024 })).index.size, 1)
  const reader = bytesReader(car.bytes)
  const indexer = createShardIndexer({ maxSectionSize: 1000 })
  await rejectsWith(indexer('k', reader, new AbortController().signal), (err) => assert.instance(err, InvalidCarError))
})

limits('an oversize header is refused at byte 0; the limit is configurable', async () => {
  const car = encodeCar([makeBlock('raw', patterned(10, 1))])
  await expectInvalid(car.bytes, /header length \d+ exceeds the limit of 20/, 0, { maxHeaderSize: 20 })
  const v2 = encodeCar([makeBlock('raw', patterned(10, 1))], { version: 2, padBefore: 4 })
  await expectInvalid(v2.bytes, /header length \d+ exceeds the limit of 20/, 55, { maxHeaderSize: 20 })
})

limits('indexed CIDs are bounded by maxCidSize (default 2 KiB); identity CIDs are not indexed, so not bounded', async () => {
  const longDigest = { cid: CID.createV1(RAW, Digest.create(0x12, new Uint8Array(3000))), bytes: new Uint8Array(5) }
  const car = encodeCar([makeBlock('raw', patterned(10, 1)), longDigest])
  await expectInvalid(car.bytes, /CID of 3005 bytes exceeds the limit of 2048/, at(car.sections, 1).offset)
  const allowed = await indexCar(bytesReader(car.bytes), { maxCidSize: 4096 })
  assert.is(allowed.index.size, 2)
  const inline = patterned(3000, 5)
  const identity = encodeCar([{ cid: CID.createV1(RAW, Digest.create(0x00, inline)), bytes: inline }])
  for (const [label, reader, tuning] of modes(identity.bytes)) {
    const result = await indexCar(reader(), tuning)
    assert.is(result.index.size, 0, label)
    assert.is(result.sections, 1)
  }
})

limits.run()

// ---- truncation ---------------------------------------------------------------------------------------

const truncation = suite('car-hardening: truncation at every byte')

function smallBlocks (): Block[] {
  return [makeBlock('raw', patterned(40, 1)), makeBlock('identity', patterned(5, 2)), makeBlock('v0', patterned(300, 3)),
    makeBlock('cbor', new Uint8Array(0)), makeBlock('blake2b', patterned(130, 4)), makeBlock('sha512', patterned(70, 5))]
}

truncation('a CARv1 cut at any byte: a section boundary is a shorter CAR, anything else InvalidCarError', async () => {
  const car = encodeCar(smallBlocks())
  const boundaries = new Map<number, number>([[H, 0], ...car.sections.map((s, i): [number, number] => [s.end, i + 1])])
  for (let cut = 0; cut < car.bytes.length; cut++) {
    const bytes = car.bytes.subarray(0, cut)
    const pick = modes(bytes).filter((_, k) => (cut + k) % 3 === 0)
    for (const [label, reader, tuning] of pick) {
      const outcome = await indexCar(reader(), tuning).then((r) => r, (err: unknown) => err)
      const complete = boundaries.get(cut)
      if (complete !== undefined) {
        assert.not.instance(outcome, Error, `${label} cut ${cut}: ${String(outcome)}`)
        assert.is((outcome as { sections: number }).sections, complete)
      } else {
        assert.instance(outcome, InvalidCarError, `${label} cut ${cut}: ${String(outcome)}`)
        assert.match((outcome as Error).message, /at byte \d+$/)
      }
    }
  }
})

truncation('a CARv2 cut inside its payload is InvalidCarError; cut inside its index, the index is rejected', async () => {
  const car = encodeCar(smallBlocks(), { version: 2, padBefore: 2, padAfter: 3 })
  const payloadEnd = car.payloadOffset + car.v1.length
  const oracle = await oracleIndex(car.v1)
  for (let cut = 0; cut < car.bytes.length; cut++) {
    const bytes = car.bytes.subarray(0, cut)
    const pick = modes(bytes).filter((_, k) => (cut + k) % 3 === 0)
    for (const [label, reader, tuning] of pick) {
      const outcome = await indexCar(reader(), tuning).then((r) => r, (err: unknown) => err)
      if (cut < payloadEnd) {
        assert.instance(outcome, InvalidCarError, `${label} cut ${cut}: ${String(outcome)}`)
      } else {
        assert.not.instance(outcome, Error, `${label} cut ${cut}: ${String(outcome)}`)
        const result = outcome as Awaited<ReturnType<typeof indexCar>>
        assert.is(result.embeddedIndex, 'rejected', `${label} cut ${cut}`)
        assert.equal(indexMap(result.index), oracle)
      }
    }
  }
})

truncation.run()

// ---- CARv2 header lies ---------------------------------------------------------------------------------

const v2 = suite('car-hardening: CARv2 headers pointing outside the file')

function setU64 (bytes: Uint8Array, position: number, value: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  new DataView(out.buffer).setBigUint64(position, BigInt(value), true)
  return out
}

v2('data offset or size past the end of the file, or overlapping the header', async () => {
  const car = encodeCar(smallBlocks(), { version: 2, index: false })
  const size = car.bytes.length
  await expectInvalid(setU64(car.bytes, 27, size + 10), /CARv2 data offset \d+ is past the end|truncated header/)
  await expectInvalid(setU64(car.bytes, 27, 2 ** 40), /CARv2 data offset \d+ is past the end|truncated header/)
  await expectInvalid(setU64(car.bytes, 35, car.v1.length + 1), /extends past the end of the file|truncated payload/)
  await expectInvalid(setU64(car.bytes, 35, 2 ** 50), /extends past the end of the file|truncated payload/)
  await expectInvalid(setU64(car.bytes, 35, 2 ** 53 - 10), /exceed Number.MAX_SAFE_INTEGER|extends past the end/)
  await expectInvalid(setU64(car.bytes, 27, 20), /overlaps the CARv2 header/, 27)
  await expectInvalid(setU64(car.bytes, 43, 20), /overlaps the CARv2 header/, 43)
  await expectInvalid(setU64(car.bytes, 35, 3), /smaller than its CARv1 header/)
  // A data size that ends inside a section cuts that section.
  await expectInvalid(setU64(car.bytes, 35, at(car.sections, 2).offset + 10), /truncated section/, 51 + at(car.sections, 2).offset)
  // The payload may end early at a section boundary: a smaller CAR (go-car reads only dataSize bytes too).
  const shorter = setU64(car.bytes, 35, at(car.sections, 3).end)
  for (const [label, reader, tuning] of modes(shorter)) assert.is((await indexCar(reader(), tuning)).sections, 4, label)
})

v2('an index offset past the end of the file or inside the payload rejects the index, not the CAR', async () => {
  const car = encodeCar(smallBlocks(), { version: 2 })
  const oracle = await oracleIndex(car.v1)
  for (const indexOffset of [car.bytes.length + 1, 2 ** 45, 60, car.payloadOffset + car.v1.length - 1]) {
    for (const [label, reader, tuning] of modes(setU64(car.bytes, 43, indexOffset))) {
      const result = await indexCar(reader(), tuning)
      assert.is(result.embeddedIndex, 'rejected', `${label} ${indexOffset}`)
      assert.equal(indexMap(result.index), oracle)
    }
  }
})

v2.run()

// ---- lying embedded indices ------------------------------------------------------------------------------

const lies = suite('car-hardening: a CARv2 index that lies is never adopted, and no wrong block is served')

/**
 * Blocks where block 1's data holds a well-formed section for block 3's CID with other data:
 * an index pointing there would make a blockstore find block 3's CID at that offset.
 */
function trap (): { car: GeneratedCar, fakeAt: number, victim: Block, fakeData: Uint8Array } {
  const victim = makeBlock('raw', patterned(64, 30))
  const fakeData = new TextEncoder().encode('not the block you asked for')
  const fake = encodeSection({ cid: victim.cid, bytes: fakeData })
  const carrier = makeBlock('raw', concatBytes([patterned(20, 31), fake, patterned(20, 32)]))
  const blocks = [makeBlock('raw', patterned(100, 33)), carrier, makeBlock('cbor', patterned(500, 34)), victim, makeBlock('v0', patterned(80, 35))]
  const car = encodeCar(blocks, { version: 2, index: false })
  return { car, fakeAt: at(car.sections, 1).dataOffset + 20, victim, fakeData }
}

function entriesOf (car: GeneratedCar): IndexEntry[] {
  return car.sections.map((s) => ({ multihash: s.block.cid.multihash.bytes, offset: s.offset }))
}

function lyingIndices (car: GeneratedCar, fakeAt: number, victim: Block): Array<[string, IndexEntry[]]> {
  const honest = entriesOf(car)
  const victimIndex = honest.findIndex((e) => hex(e.multihash) === hex(victim.cid.multihash.bytes))
  const swap = honest.map((e) => ({ ...e }))
  ;[at(swap, 0).offset, at(swap, 2).offset] = [at(swap, 2).offset, at(swap, 0).offset]
  const intoData = honest.map((e, i) => i === victimIndex ? { ...e, offset: fakeAt } : e)
  const offByOne = honest.map((e, i) => i === 2 ? { ...e, offset: e.offset + 1 } : e)
  const stranger = makeBlock('raw', patterned(9, 99))
  const extra = [...honest, { multihash: stranger.cid.multihash.bytes, offset: at(honest, 4).offset }]
  const missing = honest.filter((_, i) => i !== 2)
  const elsewhere = honest.map((e, i) => i === 4 ? { ...e, offset: at(honest, 0).offset } : e)
  return [['swapped offsets', swap], ['an offset into block data, at a forged section', intoData], ['an offset off by one', offByOne],
    ['an entry for a block not in the CAR', extra], ['an entry missing', missing], ['two entries at one offset', elsewhere]]
}

lies('the indexer rejects every lie and returns the scanned index; served blocks are the right ones', async () => {
  const { car, fakeAt, victim } = trap()
  const oracle = await oracleIndex(car.v1)
  for (const [what, entries] of lyingIndices(car, fakeAt, victim)) {
    const bytes = wrapCarV2(car.v1, encodeMultihashIndexSorted(entries))
    for (const [label, reader, tuning] of modes(bytes)) {
      const result = await indexCar(reader(), tuning)
      assert.is(result.embeddedIndex, 'rejected', `${what} (${label})`)
      assert.match(result.embeddedIndexError?.message ?? '', /does not match the payload/)
      assert.equal(indexMap(result.index), oracle, what)
      const bs = new ShardBlockstore({ reader: bytesReader(bytes), index: result.index, payloadOffset: 51, payloadSize: car.v1.length })
      for (const b of car.blocks) assert.equal(u8(await bs.get(b.cid)), u8(b.bytes), `${what}: ${b.cid.toString()}`)
    }
  }
  // The honest index is adopted.
  const honest = wrapCarV2(car.v1, encodeMultihashIndexSorted(entriesOf(car)))
  assert.is((await indexCar(bytesReader(honest))).embeddedIndex, 'adopted')
})

lies('a lying index handed straight to a blockstore: offsets at other blocks are caught; a forged section only by verifyHashes', async () => {
  const { car, fakeAt, victim, fakeData } = trap()
  for (const [what, entries] of lyingIndices(car, fakeAt, victim)) {
    const index = decodeCarIndex(encodeMultihashIndexSorted(entries))
    const plain = new ShardBlockstore({ reader: bytesReader(car.bytes), index, payloadOffset: 51 })
    const verifying = new ShardBlockstore({ reader: bytesReader(car.bytes), index, payloadOffset: 51, verifyHashes: true })
    for (const b of car.blocks) {
      for (const [name, bs] of [['plain', plain], ['verifying', verifying]] as const) {
        const got = await bs.get(b.cid).then((bytes) => bytes, (err: unknown) => err)
        if (got instanceof Uint8Array) {
          const forged = what.startsWith('an offset into block data') && b === victim
          if (forged && name === 'plain') {
            // The section at the lying offset does hold this CID: without hashing, nothing can tell.
            assert.equal(u8(got), u8(fakeData))
          } else {
            assert.equal(u8(got), u8(b.bytes), `${what}, ${name}: ${b.cid.toString()}`)
          }
        } else {
          assert.ok(got instanceof InvalidCarError || got instanceof BlockNotFoundError, `${what}, ${name}: ${String(got)}`)
        }
      }
    }
  }
})

lies.run()

// ---- all or nothing ----------------------------------------------------------------------------------------

const atomic = suite('car-hardening: a failed indexing leaves no index anywhere')

atomic('the store hands its repo complete indices only: failures add nothing', async () => {
  const { dir, cleanup } = await tempDir()
  const adds: Array<[string, number]> = []
  class RecordingRepo extends MemoryIndexRepo {
    override async add (key: string, index: ShardIndex): Promise<void> {
      adds.push([key, index.size])
      await super.add(key, index)
    }
  }
  const repo = new RecordingRepo()
  const { store } = await openStore(dir, { indexRepo: repo, shardIndexer: createShardIndexer({ verifyHashes: true, hashers: [blake2b256] }) })
  try {
    const car = encodeCar(smallBlocks())
    const flipped = Uint8Array.from(car.bytes)
    flipBits(flipped, at(car.sections, 4).dataOffset + 3, 1)
    const failing: Array<[string, Uint8Array]> = [
      ['truncated', car.bytes.subarray(0, at(car.sections, 5).dataOffset + 2)],
      ['hash mismatch in the fifth block', flipped],
      ['a bad section after good ones', concatBytes([car.bytes, Uint8Array.of(0x05, 0x02, 0x55, 0x12, 0x01, 0x00)])]
    ]
    for (const [key, bytes] of failing) {
      await rejectsWith(store.register(key, new BytesMount(bytes)), (err) => {
        const cause = err instanceof InvalidCarError ? err : err.cause
        assert.instance(cause, InvalidCarError, `${key}: ${String(err)}`)
      })
      assert.is((await repo.stat(key)).exists, false, key)
    }
    assert.equal(adds, [])
    for (const b of car.blocks) {
      if (b.cid.multihash.code !== 0) assert.equal(await store.shardsContainingCid(b.cid), [])
    }
    await store.register('good', new BytesMount(car.bytes))
    assert.equal(adds, [['good', 5]])
  } finally {
    await store.close()
    await cleanup()
  }
})

atomic.run()
