/**
 * The ReadBlockstore contract (a shard accessor's blockstore, the all-shards one, or your
 * own), and the read half of an interface-blockstore view of one. Each check hands the
 * factory the bytes of a CAR and compares what the blockstore serves with what @ipld/car
 * reads from the same bytes.
 */
import assert from 'node:assert/strict'
import { CarReader } from '@ipld/car/reader'
import { CarWriter } from '@ipld/car/writer'
import type { Blockstore } from 'interface-blockstore'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { BlockNotFoundError } from '../base/errors.js'
import type { ReadBlockstore } from '../base/types.js'
import { assertRejects, assertSameBytes, at, codeOf, flipBits, type RegisterTest } from './harness.js'

const DAG_PB = 0x70
const DAG_CBOR = 0x71
const DAG_JSON = 0x0129
const IDENTITY = 0x00

export interface CarCase { name: string, bytes: Uint8Array }

export interface Opened<B> {
  blockstore: B
  /** Releases the blockstore and whatever `open` set up for it. */
  close: () => Promise<void>
}

export interface ReadBlockstoreFactory<B = ReadBlockstore> {
  /** A blockstore serving exactly the blocks of the CAR (v1 or v2) `car`. */
  open: (car: Uint8Array) => Promise<Opened<B>>
  /** CARs to check besides the suite's own (real-world files, say). */
  cars?: CarCase[]
}

interface Block { cid: CID, bytes: Uint8Array }

/** What a check needs from either interface. */
interface Reads {
  has: (cid: CID) => Promise<boolean>
  get: (cid: CID) => Promise<Uint8Array>
  getSize?: (cid: CID) => Promise<number>
  /** The keys as the blockstore lists them, with the bytes when the listing carries them. */
  list: () => AsyncIterable<{ cid: CID, bytes?: Uint8Array }>
  /** getMany when the interface has it: pairs in input order. */
  getMany?: (cids: CID[]) => AsyncIterable<Block>
  /** Asserts `err` is the interface's "no such block" error. */
  notFound: (err: unknown) => void
}

function patterned (size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    out[i] = x & 0xff
  }
  return out
}

async function block (codec: number, bytes: Uint8Array, hasher: 'sha256' | 'sha512' | 'identity' = 'sha256'): Promise<Block> {
  const mh = hasher === 'identity' ? identity.digest(bytes) : await (hasher === 'sha256' ? sha256 : sha512).digest(bytes)
  return { cid: CID.createV1(codec, mh), bytes }
}

async function writeCar (roots: CID[], blocks: Block[]): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots)
  const chunks: Uint8Array[] = []
  const collected = (async () => { for await (const c of out) chunks.push(c) })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await collected
  return Buffer.concat(chunks)
}

/**
 * The suite's own CARs: every codec and hash the contract speaks of, identity CIDs, an empty
 * block, blocks around and far above a 4 KiB first read, a repeated block, one multihash under
 * two codecs; and a CAR with no blocks at all.
 */
async function builtInCars (): Promise<CarCase[]> {
  const small = await block(raw.code, new TextEncoder().encode('hello, conformance'))
  const cbor = await block(DAG_CBOR, patterned(300, 1))
  const pbBytes = patterned(700, 2)
  const v0: Block = { cid: CID.createV0(await sha256.digest(pbBytes)), bytes: pbBytes }
  const blocks: Block[] = [
    small,
    cbor,
    v0,
    await block(raw.code, patterned(1000, 3), 'sha512'),
    await block(raw.code, new TextEncoder().encode('inline block'), 'identity'),
    await block(raw.code, new Uint8Array(0)),
    await block(DAG_JSON, patterned(4000, 4)),
    await block(raw.code, patterned(4096, 5)),
    await block(DAG_PB, patterned(100_000, 6)),
    await block(raw.code, new Uint8Array(0), 'identity'),
    // Written twice: listed twice, served either way.
    small,
    // The same multihash under another codec: a second CID for bytes already in the CAR.
    { cid: CID.createV1(raw.code, cbor.cid.multihash), bytes: cbor.bytes },
    await block(raw.code, patterned(10, 7))
  ]
  const absentRoot = (await block(raw.code, new TextEncoder().encode('root not in the CAR'))).cid
  return [
    { name: 'edge cases (built in)', bytes: await writeCar([at(blocks, 0).cid], blocks) },
    { name: 'no blocks (built in)', bytes: await writeCar([absentRoot], []) }
  ]
}

async function oracle (car: Uint8Array): Promise<Block[]> {
  const reader = await CarReader.fromBytes(car)
  const out: Block[] = []
  for await (const b of reader.blocks()) out.push({ cid: b.cid, bytes: b.bytes })
  return out
}

function stored (blocks: Block[]): Block[] {
  return blocks.filter((b) => b.cid.multihash.code !== IDENTITY)
}

/** At most `n` blocks spread over the whole CAR, first and last included: for the costlier checks. */
function spread (blocks: Block[], n = 64): Block[] {
  if (blocks.length <= n) return blocks
  return Array.from({ length: n }, (_, i) => at(blocks, Math.round(i * (blocks.length - 1) / (n - 1))))
}

/** CIDs of blocks the CAR does not hold, including near misses of ones it does. */
async function absentCids (blocks: Block[]): Promise<CID[]> {
  const held = new Set(blocks.map((b) => Buffer.from(b.cid.multihash.bytes).toString('hex')))
  const candidates: CID[] = [(await block(raw.code, new TextEncoder().encode('never written anywhere'))).cid]
  for (const b of stored(blocks).slice(0, 3)) {
    const digest = b.cid.multihash.digest
    const flipped = digest.slice()
    flipBits(flipped, flipped.length - 1, 0x01)
    candidates.push(
      CID.createV1(b.cid.code, Digest.create(b.cid.multihash.code, flipped)),
      CID.createV1(raw.code, Digest.create(b.cid.multihash.code === 0x12 ? 0x13 : 0x12, digest)),
      CID.createV1(raw.code, Digest.create(b.cid.multihash.code, digest.subarray(0, digest.length - 1)))
    )
  }
  return candidates.filter((c) => !held.has(Buffer.from(c.multihash.bytes).toString('hex')))
}

/** The same multihash as other CIDs: another codec, and CIDv0 where sha2-256 allows it. */
function otherCids (cid: CID): CID[] {
  const out: CID[] = []
  for (const codec of [raw.code, DAG_CBOR, DAG_PB, 0x0200]) {
    if (cid.version === 1 && codec === cid.code) continue
    out.push(CID.createV1(codec, cid.multihash))
  }
  if (cid.version === 1 && cid.multihash.code === 0x12 && cid.multihash.size === 32) out.push(CID.createV0(cid.multihash as never))
  return out
}

function sameKeys (actual: CID[], expected: CID[], what: string): void {
  for (const c of actual) assert.ok(CID.asCID(c) !== null, `${what}: a CID`)
  assert.deepEqual(actual.map((c) => c.toString()), expected.map((c) => c.toString()), what)
}

type Check = (reads: Reads, blocks: Block[]) => Promise<void>

async function everyBlock (reads: Reads, blocks: Block[]): Promise<void> {
  for (const { cid, bytes } of blocks) {
    assert.equal(await reads.has(cid), true, `has ${cid}`)
    assertSameBytes(await reads.get(cid), bytes, `get ${cid}`)
    if (reads.getSize !== undefined) assert.equal(await reads.getSize(cid), bytes.length, `getSize ${cid}`)
  }
}

/** Blocks are found by multihash: any codec or CID version. */
async function anyCodec (reads: Reads, blocks: Block[]): Promise<void> {
  for (const { cid, bytes } of spread(stored(blocks))) {
    for (const other of otherCids(cid)) {
      assert.equal(await reads.has(other), true, `has ${other} (for ${cid})`)
      assertSameBytes(await reads.get(other), bytes, `get ${other} (for ${cid})`)
      if (reads.getSize !== undefined) assert.equal(await reads.getSize(other), bytes.length, `getSize ${other} (for ${cid})`)
    }
  }
}

/** A returned block is the caller's own: writing to it changes nothing served later. */
async function callersCopy (reads: Reads, blocks: Block[]): Promise<void> {
  for (const { cid, bytes } of spread(stored(blocks))) {
    const first = await reads.get(cid)
    first.fill(0x5a)
    assertSameBytes(await reads.get(cid), bytes, `get ${cid} after the caller wrote to an earlier copy`)
  }
}

async function absent (reads: Reads, blocks: Block[]): Promise<void> {
  for (const cid of await absentCids(blocks)) {
    assert.equal(await reads.has(cid), false, `has ${cid} (not in the CAR)`)
    await assertRejects(reads.get(cid), reads.notFound, `get ${cid} (not in the CAR)`)
    if (reads.getSize !== undefined) await assertRejects(reads.getSize(cid), reads.notFound, `getSize ${cid} (not in the CAR)`)
  }
}

/** Identity CIDs, in the CAR or not, are served from the CID itself. */
async function identities (reads: Reads, blocks: Block[]): Promise<void> {
  const inCar = blocks.filter((b) => b.cid.multihash.code === IDENTITY)
  const elsewhere = await Promise.all([
    block(raw.code, new Uint8Array(0), 'identity'),
    block(DAG_CBOR, new TextEncoder().encode('never in any CAR'), 'identity'),
    block(DAG_PB, patterned(64, 9), 'identity')
  ])
  for (const { cid, bytes } of [...inCar, ...elsewhere]) {
    assert.equal(await reads.has(cid), true, `has ${cid} (identity)`)
    const got = await reads.get(cid)
    assertSameBytes(got, bytes, `get ${cid} (identity)`)
    if (reads.getSize !== undefined) assert.equal(await reads.getSize(cid), bytes.length, `getSize ${cid} (identity)`)
    // The block is the caller's: writing to it must not change the CID it came from.
    got.fill(0xa5)
    assertSameBytes(cid.multihash.digest, bytes, `the digest of ${cid} after the caller wrote to its block`)
  }
}

/** The listing is the CIDs as written, in CAR order, identity and repeated blocks included; twice. */
async function listing (reads: Reads, blocks: Block[]): Promise<void> {
  const listed: Array<{ cid: CID, bytes?: Uint8Array }> = []
  for await (const entry of reads.list()) listed.push(entry)
  sameKeys(listed.map((e) => e.cid), blocks.map((b) => b.cid), 'listing')
  listed.forEach((e, i) => { if (e.bytes !== undefined) assertSameBytes(e.bytes, at(blocks, i).bytes, `listed bytes of ${e.cid}`) })
  const again: CID[] = []
  for await (const entry of reads.list()) again.push(entry.cid)
  sameKeys(again, blocks.map((b) => b.cid), 'second listing')
}

async function concurrency (reads: Reads, blocks: Block[]): Promise<void> {
  const all = await Promise.all(blocks.map(async ({ cid }) => await reads.get(cid)))
  blocks.forEach(({ cid, bytes }, i) => { assertSameBytes(at(all, i), bytes, `concurrent get ${cid}`) })
  let i = 0
  for await (const { cid } of reads.list()) {
    const expected = blocks[i]
    assert.ok(expected !== undefined, 'the listing yields no more keys than the CAR holds')
    assert.equal(cid.toString(), expected.cid.toString(), `listing position ${i}`)
    assertSameBytes(await reads.get(cid), expected.bytes, `get ${cid} mid-listing`)
    i++
  }
  assert.equal(i, blocks.length, 'keys listed while getting')
}

/** getMany, where the interface has it: every asked-for block in input order; a missing one fails. */
async function many (reads: Reads, blocks: Block[]): Promise<void> {
  const getMany = reads.getMany
  if (getMany === undefined) return
  const wanted = [...blocks].reverse()
  const got: Block[] = []
  for await (const pair of getMany(wanted.map((b) => b.cid))) got.push(pair)
  sameKeys(got.map((p) => p.cid), wanted.map((b) => b.cid), 'getMany order')
  got.forEach((p, j) => { assertSameBytes(p.bytes, at(wanted, j).bytes, `getMany bytes of ${p.cid}`) })
  const missing = at(await absentCids(blocks), 0)
  const first = stored(blocks)[0]
  const drain = async (): Promise<void> => {
    for await (const _ of getMany(first === undefined ? [missing] : [first.cid, missing])) { /* drain */ }
  }
  await assertRejects(drain(), reads.notFound, 'getMany with a missing block')
}

/**
 * Checks are grouped three to a blockstore: opening one (a store, a shard, its index) costs
 * far more than the checks.
 */
const GROUPS: Array<[string, Check[]]> = [
  ['every block by has, get and getSize, byte for byte; by multihash under any codec or CID version; each get a copy of its own', [everyBlock, anyCodec, callersCopy]],
  ['blocks not in the CAR are not found; identity CIDs, in the CAR or not, are served from the CID', [absent, identities]],
  ['keys listed as written, in CAR order, repeated and identity blocks included; concurrent gets and gets mid-listing; getMany in input order', [listing, concurrency, many]]
]

function registerChecks<B> (test: RegisterTest, factory: ReadBlockstoreFactory<B>, view: (blockstore: B) => Reads): void {
  let cars: Promise<CarCase[]> | undefined
  const expectations = new Map<string, Promise<Block[]>>()

  async function using (name: string, checks: Check[]): Promise<void> {
    cars ??= builtInCars().then((own) => [...own, ...(factory.cars ?? [])])
    const car = (await cars).find((c) => c.name === name) as CarCase
    let expected = expectations.get(name)
    if (expected === undefined) {
      expected = oracle(car.bytes)
      expectations.set(name, expected)
    }
    const blocks = await expected
    const opened = await factory.open(car.bytes)
    try {
      const reads = view(opened.blockstore)
      for (const check of checks) await check(reads, blocks)
    } finally {
      await opened.close()
    }
  }

  const names = ['edge cases (built in)', 'no blocks (built in)', ...(factory.cars ?? []).map((c) => c.name)]
  for (const name of names) {
    for (const [what, checks] of GROUPS) test(`${name}: ${what}`, () => using(name, checks))
  }
}

function notFoundError (err: unknown): void {
  assert.ok(err instanceof BlockNotFoundError, `expected BlockNotFoundError, got ${String(err)}`)
  assert.equal(codeOf(err), 'ERR_NOT_FOUND')
}

/**
 * Registers the ReadBlockstore checks with `test`, over the suite's own CARs and
 * `factory.cars`; each check opens a fresh blockstore and closes it.
 */
export function readBlockstoreConformance (test: RegisterTest, factory: ReadBlockstoreFactory): void {
  registerChecks(test, factory, (bs) => ({
    has: async (cid) => await bs.has(cid),
    get: async (cid) => await bs.get(cid),
    getSize: async (cid) => await bs.getSize(cid),
    list: async function * () { for await (const cid of bs.allKeys()) yield { cid } },
    notFound: notFoundError
  }))
}

async function concat (chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const c of chunks) {
    assert.ok(c instanceof Uint8Array, 'chunks are Uint8Arrays')
    parts.push(c)
  }
  const [only] = parts
  return parts.length === 1 && only !== undefined ? only : Buffer.concat(parts)
}

/**
 * The read half of interface-blockstore (v7) over a CAR's blocks, as a read-only view of a
 * ReadBlockstore must serve it: has, get (chunks), getMany (input order), getAll (CAR order).
 * A missing block fails as interface-store's NotFoundError (name 'NotFoundError', code ERR_NOT_FOUND).
 */
export function interfaceBlockstoreReadConformance (test: RegisterTest, factory: ReadBlockstoreFactory<Blockstore>): void {
  registerChecks(test, factory, (bs) => ({
    has: async (cid) => await bs.has(cid),
    get: async (cid) => await concat(bs.get(cid)),
    list: async function * () {
      for await (const pair of bs.getAll()) yield { cid: pair.cid, bytes: await concat(pair.bytes) }
    },
    getMany: async function * (cids) {
      for await (const pair of bs.getMany(cids)) yield { cid: pair.cid, bytes: await concat(pair.bytes) }
    },
    notFound: (err) => {
      assert.equal((err as Error | null)?.name, 'NotFoundError', `expected a NotFoundError, got ${String(err)}`)
      assert.equal(codeOf(err), 'ERR_NOT_FOUND')
    }
  }))
}
