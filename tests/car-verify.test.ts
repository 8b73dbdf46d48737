import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { createHash, randomBytes } from 'node:crypto'
import { CarIndexer } from '@ipld/car/indexer'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { from as hasherFrom } from 'multiformats/hashes/hasher'
import { sha256 } from 'multiformats/hashes/sha2'
import { fixture } from './helpers/fixtures.js'
import { bytesReader, hex, u8, flipBits } from './helpers/file-reader.js'
import type { TestReader } from './helpers/file-reader.js'
import { at, rejectsWith } from './helpers/assert.js'
import { BLAKE2B_256, blake2b, blake2b256, encodeCar, makeBlock, patterned, RAW } from './helpers/car-gen.js'
import type { Block, GeneratedCar } from './helpers/car-gen.js'
import { createShardIndexer, indexCar } from '../src/format/car/indexer.js'
import type { ShardIndexerOptions } from '../src/format/car/indexer.js'
import { ShardBlockstore } from '../src/engine/accessor/blockstore.js'
import { InvalidCarError, UnsupportedHashError } from '../src/base/errors.js'

/** Streams at awkward chunk sizes (blocks split across chunks) and positional reads at awkward windows. */
function readers (bytes: Uint8Array): Array<[string, () => TestReader, ShardIndexerOptions]> {
  // Byte-sized chunks cost a promise each: only for small CARs.
  const tiny: Array<[string, () => TestReader, ShardIndexerOptions]> = bytes.length <= 50_000
    ? [['stream 1', () => bytesReader(bytes, { random: false, chunkSize: 1 }), {}]]
    : []
  return [
    ...tiny,
    ['stream 7,300,2', () => bytesReader(bytes, { random: false, chunks: [7, 300, 2] }), {}],
    ['stream 64 KiB', () => bytesReader(bytes, { random: false }), {}],
    ['positional', () => bytesReader(bytes), {}],
    ['positional window 333', () => bytesReader(bytes), { windowSize: 333, probeSize: 10, skipThreshold: 1 }]
  ]
}

function assertInvalid (err: any, pattern: RegExp): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.instance(err, InvalidCarError)
  assert.is(err.code, 'ERR_INVALID_CAR')
  assert.match(err.message, pattern)
}

function assertUnverifiable (err: any, pattern: RegExp): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.instance(err, UnsupportedHashError)
  assert.is(err.code, 'ERR_UNSUPPORTED_HASH')
  assert.match(err.message, pattern)
}

function assorted (sizes = [0, 1, 31, 200, 1000, 4096, 70_000, 300_000]): Block[] {
  const blocks: Block[] = []
  const kinds = ['raw', 'cbor', 'pb', 'v0', 'sha512', 'blake2b', 'identity'] as const
  let seed = 1
  for (const size of sizes) {
    for (const kind of kinds) blocks.push(makeBlock(kind, patterned(kind === 'identity' ? size % 40 : size, seed++)))
  }
  return blocks
}

const ok = suite('car-verify: intact CARs verify')

ok('sample-v1.car and sample-wrapped-v2.car (blake2b-256 CIDs) verify with a user-supplied blake2b hasher', async () => {
  for (const name of ['sample-v1.car', 'sample-wrapped-v2.car']) {
    const bytes = await readFile(fixture(name))
    const plain = await indexCar(bytesReader(bytes))
    for (const [label, reader, tuning] of readers(bytes)) {
      const verified = await indexCar(reader(), { ...tuning, verifyHashes: true, hashers: [blake2b256] })
      assert.is(verified.sections, 1049, `${name} ${label}`)
      assert.equal([...verified.index].map((e) => [hex(e.multihash), e.offset]), [...plain.index].map((e) => [hex(e.multihash), e.offset]))
    }
  }
})

ok('blake2b-256 is built in: sample-v1.car verifies without a hasher from the caller; a flipped byte in its first blake2b block is caught at that block', async () => {
  const bytes = await readFile(fixture('sample-v1.car'))
  let first: { offset: number, blockOffset: number, blockLength: number, cid: CID } | undefined
  for await (const e of await CarIndexer.fromBytes(bytes)) {
    if (e.cid.multihash.code === BLAKE2B_256 && e.blockLength > 0) { first = e; break }
  }
  assert.ok(first !== undefined)
  const flipped = Uint8Array.from(bytes)
  const at = first.blockOffset + Math.floor(first.blockLength / 2)
  flipped[at] = (flipped[at] as number) ^ 0x10
  const mismatch = new RegExp(`block hash mismatch for ${first.cid.toString()} at byte ${first.offset}$`)
  const damaged = new Map(readers(flipped).map(([label, reader]) => [label, reader]))
  for (const [label, reader, tuning] of readers(bytes)) {
    const verified = await indexCar(reader(), { ...tuning, verifyHashes: true })
    assert.is(verified.index.size, 1043, label)
    const damagedReader = damaged.get(label)
    assert.ok(damagedReader !== undefined)
    await rejectsWith(indexCar(damagedReader(), { ...tuning, verifyHashes: true }), (err) => { assertInvalid(err, mismatch) })
  }
  // The default indexer does not hash, so the flip goes unseen.
  assert.is((await indexCar(bytesReader(flipped))).index.size, 1043)
})

ok('generated CARs of every CID kind and size verify, v1 and v2, at every chunking', async () => {
  const blocks = assorted()
  for (const car of [encodeCar(blocks), encodeCar(blocks, { version: 2, padBefore: 3, padAfter: 9 })]) {
    for (const [label, reader, tuning] of readers(car.bytes)) {
      // The test's own blake2b (RFC 7693), then the built-in one.
      const result = await indexCar(reader(), { ...tuning, verifyHashes: true, hashers: [blake2b256] })
      assert.is(result.sections, blocks.length, label)
      const builtIn = await indexCar(reader(), { ...tuning, verifyHashes: true })
      assert.is(builtIn.sections, blocks.length, label)
    }
  }
})

ok('asynchronous hashers, and a hasher replacing a built-in, are used', async () => {
  let calls = 0
  const asyncBlake = hasherFrom({
    name: 'blake2b-256',
    code: BLAKE2B_256,
    encode: async (input: Uint8Array) => { calls++; return blake2b(input, 32) as Uint8Array<ArrayBuffer> }
  })
  const countingSha = hasherFrom({
    name: 'sha2-256',
    code: 0x12,
    encode: (input: Uint8Array) => { calls++; return createHash('sha256').update(input).digest() as Uint8Array<ArrayBuffer> }
  })
  const blocks = assorted()
  const car = encodeCar(blocks)
  const expected = blocks.filter((b) => b.cid.multihash.code === BLAKE2B_256 || b.cid.multihash.code === 0x12).length
  for (const [label, reader, tuning] of readers(car.bytes)) {
    calls = 0
    await indexCar(reader(), { ...tuning, verifyHashes: true, hashers: [asyncBlake, countingSha] })
    assert.is(calls, expected, label)
  }
  // An asynchronous mismatch is reported like a synchronous one.
  const bad = Uint8Array.from(car.bytes)
  const s = car.sections.find((x) => x.block.cid.multihash.code === BLAKE2B_256 && x.dataLength > 100)
  assert.ok(s !== undefined)
  flipBits(bad, s.dataOffset + 50, 1)
  for (const [, reader, tuning] of readers(bad)) {
    await rejectsWith(indexCar(reader(), { ...tuning, verifyHashes: true, hashers: [asyncBlake] }), (err) => {
      assertInvalid(err, new RegExp(`block hash mismatch for ${s.block.cid.toString()} at byte ${s.offset}$`))
    })
  }
})

ok('truncated digests: 20 bytes or more are compared as a prefix, shorter ones cannot be verified', async () => {
  const data = patterned(5000, 3)
  const full = createHash('sha256').update(data).digest()
  const at = (n: number): Block => ({ cid: CID.createV1(RAW, Digest.create(0x12, full.subarray(0, n))), bytes: data })
  await indexCar(bytesReader(encodeCar([at(20)]).bytes), { verifyHashes: true })
  await indexCar(bytesReader(encodeCar([at(31)]).bytes), { verifyHashes: true })
  await rejectsWith(indexCar(bytesReader(encodeCar([at(8)]).bytes), { verifyHashes: true }), (err) => assertUnverifiable(err, /8-byte digest is a truncation too short to check at byte \d+/))
  // A digest longer than the hash function's output can never match.
  const long = { cid: CID.createV1(RAW, Digest.create(0x12, new Uint8Array([...full, 1]))), bytes: data }
  await rejectsWith(indexCar(bytesReader(encodeCar([long]).bytes), { verifyHashes: true }), (err) => assertInvalid(err, /block hash mismatch/))
})

ok.run()

// ---- corrupt data ---------------------------------------------------------------------------------

const bad = suite('car-verify: wrong data is caught')

function flipData (car: GeneratedCar, i: number, where: number): Uint8Array {
  const s = at(car.sections, i)
  const out = Uint8Array.from(car.bytes)
  const position = car.payloadOffset + s.dataOffset + Math.min(where, s.dataLength - 1)
  flipBits(out, position, 0x40)
  return out
}

bad('one flipped data byte in any block → "block hash mismatch for <CID> at byte <section offset>"', async () => {
  const blocks = assorted([1, 200, 4096, 70_000])
  for (const version of [1, 2] as const) {
    const car = encodeCar(blocks, { version, padBefore: 17 })
    for (const [i, s] of car.sections.entries()) {
      if (s.dataLength === 0) continue
      for (const where of [0, Math.floor(s.dataLength / 2), s.dataLength - 1]) {
        const bytes = flipData(car, i, where)
        const cid = s.block.cid.toString()
        const pick = readers(bytes).filter((_, k) => (i + where + k) % 2 === 0)
        for (const [label, reader, tuning] of pick) {
          await rejectsWith(indexCar(reader(), { ...tuning, verifyHashes: true, hashers: [blake2b256] }), (err) => {
            assertInvalid(err, /block hash mismatch for /)
            assert.ok(err.message.endsWith(`for ${cid} at byte ${car.payloadOffset + s.offset}`), `${label}: ${err.message as string}`)
          })
        }
      }
    }
  }
})

bad('an unknown hash function is ERR_UNSUPPORTED_HASH, naming its code and the section offset', async () => {
  const data = randomBytes(300)
  const murmur = { cid: CID.createV1(RAW, Digest.create(0x22, new Uint8Array(16))), bytes: data }
  const car = encodeCar([makeBlock('raw', patterned(10, 1)), murmur])
  for (const [, reader, tuning] of readers(car.bytes)) {
    await rejectsWith(indexCar(reader(), { ...tuning, verifyHashes: true }), (err) => {
      assertUnverifiable(err, new RegExp(`no hasher for multihash code 0x22 at byte ${at(car.sections, 1).offset}$`))
    })
  }
})

bad('an identity CID whose section data differs from its digest', async () => {
  const inline = new TextEncoder().encode('inline')
  const lying = { cid: CID.createV1(RAW, Digest.create(0x00, inline)), bytes: new TextEncoder().encode('inlinE') }
  const car = encodeCar([lying])
  await rejectsWith(indexCar(bytesReader(car.bytes), { verifyHashes: true }), (err) => assertInvalid(err, /block hash mismatch for bafkqabtjnzwgs3tf/))
  // Not indexed either way, and the default indexer does not look.
  assert.is((await indexCar(bytesReader(car.bytes))).index.size, 0)
})

bad('createShardIndexer({verifyHashes}) checks its hashers up front and verifies through a MountReader', async () => {
  assert.throws(() => createShardIndexer({ verifyHashes: true, hashers: [{ code: 5 } as never] }), TypeError)
  const car = encodeCar(assorted())
  const bytes = flipData(car, 20, 0)
  const indexer = createShardIndexer({ verifyHashes: true, hashers: [blake2b256] })
  await indexer('k', bytesReader(car.bytes), new AbortController().signal)
  await rejectsWith(indexer('k', bytesReader(bytes), new AbortController().signal), (err) => assertInvalid(err, /block hash mismatch/))
})

bad.run()

// ---- the blockstore's own check --------------------------------------------------------------------

const bs = suite('car-verify: ShardBlockstore verifyHashes')

bs('serves intact blocks, refuses blocks whose bytes changed after indexing', async () => {
  const blocks = assorted()
  const car = encodeCar(blocks)
  const { index } = await indexCar(bytesReader(car.bytes))
  const changed = flipData(car, 10, 0)
  const plain = new ShardBlockstore({ reader: bytesReader(changed), index, payloadOffset: 0 })
  const checking = new ShardBlockstore({ reader: bytesReader(changed), index, payloadOffset: 0, verifyHashes: true, hashers: [blake2b256] })
  for (let i = 0; i < blocks.length; i++) {
    const { cid, bytes } = at(blocks, i)
    if (i === 10) {
      assert.not.equal(u8(await plain.get(cid)), u8(bytes), 'without verification the changed bytes are served')
      await rejectsWith(checking.get(cid), (err) => assertInvalid(err, /block hash mismatch/))
    } else {
      assert.equal(u8(await checking.get(cid)), u8(bytes))
    }
  }
  // Built-in hashers only: blake2b-256 is one of them; a hash function without a hasher is refused.
  const builtIn = new ShardBlockstore({ reader: bytesReader(car.bytes), index, payloadOffset: 0, verifyHashes: true })
  const blake = blocks.find((b) => b.cid.multihash.code === BLAKE2B_256 && b.bytes.length > 0) as Block
  assert.equal(u8(await builtIn.get(blake.cid)), u8(blake.bytes))
  const sha = blocks.find((b) => b.cid.multihash.code === 0x12 && b.bytes.length > 0) as Block
  assert.equal(u8(await builtIn.get(sha.cid)), u8(sha.bytes))
  assert.ok(sha256.code === 0x12)
  const murmur = { cid: CID.createV1(RAW, Digest.create(0x22, new Uint8Array(16))), bytes: patterned(40, 9) }
  const odd = encodeCar([murmur])
  const oddIndex = (await indexCar(bytesReader(odd.bytes))).index
  const oddStore = new ShardBlockstore({ reader: bytesReader(odd.bytes), index: oddIndex, payloadOffset: 0, verifyHashes: true })
  await rejectsWith(oddStore.get(murmur.cid), (err) => assertUnverifiable(err, /no hasher for multihash code 0x22/))
})

bs.run()
