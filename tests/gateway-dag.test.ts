// The trustless gateway's DAG CARs (dag-scope, entity-bytes, dups, content paths) on a real
// server over a real store: UnixFS files and directories (a HAMT-sharded one included) made by
// ipfs-unixfs-importer and a dag-cbor/dag-json DAG, their blocks spread over three shards.
// Every CAR is parsed back with @ipld/car, every block hashed against its CID, and the CIDs,
// in order, compared with an independent oracle (tests/helpers/dag-oracle.ts).
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CarReader } from '@ipld/car/reader'
import { CarBlockIterator } from '@ipld/car/iterator'
import type { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { equals } from 'multiformats/bytes'
import { FileMount } from '../src/storage/mount/file.js'
import { createGateway, type Gateway } from '../src/app/server/gateway.js'
import type { DAGStore } from '../src/engine/store.js'
import { tempDir, unknownCid } from './helpers/fixtures.js'
import { listen, serveGateway } from './helpers/gateway.js'
import { openStore, until } from './helpers/store.js'
import { buildFixture, expectedCar, readRange, type Expect, type Fixture } from './helpers/dag-oracle.js'
import { writerCar, type Block } from './helpers/car-gen.js'
import { call } from './helpers/net.js'

interface Ctx {
  fx: Fixture
  store: DAGStore
  gateway: Gateway
  base: string
  /** Shard index (0..2) of each block, by CID string. */
  shardOf: Map<string, number>
  close: () => Promise<void>
}

const SHARDS = 3

async function carOf (body: Uint8Array): Promise<{ roots: string[], blocks: Block[] }> {
  const reader = await CarReader.fromBytes(body)
  const blocks: Block[] = []
  for await (const b of reader.blocks()) blocks.push(b)
  return { roots: (await reader.getRoots()).map(String), blocks }
}

async function assertVerified (blocks: Block[], what: string): Promise<void> {
  for (const { cid, bytes } of blocks) {
    assert.is(cid.multihash.code, sha256.code, `${what}: no identity block in a CAR`)
    assert.ok(equals((await sha256.digest(bytes)).bytes, cid.multihash.bytes), `${what}: ${cid.toString()} hashes to its CID`)
  }
}

const test = suite<Ctx>('gateway DAG CARs')

test.before(async (ctx) => {
  ctx.fx = await buildFixture()
  const { dir, cleanup } = await tempDir()
  const { store } = await openStore(dir)
  // Round robin over the blocks, so one DAG's blocks sit in every shard.
  const parts: Block[][] = Array.from({ length: SHARDS }, () => [])
  ctx.shardOf = new Map()
  let i = 0
  for (const block of ctx.fx.blocks.map.values()) {
    const n = i++ % SHARDS
    parts[n]?.push(block)
    ctx.shardOf.set(block.cid.toString(), n)
  }
  for (const [n, blocks] of parts.entries()) {
    const path = join(dir, `part-${n}.car`)
    await writeFile(path, await writerCar(blocks))
    await store.register(`part-${n}`, new FileMount(path))
  }
  ctx.store = store
  ctx.gateway = createGateway(store)
  const srv = await listen((req, res) => { serveGateway(ctx.gateway, req, res) })
  ctx.base = srv.base
  ctx.close = async () => {
    await srv.close()
    await ctx.gateway.close()
    await store.close()
    await cleanup()
  }
})
test.after(async (ctx) => { await ctx.close() })

/** Asks for /ipfs/{root}/{path}?format=car&{query} and checks the CAR against the oracle. */
async function check (ctx: Ctx, root: CID, path: string, query: string, expect: Expect): Promise<Block[]> {
  const url = `/ipfs/${root.toString()}${path === '' ? '' : '/' + path}?format=car${query === '' ? '' : '&' + query}`
  const r = await call(ctx.base + url)
  assert.is(r.status, 200, url)
  assert.is(r.error, undefined, url)
  assert.is(r.headers['content-type'], `application/vnd.ipld.car; version=1; order=dfs; dups=${expect.dups === true ? 'y' : 'n'}`, url)
  const car = await carOf(r.body)
  assert.equal(car.roots, [root.toString()], url)
  await assertVerified(car.blocks, url)
  const segments = path === '' ? [] : path.split('/').map(decodeURIComponent)
  assert.equal(car.blocks.map((b) => b.cid.toString()), expectedCar(ctx.fx.blocks, root, segments, expect), url)
  return car.blocks
}

test('a UnixFS file: every scope, both dups, in dfs order; entity is the whole file', async (ctx) => {
  const { cid } = ctx.fx.file
  const all = await check(ctx, cid, '', '', { scope: 'all' })
  assert.ok(all.length > 10, 'a multi-level file')
  await check(ctx, cid, '', 'dag-scope=all', { scope: 'all' })
  await check(ctx, cid, '', 'dag-scope=entity', { scope: 'entity' })
  await check(ctx, cid, '', 'dag-scope=block', { scope: 'block' })
  const dups = await check(ctx, cid, '', 'dag-scope=all&car-dups=y', { scope: 'all', dups: true })
  assert.ok(dups.length > all.length, 'the file repeats leaves: dups=y sends them again')
  assert.is(new Set(dups.map((b) => b.cid.toString())).size, all.length)
})

test('entity-bytes: only the blocks covering the range, which rebuild exactly those bytes', async (ctx) => {
  const { cid, bytes } = ctx.fx.file
  const size = bytes.length
  // [asked, resolved range or undefined when the answer is the root block alone]
  const cases: Array<[string, [number, number] | undefined]> = [
    ['0:*', [0, size - 1]],
    ['0:0', [0, 0]],
    ['1000:5000', [1000, 5000]],
    ['-3000:*', [size - 3000, size - 1]],
    ['2000:-10000', [2000, size - 10000]],
    [`${size - 1}:*`, [size - 1, size - 1]],
    ['-100000:100', [0, 100]],
    ['0:-1', [0, size - 1]],
    ['30000:1000000', [30000, size - 1]],
    [`${size}:*`, undefined],
    ['-10:-20', undefined]
  ]
  for (const [asked, range] of cases) {
    const blocks = await check(ctx, cid, '', `entity-bytes=${asked}`, range === undefined ? { scope: 'block' } : { scope: 'entity', bytes: range })
    if (range === undefined) continue
    const got = new Map(blocks.map((b) => [b.cid.toString(), b.bytes]))
    assert.ok(Buffer.from(readRange(got, cid, range[0], range[1])).equals(bytes.subarray(range[0], range[1] + 1)), asked)
  }
  const small = await check(ctx, cid, '', 'entity-bytes=1000:1100', { scope: 'entity', bytes: [1000, 1100] })
  assert.ok(small.length < 6, 'a small range is a few blocks, not the file')
  await check(ctx, cid, '', 'entity-bytes=1000:20000&car-dups=y', { scope: 'entity', bytes: [1000, 20000], dups: true })
})

test('directories and paths: entries by name, the path\'s blocks first; entity of a directory is its block', async (ctx) => {
  const { dir, file } = ctx.fx
  for (const scope of ['all', 'entity', 'block'] as const) {
    await check(ctx, dir, '', `dag-scope=${scope}`, { scope })
    await check(ctx, dir, 'sub', `dag-scope=${scope}`, { scope })
    await check(ctx, dir, 'sub/big.bin', `dag-scope=${scope}`, { scope })
    await check(ctx, dir, 'a.txt', `dag-scope=${scope}`, { scope })
    await check(ctx, dir, 'sub/empty', `dag-scope=${scope}`, { scope })
  }
  const last: [number, number] = [file.bytes.length - 2000, file.bytes.length - 1]
  const ranged = await check(ctx, dir, 'sub/big.bin', 'entity-bytes=-2000:*', { scope: 'entity', bytes: last })
  const tail = readRange(new Map(ranged.map((b) => [b.cid.toString(), b.bytes])), file.cid, file.bytes.length - 2000, file.bytes.length - 1)
  assert.ok(Buffer.from(tail).equals(file.bytes.subarray(file.bytes.length - 2000)))
  // entity-bytes of a directory is ignored (entity).
  await check(ctx, dir, 'sub', 'entity-bytes=0:10', { scope: 'entity' })
  const r = await call(ctx.base + `/ipfs/${dir.toString()}/sub/big.bin?format=car&dag-scope=block`)
  assert.is(r.headers['x-ipfs-roots'], (await carOf(r.body)).blocks.map((b) => b.cid.toString()).join(','))
})

test('a HAMT-sharded directory: every name resolves through the shards on its hash path; entity is the shards', async (ctx) => {
  const { hamt, hamtNames } = ctx.fx
  const shards = await check(ctx, hamt, '', 'dag-scope=entity', { scope: 'entity' })
  assert.ok(shards.length > 1, 'the HAMT has sub-shards')
  await check(ctx, hamt, '', 'dag-scope=all', { scope: 'all' })
  await check(ctx, hamt, '', 'dag-scope=block', { scope: 'block' })
  for (const name of hamtNames) {
    const blocks = await check(ctx, hamt, name, 'dag-scope=block', { scope: 'block' })
    assert.equal(Buffer.from(blocks.at(-1)?.bytes ?? []).toString(), name)
    // The raw block at the end of a path.
    const raw = await call(ctx.base + `/ipfs/${hamt.toString()}/${name}?format=raw`)
    assert.is(raw.status, 200)
    assert.is(raw.body.toString(), name)
  }
  const missing = await call(ctx.base + `/ipfs/${hamt.toString()}/no-such-entry?format=car`)
  assert.is(missing.status, 404)
})

test('dag-cbor / dag-json: shared subtrees once (dups=n) or every time (dups=y); paths through fields, lists and identity CIDs', async (ctx) => {
  const { cbor } = ctx.fx
  const all = await check(ctx, cbor, '', '', { scope: 'all' })
  const dups = await check(ctx, cbor, '', 'car-dups=y', { scope: 'all', dups: true })
  assert.ok(dups.length > all.length)
  await check(ctx, cbor, '', 'dag-scope=entity', { scope: 'entity' })
  const paths = ['children/1', 'children/0/next', 'meta/file', 'meta/json', 'meta/json/link', 'meta/deep/list/0', 'meta/deep', 'inline/link', 'name']
  for (const path of paths) {
    for (const scope of ['all', 'entity', 'block'] as const) await check(ctx, cbor, path, `dag-scope=${scope}`, { scope })
  }
  for (const path of ['nope', 'children/2', 'children/x', 'name/deeper', 'meta/file/not-a-dir']) {
    const r = await call(ctx.base + `/ipfs/${cbor.toString()}/${path}?format=car`)
    assert.is(r.status, 404, path)
  }
})

test('HEAD of a DAG CAR: the headers, no body, no walk; a missing root is 404 before any byte', async (ctx) => {
  const head = await call(ctx.base + `/ipfs/${ctx.fx.dir.toString()}/sub?format=car`, 'HEAD')
  assert.is(head.status, 200)
  assert.is(head.body.length, 0)
  assert.is(head.headers['content-type'], 'application/vnd.ipld.car; version=1; order=dfs; dups=n')
  const get = await call(ctx.base + `/ipfs/${ctx.fx.dir.toString()}/sub?format=car`)
  assert.is(head.headers.etag, get.headers.etag)
  const etags = new Set<string>()
  for (const q of ['', '&dag-scope=entity', '&dag-scope=block', '&car-dups=y', '&entity-bytes=0:9']) {
    etags.add(String((await call(ctx.base + `/ipfs/${ctx.fx.file.cid.toString()}?format=car${q}`, 'HEAD')).headers.etag))
  }
  etags.add(String((await call(ctx.base + `/ipfs/${ctx.fx.dir.toString()}/sub/big.bin?format=car`, 'HEAD')).headers.etag))
  assert.is(etags.size, 6, 'one ETag per scope, dups, range and path')
  const missing = await call(ctx.base + `/ipfs/${unknownCid.toString()}?format=car&dag-scope=all`)
  assert.is(missing.status, 404)
  assert.is(JSON.parse(missing.body.toString()).error.code, 'ERR_NOT_FOUND')
})

test('a block missing mid-stream: 200, the blocks before it, then the response is cut (the client sees an error)', async (ctx) => {
  const { file } = ctx.fx
  const expected = expectedCar(ctx.fx.blocks, file.cid, [], { scope: 'all' })
  const rootShard = ctx.shardOf.get(file.cid.toString()) ?? 0
  const gone = (rootShard + 1) % SHARDS
  const firstMissing = expected.findIndex((c) => ctx.shardOf.get(c) === gone)
  assert.ok(firstMissing > 0, 'the DAG has a block in the shard destroyed below')
  await ctx.gateway.evict(`part-${gone}`)
  await ctx.store.destroy(`part-${gone}`)
  const r = await call(ctx.base + `/ipfs/${file.cid.toString()}?format=car`)
  assert.is(r.status, 200)
  assert.ok(r.error !== undefined, 'the response is cut, not ended')
  // What arrived is the CAR up to the missing block: its whole sections, then nothing.
  const got: string[] = []
  let truncated = false
  try {
    for await (const b of await CarBlockIterator.fromBytes(r.body)) got.push(b.cid.toString())
  } catch {
    truncated = true
  }
  assert.equal(got, expected.slice(0, firstMissing))
  assert.not.ok(truncated, 'the stream is cut between two blocks')
  // The root's shard is still there: the gateway keeps serving.
  await until(() => ctx.store.getShardInfo(`part-${rootShard}`).refs <= 1, 'no lease left behind')
})

test.run()
