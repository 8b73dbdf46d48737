// Fuzzing the register path: real fixture CARs, mutated (bytes flipped, cut, inserted; varints
// padded; section lengths changed; CID versions, codecs and multihash codes and lengths
// changed), registered through a real DAGStore (LevelDB and the go-car index files in a temp
// dir). Every failure must be an error with a registered code, on ShardInfo.error and as the
// cause of the register's result; every success must serve only blocks whose bytes hash to
// their CID. Seeded and bounded (DAGSTORE_FUZZ_SEED / DAGSTORE_FUZZ_RUNS pick others).
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { CarIndexer } from '@ipld/car/indexer'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { HttpMount } from '../src/storage/mount/http.js'
import { codeOf } from '../src/base/errors/inspect.js'
import { ERROR_CODES } from '../src/base/errors/codes.js'
import { decodeVarint, encodeVarint, varintLength } from '../src/format/varint.js'
import type { Mount } from '../src/base/mount-types.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'
import { serve } from './helpers/http-server.js'
import { blake2b } from './helpers/car-gen.js'
import { hex } from './helpers/file-reader.js'

const SEED = Number(process.env.DAGSTORE_FUZZ_SEED ?? 20261206)
const RUNS = Number(process.env.DAGSTORE_FUZZ_RUNS ?? 200)
const REGISTERED = new Set<string>(ERROR_CODES.map((e) => e.code))

// ---- the fixtures and where their sections lie -------------------------------------------------------

interface Section {
  /** Absolute offsets: the length varint, the CID, the block data. */
  offset: number
  cidStart: number
  dataStart: number
  dataEnd: number
}

interface Fixture {
  name: string
  bytes: Uint8Array
  /** CARv2: dataSize at 35 and indexOffset at 43 follow a payload that grows or shrinks. */
  v2: boolean
  sections: Section[]
  /** Multihash (hex) → the block's bytes, as written. */
  blocks: Map<string, Uint8Array>
}

async function load (name: string): Promise<Fixture> {
  const bytes = new Uint8Array(await readFile(fixture(name)))
  const sections: Section[] = []
  const blocks = new Map<string, Uint8Array>()
  try {
    for await (const e of await CarIndexer.fromBytes(bytes)) {
      const length = decodeVarint(bytes, e.offset)
      sections.push({ offset: e.offset, cidStart: e.offset + length.length, dataStart: e.blockOffset, dataEnd: e.blockOffset + e.blockLength })
      blocks.set(hex(e.cid.multihash.bytes), bytes.subarray(e.blockOffset, e.blockOffset + e.blockLength))
    }
  } catch (err) {
    // sample-v1-with-zero-len-section.car: @ipld/car stops at the zero-length section (its end).
    if (!/zero length/.test(String(err))) throw err
  }
  return { name, bytes, v2: bytes[0] === 0x0a, sections, blocks }
}

const FIXTURE_NAMES = ['sample-v1.car', 'sample-wrapped-v2.car', 'sample-v2-indexless.car', 'sample-v1-with-zero-len-section.car']
const fixtures = await Promise.all(FIXTURE_NAMES.map(load))

// ---- mutations ------------------------------------------------------------------------------------------

/** A uniform fraction in [0, 1) (fast-check biases plain numbers towards their bounds). */
const fraction = fc.noBias(fc.integer({ min: 0, max: 999_999 })).map((n) => n / 1_000_000)

/** A section's varints: its length, then the CID's version, codec, multihash code and multihash length. */
type Field = 'length' | 'version' | 'codec' | 'code' | 'digest-length'
const FIELDS: Field[] = ['length', 'version', 'codec', 'code', 'digest-length']

type Structural =
  | { kind: 'pad', section: number, field: Field, extra: number, consistent: boolean }
  | { kind: 'set', section: number, field: Field, value: number, consistent: boolean }
  | { kind: 'resize', section: number, delta: number }

/**
 * Where a byte-level change lands: anywhere (mostly block data), in some section's head (its
 * first 48 bytes), or in the last tenth (a CARv2's index).
 */
type Region = 'any' | 'head' | 'tail'
interface Place { region: Region, at: number, section: number }

type ByteLevel =
  | { kind: 'flip', place: Place, xor: number }
  | { kind: 'cut', at: number }
  | { kind: 'cut-section', section: number }
  | { kind: 'insert', place: Place, bytes: number[] }

/** Values a CID field is set to: the usual ones, their neighbours, and anything. */
const fieldValue = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 0x12, 0x13, 0x14, 0x1e, 0x20, 0x22, 0x40, 0x55, 0x70, 0x71, 0x0129, 0xb220, 0xb240),
  fc.integer({ min: 0, max: 0xffff }),
  fc.integer({ min: 0, max: 2 ** 40 })
)

const structuralArb: fc.Arbitrary<Structural> = fc.oneof(
  fc.record({
    kind: fc.constant('pad' as const),
    section: fc.nat(),
    field: fc.constantFrom(...FIELDS),
    extra: fc.integer({ min: 1, max: 3 }),
    consistent: fc.boolean()
  }),
  fc.record({ kind: fc.constant('set' as const), section: fc.nat(), field: fc.constantFrom(...FIELDS), value: fieldValue, consistent: fc.boolean() }),
  fc.record({
    kind: fc.constant('resize' as const),
    section: fc.nat(),
    delta: fc.oneof(fc.integer({ min: -40, max: 40 }), fc.integer({ min: -(2 ** 20), max: 2 ** 26 }))
  })
)

const placeArb: fc.Arbitrary<Place> = fc.record({ region: fc.constantFrom<Region>('any', 'head', 'head', 'tail'), at: fraction, section: fc.nat() })

const byteLevelArb: fc.Arbitrary<ByteLevel> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), place: placeArb, xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fraction }),
  // At a section boundary: a CARv1 that is still whole, only shorter.
  fc.record({ kind: fc.constant('cut-section' as const), section: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const), place: placeArb, bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 })
  })
)

const caseArb = fc.record({
  fixture: fc.nat({ max: fixtures.length - 1 }),
  structural: fc.option(structuralArb, { nil: undefined, freq: 3 }),
  bytes: fc.array(byteLevelArb, { minLength: 0, maxLength: 3 })
}).filter((c) => c.structural !== undefined || c.bytes.length > 0)

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never

function splice (bytes: Uint8Array, start: number, end: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length - (end - start) + insert.length)
  out.set(bytes.subarray(0, start), 0)
  out.set(insert, start)
  out.set(bytes.subarray(end), start + insert.length)
  return out
}

/** `value` as a varint padded with `extra` continuation bytes (0x80 … 0x00): the same number, not minimally encoded. */
function varint (value: number, extra = 0): Uint8Array {
  const out = new Uint8Array(varintLength(value) + extra)
  const n = encodeVarint(value, out, 0)
  if (extra === 0) return out
  out[n - 1] = (out[n - 1] as number) | 0x80
  for (let i = n; i < out.length - 1; i++) out[i] = 0x80
  out[out.length - 1] = 0x00
  return out
}

/** A CARv2 whose payload grew by `delta` bytes: its dataSize (and index offset) follow. */
function shiftV2 (fx: Fixture, bytes: Uint8Array, delta: number): void {
  if (!fx.v2 || delta === 0) return
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  view.setBigUint64(35, view.getBigUint64(35, true) + BigInt(delta), true)
  const indexOffset = view.getBigUint64(43, true)
  if (indexOffset !== 0n) view.setBigUint64(43, indexOffset + BigInt(delta), true)
}

/**
 * Rewrites one varint of a section (`consistent`: the section length, and a CARv2's sizes,
 * follow, so the parser meets the change itself rather than a section that no longer adds up).
 */
function rewrite (fx: Fixture, s: Section, field: Field, encoded: (old: number) => Uint8Array, consistent: boolean): Uint8Array {
  const bytes = fx.bytes
  const length = decodeVarint(bytes, s.offset)
  if (field === 'length') {
    const out = splice(bytes, s.offset, s.cidStart, encoded(length.value))
    if (consistent) shiftV2(fx, out, out.length - bytes.length)
    return out
  }
  // CID fields, in order: version, codec, multihash code, digest length.
  let p = s.cidStart
  for (const f of FIELDS.slice(1)) {
    const v = decodeVarint(bytes, p)
    if (f === field) {
      const replacement = encoded(v.value)
      let out = splice(bytes, p, p + v.length, replacement)
      const delta = replacement.length - v.length
      if (consistent && delta !== 0) {
        out = splice(out, s.offset, s.cidStart, varint(length.value + delta))
        shiftV2(fx, out, out.length - bytes.length)
      }
      return out
    }
    p += v.length
  }
  throw new Error('unreachable')
}

function structural (fx: Fixture, m: Structural): Uint8Array {
  const s = fx.sections[m.section % fx.sections.length] as Section
  switch (m.kind) {
    case 'pad': return rewrite(fx, s, m.field, (old) => varint(old, m.extra), m.consistent)
    case 'set': return rewrite(fx, s, m.field, () => varint(m.value), m.consistent)
    case 'resize': return rewrite(fx, s, 'length', (old) => varint(Math.max(0, old + m.delta)), false)
  }
}

function position (fx: Fixture, bytes: Uint8Array, p: Place): number {
  if (p.region === 'any') return Math.floor(p.at * bytes.length)
  if (p.region === 'tail') return bytes.length - 1 - Math.floor(p.at * bytes.length / 10)
  const s = fx.sections[p.section % fx.sections.length] as Section
  return Math.min(bytes.length - 1, s.offset + Math.floor(p.at * 48))
}

function mutate (c: Case): { fx: Fixture, bytes: Uint8Array } {
  const fx = fixtures[c.fixture] as Fixture
  let bytes = c.structural === undefined ? Uint8Array.from(fx.bytes) : structural(fx, c.structural)
  for (const m of c.bytes) {
    if (bytes.length === 0) break
    if (m.kind === 'flip') {
      const at = position(fx, bytes, m.place)
      bytes[at] = (bytes[at] as number) ^ m.xor
    } else if (m.kind === 'cut') {
      bytes = bytes.subarray(0, Math.floor(m.at * bytes.length))
    } else if (m.kind === 'cut-section') {
      bytes = bytes.subarray(0, (fx.sections[m.section % fx.sections.length] as Section).offset)
    } else {
      const at = position(fx, bytes, m.place)
      bytes = splice(bytes, at, at, Uint8Array.from(m.bytes))
    }
  }
  return { fx, bytes }
}

// ---- the checks ---------------------------------------------------------------------------------------

/** An independent hash of `data` by the CID's hash function; undefined for one the test does not know. */
function hashOf (code: number, data: Uint8Array): Uint8Array | undefined {
  if (code === 0x12) return createHash('sha256').update(data).digest()
  if (code === 0x13) return createHash('sha512').update(data).digest()
  if (code === 0xb220) return blake2b(data, 32)
  if (code === 0x00) return data
  return undefined
}

function coded (err: unknown, what: string): string {
  const code = codeOf(err)
  assert.ok(code !== undefined && REGISTERED.has(code), `${what}: an error without a registered code: ${String(err)} (code ${String(code)})`)
  return code
}

/** The register failed: a registered code on the shard's error, which is the result's cause. */
function checkFailure (store: DAGStore, key: string, err: unknown, what: string): string {
  assert.is(codeOf(err), 'ERR_SHARD_INITIALIZATION_FAILED', `${what}: ${String(err)}`)
  const info = store.getShardInfo(key)
  assert.is(info.state, 'errored', what)
  assert.is((err as Error).cause, info.error, `${what}: the result's cause is the shard's error`)
  return coded(info.error, what)
}

/** The register succeeded: every indexed block is served, and its bytes hash to its CID. */
async function checkServed (store: DAGStore, key: string, fx: Fixture, what: string): Promise<number> {
  const index = await store.getIterableIndex(key)
  const acc = await store.acquire(key)
  try {
    const bs = acc.blockstore()
    for (const { multihash } of index) {
      const digest = Digest.decode(Uint8Array.from(multihash))
      const cid = CID.createV1(0x55, digest)
      const got = await bs.get(cid)
      // Bytes a fixture block has under this multihash are known to hash to it.
      const original = fx.blocks.get(hex(multihash))
      if (original !== undefined && Buffer.from(original).equals(got)) continue
      const hash = hashOf(digest.code, got)
      assert.ok(hash !== undefined, `${what}: served ${cid.toString()} with a hash function that cannot have been verified`)
      assert.ok(Buffer.from(hash.subarray(0, digest.digest.length)).equals(digest.digest) && digest.digest.length >= Math.min(20, hash.length),
        `${what}: served bytes of ${cid.toString()} that do not hash to it`)
    }
    // Every CID as written decodes.
    for await (const cid of bs.allKeys()) assert.ok(cid.multihash.bytes.length > 0)
    return index.size
  } finally {
    await acc.close()
  }
}

/** Registers, then checks what came of it: the outcome (a registered code, or 'available'). */
async function registerAndCheck (store: DAGStore, key: string, mount: Mount, fx: Fixture, what: string): Promise<string> {
  let failure: unknown
  try {
    await store.register(key, mount)
  } catch (err) {
    failure = err ?? new Error('rejected with nothing')
  }
  if (failure !== undefined) return checkFailure(store, key, failure, what)
  await checkServed(store, key, fx, what)
  return 'available'
}

// ---- the properties ---------------------------------------------------------------------------------------

const test = dirSuite('property-register')

test('mutated fixtures registered from files (verifyHashes: true): coded failures, or verified blocks only', async (ctx) => {
  const { store, reported } = await openStore(ctx.dir, { verifyHashes: true })
  const outcomes = new Map<string, number>()
  let n = 0
  try {
    await fc.assert(fc.asyncProperty(caseArb, async (c) => {
      const { fx, bytes } = mutate(c)
      const key = `case-${n++}`
      const path = join(ctx.dir, `${key}.car`)
      await writeFile(path, bytes)
      let outcome: string
      try {
        outcome = await registerAndCheck(store, key, new FileMount(path), fx, `${fx.name} ${JSON.stringify(c)}`)
      } finally {
        await rm(path)
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    }), { seed: SEED, numRuns: RUNS, includeErrorInReport: true })
  } finally {
    await store.close()
  }
  assert.equal(reported.map((r) => `${r.context}: ${String(r.err)}`), [], 'nothing reported without a caller')
  // Both outcomes, or the property said little.
  assert.ok((outcomes.get('available') ?? 0) > RUNS / 20 && (outcomes.get('ERR_INVALID_CAR') ?? 0) > RUNS / 5, JSON.stringify([...outcomes]))
})

test('mutated fixtures over HTTP with the default verifyHashes (remote): coded failures, or verified blocks only', async (ctx) => {
  const bodies = new Map<string, Uint8Array>()
  const srv = await serve((req, res) => {
    const body = bodies.get(req.url ?? '')
    if (body === undefined) { res.writeHead(404).end(); return }
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': body.byteLength })
    res.end(req.method === 'HEAD' ? undefined : body)
  })
  const base = new URL(srv.url)
  const { store, reported } = await openStore(ctx.dir)
  const outcomes = new Map<string, number>()
  let n = 0
  try {
    await fc.assert(fc.asyncProperty(caseArb, async (c) => {
      const { fx, bytes } = mutate(c)
      const key = `case-${n++}`
      bodies.set(`/${key}.car`, bytes)
      let outcome: string
      try {
        outcome = await registerAndCheck(store, key, new HttpMount(new URL(`/${key}.car`, base)), fx, `${fx.name} over HTTP ${JSON.stringify(c)}`)
      } finally {
        bodies.delete(`/${key}.car`)
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    }), { seed: SEED + 1, numRuns: Math.ceil(RUNS / 4), includeErrorInReport: true })
  } finally {
    await store.close()
    await srv.close()
  }
  assert.equal(reported.map((r) => `${r.context}: ${String(r.err)}`), [], 'nothing reported without a caller')
  assert.ok((outcomes.get('ERR_INVALID_CAR') ?? 0) > 0, JSON.stringify([...outcomes]))
})

test.run()
