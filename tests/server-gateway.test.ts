// The trustless-gateway block routes (src/app/server/gateway.ts) on a real node:http server over a
// real store: sample-v1.car (dag-cbor/blake2b blocks, identity blocks) and a generated CAR
// (sha2-256 dag-pb, raw, dag-cbor, sha2-512, an empty block), both through FileMount.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { request, type IncomingHttpHeaders } from 'node:http'
import { writeFile, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { CarReader } from '@ipld/car/reader'
import { CID } from 'multiformats/cid'
import { base36 } from 'multiformats/bases/base36'
import { base16 } from 'multiformats/bases/base16'
import type { Registry } from 'prom-client'
import { FileMount } from '../src/storage/mount/file.js'
import { createGateway, type Gateway } from '../src/app/server/gateway.js'
import type { DAGStore } from '../src/engine/store.js'
import { carBlocks, unknownCid } from './helpers/fixtures.js'
import { blockRequests, gatewayFixture, listen, serveGateway } from './helpers/gateway.js'
import { encodeCar, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { until } from './helpers/store.js'
import { u8 } from './helpers/file-reader.js'
import { at } from './helpers/assert.js'

interface Ctx {
  dir: string
  store: DAGStore
  gateway: Gateway
  registry: Registry
  base: string
  close: () => Promise<void>
}

interface Reply { status: number, headers: IncomingHttpHeaders, body: Buffer }

const IMMUTABLE = 'public, max-age=29030400, immutable'
const CAR_BLOCK = 'application/vnd.ipld.car; version=1; order=dfs; dups=n'

/** The generated shard's blocks: sha2-256 dag-pb (has a CIDv0 twin), raw, dag-cbor, sha2-512, empty, identity. */
function generatedBlocks (): Block[] {
  return [
    makeBlock('pb', patterned(300, 1)),
    makeBlock('raw', patterned(1000, 2)),
    makeBlock('cbor', patterned(50, 3)),
    makeBlock('sha512', patterned(700, 4)),
    makeBlock('raw', new Uint8Array(0)),
    makeBlock('identity', patterned(10, 6))
  ]
}

/** node:http, not fetch: fetch always sends an Accept header, and some tests need none. */
async function call (base: string, path: string, options: { method?: string, headers?: Record<string, string> } = {}): Promise<Reply> {
  return await new Promise<Reply>((resolve, reject) => {
    const req = request(base + path, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function errorCode (r: Reply): string {
  assert.is(r.headers['content-type'], 'application/json; charset=utf-8')
  return (JSON.parse(r.body.toString('utf8')) as { error: { code: string } }).error.code
}

async function carOf (body: Uint8Array): Promise<{ roots: CID[], blocks: Array<{ cid: CID, bytes: Uint8Array }> }> {
  const reader = await CarReader.fromBytes(body)
  const blocks = []
  for await (const b of reader.blocks()) blocks.push(b)
  return { roots: await reader.getRoots(), blocks }
}

const test = suite<Ctx>('server gateway')

test.before.each(async (ctx) => {
  const f = await gatewayFixture(generatedBlocks())
  ctx.dir = f.dir
  ctx.store = f.store
  ctx.registry = f.registry
  ctx.gateway = f.gateway
  const srv = await listen((req, res) => { serveGateway(f.gateway, req, res) })
  ctx.base = srv.base
  ctx.close = async () => {
    await srv.close()
    await f.close()
  }
})
test.after.each(async (ctx) => { await ctx.close() })

test('raw blocks: bytes equal the CAR\'s, headers per the spec, for several CIDs and codecs', async (ctx) => {
  const sample = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const picks = [at(sample, 0), at(sample, 1), at(sample, 500), at(sample, sample.length - 1), ...generatedBlocks().slice(0, 5)]
  for (const { cid, bytes } of picks) {
    const r = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`)
    assert.is(r.status, 200, cid.toString())
    assert.equal(u8(r.body), u8(bytes), cid.toString())
    assert.is(r.headers['content-type'], 'application/vnd.ipld.raw')
    assert.is(r.headers['content-length'], String(bytes.length))
    assert.is(r.headers.etag, `"${cid.toString()}.raw"`)
    assert.is(r.headers['cache-control'], IMMUTABLE)
    assert.is(r.headers['x-content-type-options'], 'nosniff')
    assert.is(r.headers['content-disposition'], `attachment; filename="${cid.toString()}.bin"`)
    assert.is(r.headers.vary, 'Accept')
    assert.is(r.headers['x-ipfs-path'], `/ipfs/${cid.toString()}`)
    assert.is(r.headers['x-ipfs-roots'], cid.toString())
    assert.is(r.headers['content-location'], undefined, 'the URL already names the format')
  }
  // By Accept alone: the same bytes, and Content-Location names the URL with the format.
  const { cid, bytes } = at(sample, 7)
  const r = await call(ctx.base, `/ipfs/${cid.toString()}`, { headers: { accept: 'application/vnd.ipld.raw' } })
  assert.is(r.status, 200)
  assert.equal(u8(r.body), u8(bytes))
  assert.is(r.headers['content-location'], `/ipfs/${cid.toString()}?format=raw`)
  const withQuery = await call(ctx.base, `/ipfs/${cid.toString()}?filename=x.bin`, { headers: { accept: 'application/vnd.ipld.raw' } })
  assert.is(withQuery.headers['content-location'], `/ipfs/${cid.toString()}?filename=x.bin&format=raw`)
  assert.is(withQuery.headers['content-disposition'], 'attachment; filename="x.bin"')
})

test('CAR responses: a CARv1 with roots [cid] holding exactly that block; headers; format vs Accept', async (ctx) => {
  const sample = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const gen = generatedBlocks()
  const asked: Array<[Block, string, Record<string, string>]> = [
    [at(sample, 0), '?format=car&dag-scope=block', {}],
    [at(sample, 300), '?dag-scope=block', { accept: 'application/vnd.ipld.car' }],
    [at(sample, 1042), '?format=car&dag-scope=entity', {}], // entity is block for non-UnixFS data
    [at(gen, 1), '?format=car', {}], // a raw-codec block has no links: dag-scope=all is the block
    [at(gen, 0), '?format=car&dag-scope=block', {}],
    [at(gen, 4), '?format=car', {}]
  ]
  for (const [{ cid, bytes }, query, headers] of asked) {
    const r = await call(ctx.base, `/ipfs/${cid.toString()}${query}`, { headers })
    assert.is(r.status, 200, `${cid.toString()}${query}`)
    const car = await carOf(r.body)
    assert.equal(car.roots.map(String), [cid.toString()])
    assert.is(car.blocks.length, 1)
    assert.is(at(car.blocks, 0).cid.toString(), cid.toString())
    assert.equal(u8(at(car.blocks, 0).bytes), u8(bytes))
    assert.is(r.headers['content-type'], CAR_BLOCK)
    assert.is(r.headers['content-length'], String(r.body.length))
    assert.is(r.headers['cache-control'], IMMUTABLE)
    assert.is(r.headers['x-content-type-options'], 'nosniff')
    assert.is(r.headers['content-disposition'], `attachment; filename="${cid.toString()}.car"`)
    assert.match(r.headers.etag ?? '', new RegExp(`^"${cid.toString()}\\.car\\.`))
    assert.is(r.headers['content-location'] !== undefined, headers.accept !== undefined)
  }
  // The scope is part of the ETag; so are dups and entity-bytes.
  const cid = at(sample, 0).cid.toString()
  const etag = async (q: string, h: Record<string, string> = {}): Promise<string> =>
    (await call(ctx.base, `/ipfs/${cid}${q}`, { headers: h })).headers.etag ?? ''
  const block = await etag('?format=car&dag-scope=block')
  const entity = await etag('?format=car&dag-scope=entity')
  const bytes = await etag('?format=car&entity-bytes=0:*')
  const dupsY = await etag('?format=car&dag-scope=block&car-dups=y')
  assert.is(new Set([block, entity, bytes, dupsY]).size, 4)
  // dups=y asked (Accept or car-dups): a one-block CAR honours it and says so.
  const y = await call(ctx.base, `/ipfs/${cid}?dag-scope=block`, { headers: { accept: 'application/vnd.ipld.car; version=1; order=dfs; dups=y' } })
  assert.is(y.status, 200)
  assert.is(y.headers['content-type'], 'application/vnd.ipld.car; version=1; order=dfs; dups=y')
  const unk = await call(ctx.base, `/ipfs/${cid}?format=car&dag-scope=block&car-order=unk`)
  assert.is(unk.headers['content-type'], CAR_BLOCK, 'order=unk is satisfied by dfs')
  // format wins over Accept.
  const fmt = await call(ctx.base, `/ipfs/${cid}?format=raw`, { headers: { accept: 'application/vnd.ipld.car' } })
  assert.is(fmt.headers['content-type'], 'application/vnd.ipld.raw')
  // q-values: CAR preferred over raw.
  const accept = 'application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car;q=0.9'
  const pref = await call(ctx.base, `/ipfs/${cid}?dag-scope=block`, { headers: { accept } })
  assert.is(pref.headers['content-type'], CAR_BLOCK)
  const tie = await call(ctx.base, `/ipfs/${cid}?dag-scope=block`, { headers: { accept: 'application/vnd.ipld.car, application/vnd.ipld.raw' } })
  assert.is(tie.headers['content-type'], CAR_BLOCK, 'a tie goes to the range listed first')
})

test('HEAD: the GET\'s headers, Content-Length included, and no body; 404 for an unknown CID', async (ctx) => {
  const { cid } = at(await carBlocks('sample-v1.car'), 10)
  for (const q of ['?format=raw', '?format=car&dag-scope=block']) {
    const get = await call(ctx.base, `/ipfs/${cid.toString()}${q}`)
    const head = await call(ctx.base, `/ipfs/${cid.toString()}${q}`, { method: 'HEAD' })
    assert.is(head.status, 200)
    assert.is(head.body.length, 0)
    const headers = [
      'content-type', 'content-length', 'etag', 'cache-control', 'x-content-type-options', 'content-disposition', 'vary', 'x-ipfs-roots'
    ]
    for (const h of headers) {
      assert.is(head.headers[h], get.headers[h], `${q} ${h}`)
    }
    assert.is(Number(head.headers['content-length']), get.body.length)
  }
  const missing = await call(ctx.base, `/ipfs/${unknownCid.toString()}?format=raw`, { method: 'HEAD' })
  assert.is(missing.status, 404)
  assert.is(missing.body.length, 0)
})

test('If-None-Match with the ETag (weak, in a list, or *) → 304 without a body; another ETag → 200', async (ctx) => {
  const { cid } = at(await carBlocks('sample-v1.car'), 20)
  const path = `/ipfs/${cid.toString()}?format=raw`
  const etag = (await call(ctx.base, path)).headers.etag as string
  for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const r = await call(ctx.base, path, { headers: { 'if-none-match': inm } })
    assert.is(r.status, 304, inm)
    assert.is(r.body.length, 0)
    assert.is(r.headers.etag, etag)
    assert.is(r.headers['cache-control'], IMMUTABLE)
  }
  assert.is((await call(ctx.base, path, { headers: { 'if-none-match': '"something-else"' } })).status, 200)
  // The raw ETag does not match the CAR response.
  assert.is((await call(ctx.base, `/ipfs/${cid.toString()}?format=car&dag-scope=block`, { headers: { 'if-none-match': etag } })).status, 200)
  const carEtag = (await call(ctx.base, `/ipfs/${cid.toString()}?format=car&dag-scope=block`)).headers.etag as string
  assert.is((await call(ctx.base, `/ipfs/${cid.toString()}?format=car&dag-scope=block`, { headers: { 'if-none-match': carEtag } })).status, 304)
  // A block nobody has is 404 whatever the client claims to hold.
  const missing = await call(ctx.base, `/ipfs/${unknownCid.toString()}?format=raw`,
    { headers: { 'if-none-match': `"${unknownCid.toString()}.raw"` } })
  assert.is(missing.status, 404)
})

test('400 for invalid CIDs, 404 for unknown ones (raw, car, any multibase)', async (ctx) => {
  const invalid = [
    '/ipfs/not-a-cid?format=raw', '/ipfs/?format=raw', '/ipfs?format=raw', '/ipfs/bafy?format=car', '/ipfs/QmShort?format=raw', '/ipfs/%ZZ?format=raw'
  ]
  for (const path of invalid) {
    const r = await call(ctx.base, path)
    assert.is(r.status, 400, path)
    assert.is(errorCode(r), 'ERR_INVALID_CID', path)
    assert.is(r.headers['cache-control'], 'no-store')
  }
  for (const q of ['?format=raw', '?format=car&dag-scope=block']) {
    const r = await call(ctx.base, `/ipfs/${unknownCid.toString()}${q}`)
    assert.is(r.status, 404, q)
    assert.is(errorCode(r), 'ERR_NOT_FOUND')
  }
  // The same CID in base36 and base16 is the same block; the canonical form is reported.
  const { cid, bytes } = at(await carBlocks('sample-v1.car'), 30)
  for (const text of [cid.toString(base36), cid.toString(base16)]) {
    const r = await call(ctx.base, `/ipfs/${text}?format=raw`)
    assert.is(r.status, 200, text)
    assert.equal(u8(r.body), u8(bytes))
    assert.is(r.headers['x-ipfs-roots'], cid.toString())
    assert.is(r.headers['x-ipfs-path'], `/ipfs/${text}`)
  }
})

test('406 for formats and Accept values nothing here serves; 400 without any Accept or format', async (ctx) => {
  const cid = at(await carBlocks('sample-v1.car'), 0).cid.toString()
  const refused: Array<[string, Record<string, string>]> = [
    ['?format=dag-json', {}],
    ['?format=tar', {}],
    ['?format=ipns-record', {}],
    ['?format=json', { accept: 'application/vnd.ipld.raw' }],
    ['', { accept: 'text/html' }],
    ['', { accept: 'application/json, text/plain;q=0.5' }],
    ['', { accept: 'application/vnd.ipld.car; version=2' }],
    ['', { accept: 'application/vnd.ipld.car; order=foo' }],
    ['', { accept: 'application/vnd.ipld.raw;q=0, */*' }],
    ['?format=car&car-version=2', {}],
    ['?format=car&car-dups=maybe', {}],
    ['?format=car', { accept: 'application/vnd.ipld.car; version=2' }]
  ]
  for (const [q, headers] of refused) {
    const r = await call(ctx.base, `/ipfs/${cid}${q}`, { headers })
    assert.is(r.status, 406, `${q} ${JSON.stringify(headers)}`)
    assert.is(errorCode(r), 'ERR_NOT_ACCEPTABLE')
    assert.is(r.headers.vary, 'Accept')
  }
  const none = await call(ctx.base, `/ipfs/${cid}`)
  assert.is(none.status, 400)
  assert.is(errorCode(none), 'ERR_FORMAT_REQUIRED')
  // A wildcard accepts the raw block (RFC 9110); so does a browser's Accept.
  for (const accept of ['*/*', 'application/*', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8']) {
    const r = await call(ctx.base, `/ipfs/${cid}`, { headers: { accept } })
    assert.is(r.status, 200, accept)
    assert.is(r.headers['content-type'], 'application/vnd.ipld.raw')
    assert.is(r.headers['content-location'], `/ipfs/${cid}?format=raw`)
  }
})

test('identity CIDs are answered from the CID: raw is the digest, a CAR has roots [cid] and no block', async (ctx) => {
  const identity = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code === 0)
  const probe = CID.parse('bafkqaaa')
  for (const { cid, bytes } of [...identity.slice(0, 2), at(generatedBlocks(), 5), { cid: probe, bytes: new Uint8Array(0) }]) {
    const r = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`)
    assert.is(r.status, 200)
    assert.equal(u8(r.body), u8(bytes))
    assert.is(r.headers['content-length'], String(bytes.length))
    const c = await call(ctx.base, `/ipfs/${cid.toString()}?format=car&dag-scope=block`)
    assert.is(c.status, 200)
    const car = await carOf(c.body)
    assert.equal(car.roots.map(String), [cid.toString()])
    assert.is(car.blocks.length, 0, 'identity blocks are never sent in a CAR')
    const head = await call(ctx.base, `/ipfs/${cid.toString()}?format=car&dag-scope=block`, { method: 'HEAD' })
    assert.is(head.headers['content-length'], String(c.body.length))
  }
  // The probe path, as clients send it (raw codec: dag-scope=all is the block).
  const p = await call(ctx.base, '/ipfs/bafkqaaa?format=car', { headers: { accept: 'application/vnd.ipld.car' } })
  assert.is(p.status, 200)
  assert.equal((await carOf(p.body)).roots.map(String), ['bafkqaaa'])
})

test('CIDv0 and CIDv1 of the same multihash serve the same bytes; the CAR carries the CID asked for', async (ctx) => {
  const pb = at(generatedBlocks(), 0)
  const v0 = CID.createV0(pb.cid.multihash as Parameters<typeof CID.createV0>[0])
  const rawV1 = CID.createV1(0x55, pb.cid.multihash)
  const etags = new Set<string>()
  for (const cid of [pb.cid, v0, rawV1]) {
    const r = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`)
    assert.is(r.status, 200, cid.toString())
    assert.equal(u8(r.body), u8(pb.bytes))
    etags.add(r.headers.etag as string)
    const c = await call(ctx.base, `/ipfs/${cid.toString()}?format=car&dag-scope=block`)
    const car = await carOf(c.body)
    assert.equal(car.roots.map(String), [cid.toString()])
    assert.is(at(car.blocks, 0).cid.toString(), cid.toString())
    assert.equal(u8(at(car.blocks, 0).bytes), u8(pb.bytes))
  }
  assert.is(etags.size, 3, 'one ETag per CID asked for')
  assert.is((await call(ctx.base, `/ipfs/${v0.toString()}?format=raw`)).headers['x-ipfs-roots'], v0.toString())
})

test('paths after the CID: resolved for raw and CAR alike; a name the DAG lacks is 404; a trailing slash is no path', async (ctx) => {
  const { cid, bytes } = at(await carBlocks('sample-v1.car'), 40)
  const raw = await call(ctx.base, `/ipfs/${cid.toString()}/foo?format=raw`)
  assert.is(raw.status, 404)
  assert.is(errorCode(raw), 'ERR_PATH_NOT_FOUND')
  const car = await call(ctx.base, `/ipfs/${cid.toString()}/foo/bar?format=car&dag-scope=block`)
  assert.is(car.status, 404)
  assert.is(errorCode(car), 'ERR_PATH_NOT_FOUND')
  const badEscape = await call(ctx.base, `/ipfs/${cid.toString()}/%E0%A4%A?format=car`)
  assert.is(badEscape.status, 400)
  assert.is(errorCode(badEscape), 'ERR_INVALID_PATH')
  const slash = await call(ctx.base, `/ipfs/${cid.toString()}/?format=raw`)
  assert.is(slash.status, 200)
  assert.equal(u8(slash.body), u8(bytes))
})

test('dag-scope: none means all (spec default); entity of non-dag-pb is the block; a block that does not decode → 500; bad scope or entity-bytes → 400', async (ctx) => {
  const cbor = at(await carBlocks('sample-v1.car'), 0).cid.toString() // dag-cbor
  const pb = at(generatedBlocks(), 0).cid.toString() // labelled dag-pb, random bytes
  const raw = at(generatedBlocks(), 1).cid.toString()
  const cases: Array<[string, number, string?]> = [
    [`/ipfs/${cbor}?format=car`, 200], // no dag-scope: the whole DAG
    [`/ipfs/${cbor}?format=car&dag-scope=all`, 200],
    [`/ipfs/${cbor}?format=car&dag-scope=entity`, 200],
    [`/ipfs/${pb}?format=car&dag-scope=entity`, 500, 'ERR_BLOCK_UNDECODABLE'],
    [`/ipfs/${pb}?format=car&entity-bytes=0:100`, 500, 'ERR_BLOCK_UNDECODABLE'],
    [`/ipfs/${pb}?format=car&dag-scope=block`, 200],
    [`/ipfs/${raw}?format=car&dag-scope=all`, 200],
    [`/ipfs/${raw}?format=car&entity-bytes=-10:*`, 200],
    [`/ipfs/${raw}?format=car&dag-scope=everything`, 400, 'ERR_INVALID_REQUEST'],
    [`/ipfs/${raw}?format=car&entity-bytes=10`, 400, 'ERR_INVALID_REQUEST'],
    [`/ipfs/${raw}?format=car&entity-bytes=20:10`, 400, 'ERR_INVALID_REQUEST'],
    [`/ipfs/${raw}?format=raw&dag-scope=everything`, 200] // scope is for CAR requests only
  ]
  for (const [path, status, code] of cases) {
    const r = await call(ctx.base, path)
    assert.is(r.status, status, path)
    if (code !== undefined) assert.is(errorCode(r), code, path)
  }
  // The whole sample DAG: every block once (its identity blocks never), the root first.
  const all = await carOf((await call(ctx.base, `/ipfs/${cbor}?format=car`)).body)
  const sample = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  assert.is(at(all.blocks, 0).cid.toString(), cbor)
  assert.equal(new Set(all.blocks.map((b) => b.cid.toString())), new Set(sample.map((b) => b.cid.toString())))
  assert.is(all.blocks.length, new Set(sample.map((b) => b.cid.toString())).size)
})

test('only-if-cached: 412 for a block no shard has, served otherwise; methods: 405 with Allow, OPTIONS 204', async (ctx) => {
  const { cid } = at(await carBlocks('sample-v1.car'), 50)
  const miss = await call(ctx.base, `/ipfs/${unknownCid.toString()}?format=raw`, { headers: { 'cache-control': 'only-if-cached' } })
  assert.is(miss.status, 412)
  assert.is(errorCode(miss), 'ERR_NOT_CACHED')
  const headMiss = await call(ctx.base, `/ipfs/${unknownCid.toString()}?format=raw`,
    { method: 'HEAD', headers: { 'cache-control': 'only-if-cached' } })
  assert.is(headMiss.status, 412)
  const hit = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`, { headers: { 'cache-control': 'only-if-cached' } })
  assert.is(hit.status, 200)
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const r = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`, { method })
    assert.is(r.status, 405, method)
    assert.is(r.headers.allow, 'GET, HEAD, OPTIONS')
  }
  const options = await call(ctx.base, `/ipfs/${cid.toString()}`, { method: 'OPTIONS' })
  assert.is(options.status, 204)
  assert.is(options.headers.allow, 'GET, HEAD, OPTIONS')
})

test('CORS on gateway routes: any origin reads, errors included; a preflight names methods and headers', async (ctx) => {
  const { cid } = at(await carBlocks('sample-v1.car'), 50)
  const hit = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`, { headers: { origin: 'https://example.org' } })
  assert.is(hit.status, 200)
  assert.is(hit.headers['access-control-allow-origin'], '*')
  assert.match(String(hit.headers['access-control-expose-headers']), /ETag/)
  const miss = await call(ctx.base, `/ipfs/${unknownCid.toString()}?format=raw`, { headers: { origin: 'https://example.org', 'cache-control': 'only-if-cached' } })
  assert.is(miss.status, 412)
  assert.is(miss.headers['access-control-allow-origin'], '*')
  const preflight = await call(ctx.base, `/ipfs/${cid.toString()}`, {
    method: 'OPTIONS', headers: { origin: 'https://example.org', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' }
  })
  assert.is(preflight.status, 204)
  assert.is(preflight.headers['access-control-allow-origin'], '*')
  assert.is(preflight.headers['access-control-allow-methods'], 'GET, HEAD, OPTIONS')
  assert.match(String(preflight.headers['access-control-allow-headers']), /Range/)
})

test('handle() declines every path outside /ipfs: the server\'s own fallback answers', async (ctx) => {
  for (const path of ['/', '/ipns/k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8', '/ipfsx/abc', '/metrics', '/api/v0/shards']) {
    const r = await call(ctx.base, path, { headers: { accept: 'application/vnd.ipld.raw' } })
    assert.is(r.status, 404, path)
    assert.is(r.body.toString(), 'fallback', path)
  }
})

test('metrics: dagstore_block_requests_total counts requests by status', async (ctx) => {
  const { cid } = at(await carBlocks('sample-v1.car'), 60)
  const ok = `/ipfs/${cid.toString()}?format=raw`
  await call(ctx.base, ok)
  await call(ctx.base, ok, { method: 'HEAD' })
  await call(ctx.base, `/ipfs/${cid.toString()}?format=car&dag-scope=block`)
  await call(ctx.base, `/ipfs/${unknownCid.toString()}?format=raw`)
  await call(ctx.base, '/ipfs/nope?format=raw')
  await call(ctx.base, `/ipfs/${cid.toString()}?format=tar`)
  const etag = (await call(ctx.base, ok)).headers.etag as string
  await call(ctx.base, ok, { headers: { 'if-none-match': etag } })
  await call(ctx.base, '/not-the-gateway')
  assert.equal(await blockRequests(ctx.registry), { 200: 4, 304: 1, 400: 1, 404: 1, 406: 1 })
  // A second gateway on the same registry shares the counter instead of failing to register.
  const again = createGateway(ctx.store, { registry: ctx.registry })
  await again.close()
  assert.equal(await blockRequests(ctx.registry), { 200: 4, 304: 1, 400: 1, 404: 1, 406: 1 })
  assert.ok((await ctx.registry.metrics()).includes('dagstore_block_requests_total{status="200"} 4'))
})

test('a shard whose bytes vanish: 500 ERR_BLOCK_UNAVAILABLE, not 404; the others keep serving', async (ctx) => {
  const blocks = [makeBlock('raw', patterned(400, 71)), makeBlock('raw', patterned(400, 72))]
  const path = join(ctx.dir, 'fragile.car')
  await writeFile(path, encodeCar(blocks).bytes)
  await ctx.store.register('fragile', new FileMount(path))
  assert.is((await call(ctx.base, `/ipfs/${at(blocks, 0).cid.toString()}?format=raw`)).status, 200)
  await truncate(path, 0)
  const r = await call(ctx.base, `/ipfs/${at(blocks, 1).cid.toString()}?format=raw`)
  assert.is(r.status, 500)
  assert.is(errorCode(r), 'ERR_BLOCK_UNAVAILABLE')
  const { cid, bytes } = at(await carBlocks('sample-v1.car'), 70)
  const other = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`)
  assert.equal(u8(other.body), u8(bytes))
})

test('close() releases the cached accessors; requests after it get 503', async (ctx) => {
  const { cid } = at(await carBlocks('sample-v1.car'), 80)
  assert.is((await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`)).status, 200)
  assert.is(ctx.store.getShardInfo('sample').refs, 1, 'the accessor stays cached between requests')
  await ctx.gateway.close()
  await until(() => ctx.store.getShardInfo('sample').refs === 0, 'the cached accessor to be released')
  const r = await call(ctx.base, `/ipfs/${cid.toString()}?format=raw`)
  assert.is(r.status, 503)
  assert.is(errorCode(r), 'ERR_UNAVAILABLE')
  await ctx.gateway.close() // idempotent
  assert.equal(await blockRequests(ctx.registry), { 200: 1, 503: 1 })
})

test.run()
