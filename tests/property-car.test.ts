import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { bytesReader, hex, u8, flipBits } from './helpers/file-reader.js'
import type { TestReader } from './helpers/file-reader.js'
import { carOf, carSpecArb, oracleIndex, strict } from './helpers/car-gen.js'
import type { GeneratedCar } from './helpers/car-gen.js'
import { indexCar } from '../src/format/car/indexer.js'
import type { CarIndexResult, ShardIndexerOptions } from '../src/format/car/indexer.js'
import { ShardBlockstore } from '../src/engine/accessor/blockstore.js'
import { BlockNotFoundError, InvalidCarError, UnsupportedHashError } from '../src/base/errors.js'
import { at } from './helpers/assert.js'

/** A case that neither finishes nor fails within this is a hang. */
const CASE_TIMEOUT_MS = 5000

type ReadKind = 'stream' | 'positional' | 'positional-tiny'

const readArb = fc.record({
  kind: fc.constantFrom<ReadKind>('stream', 'positional', 'positional-tiny'),
  chunks: fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 4 })
})

function readerFor (bytes: Uint8Array, read: { kind: ReadKind, chunks: number[] }): { reader: TestReader, options: ShardIndexerOptions } {
  if (read.kind === 'stream') return { reader: bytesReader(bytes, { random: false, chunks: read.chunks }), options: {} }
  const tiny = read.kind === 'positional-tiny'
  const options = tiny ? { windowSize: at(read.chunks, 0) % 97 + 1, probeSize: at(read.chunks, 0) % 13 + 1, skipThreshold: 300 } : {}
  return { reader: strict(bytesReader(bytes)), options }
}

/** The multihash → block bytes of the CAR as generated (identity CIDs left out: never indexed). */
function originals (car: GeneratedCar): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>()
  for (const b of car.blocks) if (b.cid.multihash.code !== 0x00) m.set(hex(b.cid.multihash.bytes), b.bytes)
  return m
}

/** A CID for an indexed multihash, so a blockstore can be asked for it (lookups go by multihash). */
function cidFor (multihash: Uint8Array): CID | undefined {
  try {
    return CID.createV1(0x55, Digest.decode(Uint8Array.from(multihash)))
  } catch {
    return undefined
  }
}

function blockstoreFor (bytes: Uint8Array, result: CarIndexResult, verifyHashes: boolean): ShardBlockstore {
  return new ShardBlockstore({
    reader: strict(bytesReader(bytes)),
    index: result.index,
    payloadOffset: result.layout.payloadOffset,
    payloadSize: result.layout.payloadSize,
    verifyHashes
  })
}

/**
 * The only errors indexing or serving may raise on any input: InvalidCarError, and where hashes
 * are verified UnsupportedHashError (a flipped multihash code names a hash function with no hasher).
 */
function expected (err: unknown, what: string, allowNotFound: boolean): void {
  if (err instanceof InvalidCarError || err instanceof UnsupportedHashError) return
  if (allowNotFound && err instanceof BlockNotFoundError) return
  throw new Error(`${what}: unexpected ${String(err)}`, { cause: err })
}

/** The index of a (maybe damaged) CAR, or undefined when indexing refused it with an expected error (any other error is thrown). */
async function indexOrRefuse (reader: TestReader, options: ShardIndexerOptions): Promise<CarIndexResult | undefined> {
  try {
    return await indexCar(reader, options)
  } catch (err) {
    expected(err, 'indexCar', false)
    return undefined
  }
}

/** Every indexed block `bs` serves, with its index entry and CID (not-found and expected errors skipped, anything else thrown). */
async function * servedBlocks (
  bs: ShardBlockstore, result: CarIndexResult
): AsyncGenerator<{ multihash: Uint8Array, offset: number, cid: CID, got: Uint8Array }> {
  for (const { multihash, offset } of result.index) {
    const cid = cidFor(multihash)
    if (cid === undefined) continue
    let got: Uint8Array
    try {
      got = await bs.get(cid)
    } catch (err) {
      expected(err, `get ${cid.toString()}`, true)
      continue
    }
    yield { multihash, offset, cid, got }
  }
}

/** Every indexed block `bs` serves is byte-identical to the original with that multihash. */
async function assertServesOriginals (bs: ShardBlockstore, result: CarIndexResult, blocks: Map<string, Uint8Array>): Promise<void> {
  for await (const { multihash, cid, got } of servedBlocks(bs, result)) {
    const original = blocks.get(hex(multihash))
    assert.ok(original !== undefined, `served ${got.length} bytes for ${cid.toString()}, which no original block has`)
    assert.equal(u8(got), u8(original), `different bytes served for ${cid.toString()}`)
  }
}

// ---- intact CARs ---------------------------------------------------------------------------------

const intact = suite('property-car: intact CARs')

intact('the index is the one @ipld/car CarIndexer implies (minus identity CIDs); every block is served byte-identical', async () => {
  await fc.assert(fc.asyncProperty(carSpecArb, readArb, fc.boolean(), async (spec, read, verifyHashes) => {
    const car = carOf(spec)
    const { reader, options } = readerFor(car.bytes, read)
    const result = await indexCar(reader, { ...options, verifyHashes })
    const got = new Map<string, number>()
    for (const { multihash, offset } of result.index) got.set(hex(multihash), offset)
    assert.equal(got, await oracleIndex(car.v1))
    assert.is(result.sections, car.blocks.length)
    assert.is(result.embeddedIndex, car.indexOffset !== undefined ? 'adopted' : 'absent', result.embeddedIndexError?.message)
    const bs = blockstoreFor(car.bytes, result, verifyHashes)
    for (const b of car.blocks) {
      assert.ok(await bs.has(b.cid))
      assert.equal(u8(await bs.get(b.cid)), u8(b.bytes))
      assert.is(await bs.getSize(b.cid), b.bytes.length)
    }
  }), { numRuns: 120, plugins: [fc.timeout(CASE_TIMEOUT_MS)] })
})

intact.run()

// ---- damaged CARs ----------------------------------------------------------------------------------

const damaged = suite('property-car: truncated and bit-flipped CARs')

type Region = 'anywhere' | 'head' | 'section-head' | 'tail'

/**
 * Where flips land: uniformly anywhere (mostly block data), the pragma/CARv2 header/CARv1 header,
 * the length varint and CID of some section, or the last fifth (where a CARv2 index lives).
 */
/**
 * A uniform fraction in [0, 1). Not fc.double: fast-check biases numbers towards their bounds,
 * which would put nearly every flip and cut at byte 0.
 */
const fraction = fc.noBias(fc.integer({ min: 0, max: 999_999 })).map((n) => n / 1_000_000)

const flipArb = fc.record({
  region: fc.constantFrom<Region>('anywhere', 'head', 'section-head', 'tail'),
  at: fraction,
  pick: fc.nat(),
  xor: fc.integer({ min: 1, max: 255 })
})

const damageArb = fc.record({
  cut: fc.option(fraction, { nil: undefined }),
  flips: fc.array(flipArb, { minLength: 1, maxLength: 5 })
})

interface Damage { cut: number | undefined, flips: Array<{ region: Region, at: number, pick: number, xor: number }> }

/** The damaged bytes, and the positions flipped (for the checks that need to know what was left intact). */
function damage (car: GeneratedCar, d: Damage): { bytes: Uint8Array, flipped: number[] } {
  const bytes = Uint8Array.from(car.bytes)
  const flipped: number[] = []
  for (const f of d.flips) {
    let pos: number
    if (f.region === 'head') {
      pos = Math.floor(f.at * Math.min(bytes.length, car.payloadOffset + car.headerLength + 8))
    } else if (f.region === 'section-head' && car.sections.length > 0) {
      const s = at(car.sections, f.pick % car.sections.length)
      pos = car.payloadOffset + s.offset + Math.floor(f.at * Math.min(40, s.end - s.offset))
    } else if (f.region === 'tail') {
      pos = bytes.length - 1 - Math.floor(f.at * Math.ceil(bytes.length / 5))
    } else {
      pos = Math.floor(f.at * bytes.length)
    }
    if (pos < 0 || pos >= bytes.length) continue
    flipBits(bytes, pos, f.xor)
    flipped.push(pos)
  }
  const cut = d.cut === undefined ? bytes.length : Math.floor(d.cut * bytes.length)
  return { bytes: bytes.subarray(0, cut), flipped: flipped.filter((p) => p < cut) }
}

damaged('indexing gives an index or InvalidCarError; a verifying blockstore serves the original bytes or throws InvalidCarError/UnsupportedHashError/BlockNotFoundError', async () => {
  let indexed = 0
  let refused = 0
  await fc.assert(fc.asyncProperty(carSpecArb, damageArb, readArb, async (spec, d, read) => {
    const car = carOf(spec)
    const { bytes } = damage(car, d)
    const blocks = originals(car)
    const { reader, options } = readerFor(bytes, read)
    const result = await indexOrRefuse(reader, options)
    if (result === undefined) {
      refused++
      return
    }
    indexed++
    const bs = blockstoreFor(bytes, result, true)
    await assertServesOriginals(bs, result, blocks)
  }), { numRuns: 200, plugins: [fc.timeout(CASE_TIMEOUT_MS)] })
  // Both outcomes occurred, or the property said little.
  assert.ok(indexed > 10 && refused > 10, `indexed ${indexed}, refused ${refused}`)
})

damaged('verifyHashes indexing: an index only when every block checks out, and then a plain blockstore serves original bytes', async () => {
  await fc.assert(fc.asyncProperty(carSpecArb, damageArb, readArb, async (spec, d, read) => {
    const car = carOf(spec)
    const { bytes } = damage(car, d)
    const blocks = originals(car)
    const { reader, options } = readerFor(bytes, read)
    const result = await indexOrRefuse(reader, { ...options, verifyHashes: true })
    if (result === undefined) return
    const bs = blockstoreFor(bytes, result, false)
    await assertServesOriginals(bs, result, blocks)
  }), { numRuns: 100, plugins: [fc.timeout(CASE_TIMEOUT_MS)] })
})

damaged('no verification anywhere: still only index/InvalidCarError, and untouched blocks at their original place are served intact', async () => {
  await fc.assert(fc.asyncProperty(carSpecArb, damageArb, readArb, async (spec, d, read) => {
    const car = carOf(spec)
    const { bytes, flipped } = damage(car, d)
    const { reader, options } = readerFor(bytes, read)
    const result = await indexOrRefuse(reader, options)
    if (result === undefined) return
    const bs = blockstoreFor(bytes, result, false)
    const payloadShift = result.layout.payloadOffset - car.payloadOffset
    for await (const { multihash, offset, got } of servedBlocks(bs, result)) {
      // Without hashing, a flipped byte inside a block's data is served as it is now; what must
      // hold is that a section nobody touched, found where it was written, is served as written.
      const s = car.sections.find((x) => x.offset === offset && hex(x.block.cid.multihash.bytes) === hex(multihash))
      if (s === undefined || payloadShift !== 0) continue
      const start = car.payloadOffset + s.offset
      const end = car.payloadOffset + s.end
      if (flipped.some((p) => p >= start && p < end)) continue
      assert.equal(u8(got), u8(s.block.bytes), `section at ${s.offset} served changed bytes`)
    }
  }), { numRuns: 80, plugins: [fc.timeout(CASE_TIMEOUT_MS)] })
})

damaged.run()
