import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fixture, tempDir } from './helpers/fixtures.js'
import { bytesReader, openTestReader, u8 } from './helpers/file-reader.js'
import type { TestReader } from './helpers/file-reader.js'
import { at, rejectsWith } from './helpers/assert.js'
import { encodeCar, indexMap, makeBlock, oracleIndex, patterned, randomCid, sectionHead, sparseReader } from './helpers/car-gen.js'
import type { Block, Segment } from './helpers/car-gen.js'
import { createShardIndexer, indexCar } from '../src/format/car/indexer.js'
import type { ShardIndexerOptions } from '../src/format/car/indexer.js'
import { encodeVarint } from '../src/format/varint.js'
import { encodeMultihashIndexSorted } from '../src/format/index/multihash-index-sorted.js'
import { ShardBlockstore } from '../src/engine/accessor/blockstore.js'
import { openFileReader } from '../src/storage/transients/file-reader.js'
import { InvalidCarError } from '../src/base/errors.js'
import type { MountReader } from '../src/base/mount-types.js'

/** Tunings that push every branch: tiny windows and probes split headers; a low threshold probes small sections. */
const TUNINGS: ShardIndexerOptions[] = [
  {},
  { windowSize: 1, probeSize: 1, skipThreshold: 1 },
  { windowSize: 7, probeSize: 3, skipThreshold: 2 },
  { windowSize: 100, probeSize: 40, skipThreshold: 50 },
  { windowSize: 4096, probeSize: 64, skipThreshold: 512 },
  { windowSize: 65536, probeSize: 4096, skipThreshold: 1 << 30 }
]

const fixtures = suite('car-positional: fixtures')

fixtures('every fixture: positional reads give the streamed index, at every tuning', async () => {
  for (const name of ['sample-v1.car', 'sample-wrapped-v2.car', 'sample-v2-indexless.car', 'sample-v1-with-zero-len-section.car']) {
    const bytes = await readFile(fixture(name))
    const streamed = await indexCar(bytesReader(bytes, { random: false }))
    assert.is(streamed.readMode, 'stream')
    for (const tuning of TUNINGS) {
      const result = await indexCar(bytesReader(bytes), tuning)
      assert.is(result.readMode, 'positional')
      assert.equal(indexMap(result.index), indexMap(streamed.index), `${name} ${JSON.stringify(tuning)}`)
      assert.is(result.sections, streamed.sections)
      assert.is(result.embeddedIndex, streamed.embeddedIndex, name)
    }
  }
})

fixtures('readMode: auto picks positional reads when the reader has them; stream and positional force', async () => {
  const reader = await openTestReader(fixture('sample-wrapped-v2.car'))
  try {
    assert.is((await indexCar(reader)).readMode, 'positional')
    assert.is((await indexCar(reader, { readMode: 'stream' })).readMode, 'stream')
    assert.is((await indexCar(reader, { readMode: 'positional' })).readMode, 'positional')
    assert.is((await indexCar(reader.stream())).readMode, 'stream')
  } finally {
    await reader.close()
  }
  const noRead = bytesReader(await readFile(fixture('sample-v1.car')), { random: false })
  assert.is((await indexCar(noRead)).readMode, 'stream')
  await rejectsWith(indexCar(noRead, { readMode: 'positional' }), (err) => assert.instance(err, TypeError))
  assert.throws(() => createShardIndexer({ windowSize: 0 }), RangeError)
  assert.throws(() => createShardIndexer({ maxCidSize: 1.5 }), RangeError)
})

fixtures.run()

// ---- big blocks are jumped over ------------------------------------------------------------------

const skipping = suite('car-positional: skipping payloads')

function bigBlocks (count: number, size: number, seed = 1): Block[] {
  return Array.from({ length: count }, (_, i) => makeBlock('raw', patterned(size, seed + i)))
}

skipping('256 KiB blocks: only headers are read, and probes for equal-sized sections run ahead', async () => {
  const car = encodeCar(bigBlocks(40, 256 * 1024))
  const reader = bytesReader(car.bytes)
  const result = await indexCar(reader)
  assert.equal(indexMap(result.index), await oracleIndex(car.v1))
  assert.is(result.sections, 40)
  // The first window (1 MiB) covers four sections, then one probe per section.
  assert.ok(result.bytesRead < car.bytes.length / 4, `${result.bytesRead} of ${car.bytes.length} bytes read`)
  assert.ok(result.reads <= 45, `${result.reads} reads`)
})

skipping('mixed sizes (big blocks among small ones, CIDv0, identity) index like @ipld/car at every tuning', async () => {
  const blocks: Block[] = []
  for (let i = 0; i < 30; i++) {
    const size = i % 5 === 0 ? 300_000 + i : i % 5 === 1 ? 70_000 : i % 5 === 2 ? 10 : 1500
    blocks.push(makeBlock(i % 7 === 3 ? 'v0' : i % 7 === 4 ? 'identity' : 'raw', patterned(i % 7 === 4 ? 20 : size, i + 7)))
  }
  const car = encodeCar(blocks)
  const oracle = await oracleIndex(car.v1)
  for (const tuning of TUNINGS) {
    const result = await indexCar(bytesReader(car.bytes), tuning)
    assert.equal(indexMap(result.index), oracle, JSON.stringify(tuning))
  }
  const v2 = encodeCar(blocks, { version: 2, padBefore: 5, padAfter: 300 })
  for (const tuning of TUNINGS) {
    const result = await indexCar(bytesReader(v2.bytes), tuning)
    assert.is(result.embeddedIndex, 'adopted', result.embeddedIndexError?.message)
    assert.equal(indexMap(result.index), oracle)
  }
})

skipping('a CAR cut anywhere inside a jumped-over block is truncated, naming that section', async () => {
  const blocks = [makeBlock('raw', patterned(100, 1)), ...bigBlocks(3, 200_000, 2), makeBlock('raw', patterned(100, 9))]
  for (const version of [1, 2] as const) {
    const car = encodeCar(blocks, { version, index: false })
    const s = at(car.sections, 2)
    const cuts = [s.dataOffset + 1, s.dataOffset + 5000, s.end - 2, s.end - 1]
    for (const cut of cuts) {
      for (const tuning of [{}, { skipThreshold: 1 }, { probeSize: 16, skipThreshold: 1000 }]) {
        const bytes = car.bytes.subarray(0, car.payloadOffset + cut)
        await rejectsWith(indexCar(bytesReader(bytes), tuning), (err) => {
          assert.instance(err, InvalidCarError)
          // A CARv2 reader with a size fails before any section: its dataSize overruns the file.
          assert.match(err.message, version === 1 ? /truncated section/ : /extends past the end of the file/)
          if (version === 1) assert.ok(err.message.includes(`at byte ${car.payloadOffset + s.offset}`), `${err.message} (cut ${cut})`)
        })
      }
    }
    // Exactly at a section's end is a complete (shorter) CARv1.
    if (version === 1) {
      const result = await indexCar(bytesReader(car.bytes.subarray(0, at(car.sections, 3).end)))
      assert.is(result.sections, 4)
    }
  }
})

skipping('a file cut inside a big block, through the production FileReader (reads never go past its size)', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const car = encodeCar([makeBlock('raw', patterned(100, 1)), ...bigBlocks(3, 300_000, 2)])
    const cuts = [[1, at(car.sections, 1).end - 1], [2, at(car.sections, 2).dataOffset + 10], [3, at(car.sections, 3).end - 300]] as const
    for (const [i, cut] of cuts) {
      const path = join(dir, `cut-${cut}.car`)
      await writeFile(path, car.bytes.subarray(0, cut))
      const reader = await openFileReader(path)
      try {
        for (const tuning of [{}, { skipThreshold: 1 }, { windowSize: 1000, probeSize: 50 }]) {
          await rejectsWith(indexCar(reader, tuning), (err) => {
            assert.instance(err, InvalidCarError, String(err))
            assert.ok(err.message.endsWith(`at byte ${at(car.sections, i).offset}`), err.message)
          })
        }
      } finally {
        await reader.close()
      }
    }
  } finally {
    await cleanup()
  }
})

skipping('a reader without a size: CARv2 index read in pieces', async () => {
  const car = encodeCar(bigBlocks(6, 100_000), { version: 2, padAfter: 3 })
  const inner = bytesReader(car.bytes)
  const sizeless: MountReader = { stream: inner.stream, read: inner.read, close: inner.close }
  const result = await indexCar(sizeless)
  assert.is(result.embeddedIndex, 'adopted', result.embeddedIndexError?.message)
  assert.equal(indexMap(result.index), await oracleIndex(car.v1))
})

/** `reader` whose every answer from readNow (with the buffer it was given, if any) is reported to `onAnswer`. */
function watchingReadNow (reader: MountReader, onAnswer: (into: Uint8Array | undefined) => void): MountReader {
  const readNow = reader.readNow as NonNullable<MountReader['readNow']>
  return {
    size: reader.size,
    stream: reader.stream,
    read: reader.read,
    close: reader.close,
    readNow: (position, length, into) => {
      const got = readNow(position, length, into)
      if (got !== undefined) onAnswer(into)
      return got
    }
  }
}

skipping('a reader that answers probes now (a local file): the same index, probes answered without waiting', async () => {
  const car = encodeCar([makeBlock('raw', patterned(100, 1)), ...bigBlocks(200, 70_000, 2)])
  const { dir, cleanup } = await tempDir()
  try {
    const path = join(dir, 'big-blocks.car')
    await writeFile(path, car.bytes)
    const reader = await openFileReader(path)
    try {
      let answered = 0
      const counted = watchingReadNow(reader, () => { answered++ })
      const withNow = await indexCar(counted, { skipThreshold: 1024 })
      const without = await indexCar({ ...counted, readNow: undefined }, { skipThreshold: 1024 })
      assert.equal(indexMap(withNow.index), indexMap(without.index))
      assert.equal(indexMap(withNow.index), await oracleIndex(car.v1))
      // Not an exact count: a reader stops answering now after slow reads (a loaded machine).
      assert.ok(answered > 0, 'the scan probes through readNow')
      // Reads answered now are counted too (their number differs from the other run's: windows
      // read now need no read-ahead, which also answered some probes there).
      assert.ok(withNow.reads >= answered, `${withNow.reads} reads counted, ${answered} answered now`)
    } finally {
      await reader.close()
    }
  } finally {
    await cleanup()
  }
})

skipping('small sections from a reader that answers now: windows read at once into one buffer of the scan, the same index', async () => {
  const blocks: Block[] = []
  for (let i = 0; i < 3000; i++) blocks.push(makeBlock('raw', patterned(200 + (i % 13) * 31, 7000 + i)))
  const car = encodeCar(blocks)
  const { dir, cleanup } = await tempDir()
  try {
    const path = join(dir, 'small-blocks.car')
    await writeFile(path, car.bytes)
    const reader = await openFileReader(path)
    try {
      const targets = new Set<ArrayBufferLike>()
      let windowsNow = 0
      const counted = watchingReadNow(reader, (into) => {
        if (into === undefined) return
        windowsNow++
        targets.add(into.buffer)
      })
      for (const verifyHashes of [false, true]) {
        windowsNow = 0
        targets.clear()
        const result = await indexCar(counted, { windowSize: 8192, verifyHashes })
        assert.equal(indexMap(result.index), await oracleIndex(car.v1), `verify ${String(verifyHashes)}`)
        // Not an exact count: a reader stops answering now after slow reads (a loaded machine).
        assert.ok(windowsNow > 0, 'windows were read through readNow')
        assert.ok(targets.size <= 1, `windows went into ${targets.size} buffers`)
      }
    } finally {
      await reader.close()
    }
  } finally {
    await cleanup()
  }
})

/** `inner` (stream, close, size) with its positional reads going through `read`. */
function withRead (
  inner: TestReader, read: (innerRead: NonNullable<MountReader['read']>, position: number, length: number) => Promise<Uint8Array>
): MountReader {
  const innerRead = inner.read as NonNullable<MountReader['read']>
  return { size: inner.size, stream: inner.stream, close: inner.close, read: async (position, length) => await read(innerRead, position, length) }
}

skipping('aborting while positional reads are in flight rejects with AbortError', async () => {
  const car = encodeCar(bigBlocks(60, 100_000))
  const inner = bytesReader(car.bytes)
  const controller = new AbortController()
  let reads = 0
  const slow = withRead(inner, async (read, position, length) => {
    if (++reads === 3) controller.abort()
    await new Promise((resolve) => setTimeout(resolve, 1))
    return await read(position, length)
  })
  await rejectsWith(createShardIndexer()('k', slow, controller.signal), (err) => assert.is(err.name, 'AbortError'))
  // A read that never completes does not hold an aborted indexing.
  for (const stallAt of [1, 2, 4]) {
    let n = 0
    const stalled = withRead(inner, async (read, position, length) => {
      if (++n === stallAt) return await new Promise<Uint8Array>(() => {})
      return await read(position, length)
    })
    const c = new AbortController()
    const started = Date.now()
    setTimeout(() => c.abort(new Error('stop')), 20)
    await rejectsWith(indexCar(stalled, { signal: c.signal }), (err) => assert.is(err.name, 'AbortError'))
    assert.ok(Date.now() - started < 2000)
  }
})

/**
 * A reader with readInto whose reads land partly at once and partly late (a few ms, in random
 * order), the way a busy thread pool answers: a scan that handed out a window buffer still being parsed, or reused
 * one a dropped read-ahead still fills, would index corrupted bytes.
 */
function lateReadIntoReader (bytes: Uint8Array, seed: number): TestReader & { intoReads: () => number, overlapped: () => number } {
  const reader = bytesReader(bytes)
  let state = seed
  // Now and then a slow one: a dropped read-ahead still filling its buffer when the scan comes round to it again.
  const delay = (): number => { state = (state * 1103515245 + 12345) % 2147483648; return state % 7 === 0 ? 25 : state % 3 }
  let intoReads = 0
  // Buffers with a read in flight: two reads filling one buffer at once would mix their bytes.
  const filling = new Set<ArrayBufferLike>()
  let overlapped = 0
  return Object.assign(reader, {
    intoReads: () => intoReads,
    overlapped: () => overlapped,
    readInto: async (position: number, target: Uint8Array): Promise<number> => {
      intoReads++
      if (filling.has(target.buffer)) overlapped++
      filling.add(target.buffer)
      const end = Math.max(position, Math.min(bytes.length, position + target.byteLength))
      // A thread pool writes the target while the caller runs on: part of it at once, the rest
      // just before the read is answered.
      const half = position + Math.floor((end - position) / 2)
      target.set(bytes.subarray(position, half))
      await new Promise((resolve) => setTimeout(resolve, delay()))
      target.set(bytes.subarray(half, end), half - position)
      filling.delete(target.buffer)
      return end - position
    }
  })
}

skipping('readInto: windows in reused buffers give the oracle index, read-aheads landing late and dropped by jumps', async () => {
  // Small sections read in windows, with big ones between them that the scan jumps over
  // while a window's read-ahead is still in flight.
  const blocks: Block[] = []
  for (let i = 0; i < 120; i++) blocks.push(makeBlock('raw', patterned(i % 17 === 16 ? 40_000 : 300 + (i % 5) * 97, 500 + i)))
  const car = encodeCar(blocks)
  const oracle = await oracleIndex(car.v1)
  for (const tuning of [{ windowSize: 4096, skipThreshold: 8192 }, { windowSize: 1024, skipThreshold: 1 << 20 }, {}]) {
    for (const verifyHashes of [false, true]) {
      for (let seed = 1; seed <= 3; seed++) {
        const reader = lateReadIntoReader(car.bytes, seed)
        const result = await indexCar(reader, { ...tuning, verifyHashes })
        assert.equal(indexMap(result.index), oracle, `${JSON.stringify(tuning)} verify ${String(verifyHashes)} seed ${seed}`)
        assert.ok(reader.intoReads() > 0, 'windows were read with readInto')
        assert.is(reader.overlapped(), 0, 'a buffer was given to a read while another still filled it')
      }
    }
  }
})

skipping.run()

// ---- offsets past 4 GiB --------------------------------------------------------------------------

const huge = suite('car-positional: offsets past 4 GiB')

const GiB = 1024 * 1024 * 1024

interface Huge { size: number, segments: Segment[], small: Array<{ block: Block, offset: number }>, payloadOffset: number, payloadSize?: number }

/**
 * A CARv1 payload: header, a 4.5 GiB block of zeros, three small real blocks, a 3 GiB block,
 * two more small blocks; at `at` (absolute). Only headers and small blocks are real bytes.
 */
function hugePayload (at: number): {
  segments: Segment[], small: Array<{ block: Block, offset: number }>, length: number, giants: Array<{ offset: number, cidMultihash: Uint8Array }>
} {
  const segments: Segment[] = []
  const small: Array<{ block: Block, offset: number }> = []
  const giants: Array<{ offset: number, cidMultihash: Uint8Array }> = []
  const root = randomCid()
  const header = encodeCar([], { roots: [root] }).bytes
  segments.push({ position: at, bytes: header })
  let pos = header.length
  const giant = (length: number): void => {
    const cid = randomCid()
    const head = sectionHead(cid, length)
    segments.push({ position: at + pos, bytes: head })
    giants.push({ offset: pos, cidMultihash: cid.multihash.bytes })
    pos += head.length + length
  }
  const real = (seed: number): void => {
    const block = makeBlock(seed % 2 === 0 ? 'raw' : 'cbor', patterned(500 + seed, seed))
    const len = block.cid.bytes.length + block.bytes.length
    const bytes = new Uint8Array(10 + len)
    const n = encodeVarint(len, bytes, 0)
    bytes.set(block.cid.bytes, n)
    bytes.set(block.bytes, n + block.cid.bytes.length)
    segments.push({ position: at + pos, bytes: bytes.subarray(0, n + len) })
    small.push({ block, offset: pos })
    pos += n + len
  }
  giant(4.5 * GiB)
  real(1); real(2); real(3)
  giant(3 * GiB)
  real(4); real(5)
  return { segments, small, length: pos, giants }
}

async function checkHuge (h: Huge, reader: MountReader, options: ShardIndexerOptions): Promise<void> {
  const result = await indexCar(reader, { maxSectionSize: 8 * GiB, ...options })
  assert.is(result.layout.payloadOffset, h.payloadOffset)
  assert.is(result.index.size, 7)
  for (const { block, offset } of h.small) {
    assert.ok(offset > 2 ** 32)
    assert.is(result.index.get(block.cid.multihash.bytes), offset, 'exact offset past 4 GiB')
  }
  const bs = new ShardBlockstore({ reader, index: result.index, payloadOffset: h.payloadOffset, payloadSize: h.payloadSize })
  for (const { block } of h.small) assert.equal(u8(await bs.get(block.cid)), u8(block.bytes))
}

huge('a CARv1 with sections at 4.5 and 7.5 GiB: positional and streamed, then served', async () => {
  const p = hugePayload(0)
  const h: Huge = { size: p.length, segments: p.segments, small: p.small, payloadOffset: 0 }
  for (const tuning of [{}, { skipThreshold: 1 << 30 }, { probeSize: 8 }]) {
    const reader = sparseReader(h.size, h.segments)
    await checkHuge(h, reader, tuning)
    // Only headers and small blocks (plus a window or so) are read, never the zeros.
    assert.ok(reader.bytesRead < 8 * 1024 * 1024, `${reader.bytesRead} bytes read`)
  }
  await checkHuge(h, sparseReader(h.size, h.segments, { random: false }), {})
  await checkHuge(h, sparseReader(h.size, h.segments), { readMode: 'stream' })
})

huge('a CARv2 whose payload starts past 4 GiB, with an embedded index past 11 GiB', async () => {
  const dataOffset = 4 * GiB + 12345
  const p = hugePayload(dataOffset)
  const entries = [...p.small.map(({ block, offset }) => ({ multihash: block.cid.multihash.bytes, offset })),
    ...p.giants.map(({ cidMultihash, offset }) => ({ multihash: cidMultihash, offset }))]
  const index = encodeMultihashIndexSorted(entries)
  const indexOffset = dataOffset + p.length + 7
  const v2Header = new Uint8Array(51)
  v2Header.set([0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02], 0)
  const view = new DataView(v2Header.buffer)
  view.setBigUint64(27, BigInt(dataOffset), true)
  view.setBigUint64(35, BigInt(p.length), true)
  view.setBigUint64(43, BigInt(indexOffset), true)
  const segments = [{ position: 0, bytes: v2Header }, ...p.segments, { position: indexOffset, bytes: index }]
  const h: Huge = { size: indexOffset + index.length, segments, small: p.small, payloadOffset: dataOffset, payloadSize: p.length }
  const reader = sparseReader(h.size, h.segments)
  await checkHuge(h, reader, {})
  const result = await indexCar(reader, { maxSectionSize: 8 * GiB })
  assert.is(result.embeddedIndex, 'adopted', result.embeddedIndexError?.message)
  assert.is(result.layout.indexOffset, indexOffset)
  for (const g of p.giants) assert.is(result.index.get(g.cidMultihash), g.offset)
})

huge.run()
