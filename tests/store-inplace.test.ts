// Remote shards read in place through the store (DESIGN §11): the copy policy, indexing without
// a copy, gets and streams served byte-identical from ranged reads, origins that change, restart,
// destroy during a read, GC and describeShard. Real origins on 127.0.0.1, real LevelDB in temp
// dirs; what the origin was asked for is the evidence.
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import * as assert from 'uvu/assert'
import { CID } from 'multiformats/cid'
import { CarBlockIterator } from '@ipld/car/iterator'
import { HttpMount } from '../src/storage/mount/http.js'
import { FileMount } from '../src/storage/mount/file.js'
import { MountRegistry } from '../src/storage/mount/registry.js'
import type { DAGStore } from '../src/engine/store.js'
import type { DAGStoreOptions } from '../src/engine/options.js'
import { codeOf } from './helpers/assert.js'
import { fixture } from './helpers/fixtures.js'
import { serve, type TestServer } from './helpers/http-server.js'
import { rangeOrigin, type Origin } from './helpers/range-origin.js'
import { dirSuite, openStore, until } from './helpers/store.js'
import { encodeCar, makeBlock, patterned } from './helpers/car-gen.js'

const test = dirSuite('store in place')
const sampleV1 = new Uint8Array(await readFile(fixture('sample-v1.car')))
const sampleV2 = new Uint8Array(await readFile(fixture('sample-wrapped-v2.car')))

/** Fast retries: the tests' origins fail on purpose. */
function mounts (): MountRegistry {
  const r = new MountRegistry({ builtins: false })
  r.register('http', (url) => new HttpMount(url, { backoffMs: 1, maxBackoffMs: 5, retries: 2 }))
  r.register('file', (url) => FileMount.fromURL(url))
  return r
}

async function origin (body: Uint8Array, extra: Partial<Origin> = {}): Promise<{ srv: TestServer, origin: Origin, url: string }> {
  const o: Origin = { body, etag: '"v1"', ranges: true, ...extra }
  const srv = await serve(rangeOrigin(o))
  return { srv, origin: o, url: `${srv.url}/shard.car` }
}

async function store (dir: string, options: Partial<DAGStoreOptions> = {}): Promise<DAGStore> {
  return (await openStore(dir, { mounts: mounts(), ...options })).store
}

async function blocksOf (car: Uint8Array): Promise<Array<{ cid: CID, bytes: Uint8Array }>> {
  const out = []
  for await (const b of await CarBlockIterator.fromBytes(car)) out.push({ cid: b.cid, bytes: b.bytes })
  return out
}

async function concat (chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const c of chunks) parts.push(c)
  return new Uint8Array(Buffer.concat(parts))
}

/** A CARv2 with an embedded index: 64 blocks of 64 KiB (4 MiB). */
function bigV2 (): { bytes: Uint8Array, blocks: Array<{ cid: CID, bytes: Uint8Array }> } {
  const blocks = Array.from({ length: 64 }, (_, i) => makeBlock('raw', patterned(64 * 1024, i + 1)))
  const car = encodeCar(blocks, { version: 2, index: true })
  return { bytes: car.bytes, blocks: blocks.map((b) => ({ cid: b.cid, bytes: b.bytes })) }
}

test('a CARv2 with an index is registered in place with 2 requests and under 1% of its bytes, then served byte-identical', async (ctx) => {
  const car = bigV2()
  const { srv, url } = await origin(car.bytes)
  const s = await store(ctx.dir)
  try {
    await s.register('v2', new HttpMount(url))
    assert.ok(srv.log.length <= 2, `register made ${srv.log.length} requests`)
    const sent = srv.log.reduce((n, e) => n + (e.range !== undefined ? rangeLength(e.range) : car.bytes.length), 0)
    assert.ok(sent < car.bytes.length / 100, `register fetched ${sent} of ${car.bytes.length} bytes`)
    const d = await s.describeShard('v2')
    assert.is(d.placement, 'in-place')
    assert.is(d.transient, undefined)
    assert.equal(await readdir(join(ctx.dir, 'transients')), [])
    const acc = await s.acquire('v2')
    for (const b of car.blocks) assert.equal(await acc.blockstore().get(b.cid), b.bytes)
    assert.equal(await concat(acc.reader()), car.bytes)
    await acc.close()
  } finally {
    await s.close()
    await srv.close()
  }
})

function rangeLength (range: string): number {
  const m = /^bytes=(\d+)-(\d+)$/.exec(range)
  return m === null ? 0 : Number(m[2]) - Number(m[1]) + 1
}

const CASES = [['sample-v1.car (CARv1, one streaming pass)', sampleV1], ['sample-wrapped-v2.car (CARv2, adopted index)', sampleV2]] as const
for (const [name, body] of CASES) {
  test(`every block of ${name} is served in place byte-identical; every get is one ranged read of its section`, async (ctx) => {
    const { srv, url } = await origin(body)
    const s = await store(ctx.dir)
    try {
      await s.register('k', new HttpMount(url))
      assert.is((await s.describeShard('k')).placement, 'in-place')
      const acc = await s.acquire('k')
      const bs = acc.blockstore()
      const blocks = await blocksOf(body)
      const before = srv.log.length
      for (const b of blocks) {
        if (b.cid.multihash.code === 0) continue
        assert.equal(await bs.get(b.cid), b.bytes, b.cid.toString())
      }
      // Each distinct block at most one request (duplicates and cached sections cost none).
      assert.ok(srv.log.length - before <= blocks.length, `${srv.log.length - before} requests for ${blocks.length} blocks`)
      assert.equal(await concat(acc.reader()), body)
      await acc.close()
    } finally {
      await s.close()
      await srv.close()
    }
  })
}

// These three read blocks no earlier read brought into the section cache: the CARv2's index is
// adopted, so registering it reads no block (a CARv1's indexing pass leaves its sections cached).
test('50 concurrent cold gets of one block make one request', async (ctx) => {
  const { srv, url } = await origin(sampleV2)
  const s = await store(ctx.dir)
  try {
    await s.register('k', new HttpMount(url))
    const blocks = await blocksOf(sampleV2)
    const target = blocks[500] as { cid: CID, bytes: Uint8Array }
    const accs = await Promise.all(Array.from({ length: 5 }, async () => await s.acquire('k')))
    const before = srv.log.length
    const got = await Promise.all(Array.from({ length: 50 }, async (_, i) => await (accs[i % 5]?.blockstore().get(target.cid))))
    for (const g of got) assert.equal(g, target.bytes)
    assert.is(srv.log.length - before, 1)
    await Promise.all(accs.map(async (a) => { await a.close() }))
  } finally {
    await s.close()
    await srv.close()
  }
})

test("copy 'auto' falls back to a transient when Range is ignored; 'never' fails with ERR_RANGE_NOT_SUPPORTED; 'always' copies", async (ctx) => {
  const ignoring = await origin(sampleV1, { ranges: false })
  const ranged = await origin(sampleV1)
  const s = await store(ctx.dir)
  try {
    await s.register('auto', new HttpMount(ignoring.url))
    assert.is((await s.describeShard('auto')).placement, 'copy')
    assert.is(await codeOf(s.register('never', new HttpMount(ignoring.url), { copy: 'never' })), 'ERR_SHARD_INITIALIZATION_FAILED')
    assert.is(codeOfError(s.getShardInfo('never').error), 'ERR_RANGE_NOT_SUPPORTED')
    await s.register('always', new HttpMount(ranged.url), { copy: 'always' })
    const d = await s.describeShard('always')
    assert.is(d.placement, 'copy')
    assert.is(d.copy, 'always')
    const acc = await s.acquire('always')
    assert.equal(await concat(acc.reader()), sampleV1)
    await acc.close()
  } finally {
    await s.close()
    await ignoring.srv.close()
    await ranged.srv.close()
  }
})

function codeOfError (err: Error | undefined): string | undefined {
  return (err as { code?: string } | undefined)?.code
}

test("the store's remote.copy applies unless a register overrides it, and the override survives a restart", async (ctx) => {
  const { srv, url } = await origin(sampleV1)
  let s = await store(ctx.dir, { remote: { copy: 'always' } })
  try {
    await s.register('copied', new HttpMount(url))
    await s.register('inplace', new HttpMount(url), { copy: 'auto', lazy: true })
    assert.is((await s.describeShard('copied')).placement, 'copy')
    await s.close()
    s = await store(ctx.dir, { remote: { copy: 'always' } })
    assert.is((await s.describeShard('inplace')).copy, 'auto')
    const acc = await s.acquire('inplace')
    assert.is((await s.describeShard('inplace')).placement, 'in-place')
    assert.equal(await concat(acc.reader()), sampleV1)
    await acc.close()
  } finally {
    await s.close()
    await srv.close()
  }
})

test('an origin whose ETag changes fails the shard with ERR_HTTP_CHANGED, never wrong bytes; recover re-learns it', async (ctx) => {
  const { srv, origin: o, url } = await origin(sampleV2)
  const s = await store(ctx.dir)
  try {
    await s.register('k', new HttpMount(url))
    const blocks = await blocksOf(sampleV2)
    o.etag = '"v2"'
    const acc = await s.acquire('k')
    const target = blocks[7] as { cid: CID, bytes: Uint8Array }
    assert.is(await codeOf(acc.blockstore().get(target.cid)), 'ERR_HTTP_CHANGED')
    await until(() => s.getShardInfo('k').state === 'errored', 'the shard to fail')
    assert.is(codeOfError(s.getShardInfo('k').error), 'ERR_HTTP_CHANGED')
    await acc.close()
    await s.recover('k')
    const again = await s.acquire('k')
    assert.equal(await again.blockstore().get(target.cid), target.bytes)
    await again.close()
  } finally {
    await s.close()
    await srv.close()
  }
})

test('an origin serving other bytes under the same ETag fails the shard with ERR_HASH_MISMATCH', async (ctx) => {
  const { srv, origin: o, url } = await origin(sampleV2)
  const s = await store(ctx.dir)
  try {
    await s.register('k', new HttpMount(url))
    const blocks = await blocksOf(sampleV2)
    const target = blocks[9] as { cid: CID, bytes: Uint8Array }
    // Same length and validator, one byte of the block's data flipped.
    const body = new Uint8Array(sampleV2)
    const at = Buffer.from(sampleV2).indexOf(Buffer.from(target.bytes))
    body[at + 10] = (body[at + 10] ?? 0) ^ 0xff
    o.body = body
    const acc = await s.acquire('k')
    assert.is(await codeOf(acc.blockstore().get(target.cid)), 'ERR_HASH_MISMATCH')
    await until(() => s.getShardInfo('k').state === 'errored', 'the shard to fail')
    await acc.close()
  } finally {
    await s.close()
    await srv.close()
  }
})

test('restart: an in-place shard stays in place (no transient, no download) and serves', async (ctx) => {
  const { srv, url } = await origin(sampleV1)
  let s = await store(ctx.dir)
  try {
    await s.register('k', new HttpMount(url))
    await s.close()
    s = await store(ctx.dir)
    assert.is(s.getShardInfo('k').state, 'available')
    const before = srv.log.length
    const acc = await s.acquire('k')
    const blocks = await blocksOf(sampleV1)
    const b = blocks[100] as { cid: CID, bytes: Uint8Array }
    assert.equal(await acc.blockstore().get(b.cid), b.bytes)
    await acc.close()
    // The probe (with the header) and the block: no whole-file GET.
    for (const e of srv.log.slice(before)) assert.ok(e.range !== undefined, 'every request after restart is ranged')
    assert.equal(await readdir(join(ctx.dir, 'transients')), [])
    assert.is((await s.describeShard('k')).placement, 'in-place')
  } finally {
    await s.close()
    await srv.close()
  }
})

test('gc() leaves in-place shards alone; a dropped index is rebuilt on acquire instead of failing the shard', async (ctx) => {
  const { srv, url } = await origin(sampleV1)
  const s = await store(ctx.dir)
  try {
    await s.register('k', new HttpMount(url))
    const r = await s.gc()
    assert.is(r.reclaimedBytes, 0)
    assert.is(s.getShardInfo('k').state, 'available')
    // Behind the store's back: the index files go.
    const { FsIndexRepo } = await import('../src/storage/index/fs-repo.js')
    await new FsIndexRepo(join(ctx.dir, 'index')).drop('k')
    const acc = await s.acquire('k')
    const blocks = await blocksOf(sampleV1)
    const b = blocks[42] as { cid: CID, bytes: Uint8Array }
    assert.equal(await acc.blockstore().get(b.cid), b.bytes)
    await acc.close()
    assert.is(s.getShardInfo('k').state, 'available')
    assert.equal(await s.shardsContainingCid(b.cid), ['k'])
  } finally {
    await s.close()
    await srv.close()
  }
})

test('destroy during a ranged read: the read ends, the shard is gone, nothing is left behind', async (ctx) => {
  const car = bigV2()
  let hold: (() => void) | undefined
  const o: Origin = { body: car.bytes, etag: '"v1"', ranges: true }
  const inner = rangeOrigin(o)
  const held = new Promise<void>((resolve) => { hold = resolve })
  let gets = 0
  const srv = await serve((req, res, n) => {
    gets++
    // Let the probe through; hold the first block read until the destroy is under way.
    if (gets === 3) { held.then(() => { inner(req, res, n) }, () => {}); return }
    inner(req, res, n)
  })
  const s = await store(ctx.dir)
  try {
    await s.register('k', new HttpMount(`${srv.url}/x.car`))
    const acc = await s.acquire('k')
    const b = car.blocks[5] as { cid: CID, bytes: Uint8Array }
    const reading = acc.blockstore().get(b.cid).then((bytes) => bytes, (err: unknown) => err)
    await until(() => gets >= 3, 'the block read to reach the origin')
    const destroyed = s.destroy('k', { drain: true })
    await acc.close()
    hold?.()
    await destroyed
    const got = await reading
    if (got instanceof Uint8Array) assert.equal(got, b.bytes)
    assert.throws(() => s.getShardInfo('k'), (e: { code: string }) => e.code === 'ERR_SHARD_UNKNOWN')
    assert.equal((await readdir(join(ctx.dir, 'index'))).filter((f) => !f.startsWith('.')), [])
    assert.equal(await s.shardsContainingCid(b.cid), [])
  } finally {
    await s.close()
    await srv.close()
  }
})

test('describeShard says local for file mounts; metrics count ranged requests and bytes', async (ctx) => {
  const { srv, url } = await origin(sampleV1)
  const s = await store(ctx.dir)
  try {
    await s.register('f', new FileMount(fixture('sample-v1.car')))
    assert.is((await s.describeShard('f')).placement, 'local')
    await s.register('k', new HttpMount(url))
    const text = await s.metrics.metrics()
    const requests = Number(/dagstore_remote_ranged_requests_total (\d+)/.exec(text)?.[1])
    const bytes = Number(/dagstore_remote_bytes_fetched_total (\d+)/.exec(text)?.[1])
    assert.ok(requests > 0, text)
    assert.ok(bytes >= sampleV1.length - 4096, `fetched ${bytes}`)
  } finally {
    await s.close()
    await srv.close()
  }
})

test.run()
