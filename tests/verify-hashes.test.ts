// The store's verifyHashes ('remote' by default): data from remote mounts is hashed while it is
// indexed, local files are not unless asked. Real HTTP servers on 127.0.0.1, real LevelDB.
import * as assert from 'uvu/assert'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CarIndexer } from '@ipld/car/indexer'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { DAGStore } from '../src/engine/store.js'
import { HttpMount } from '../src/storage/mount/http.js'
import { FileMount } from '../src/storage/mount/file.js'
import { createShardIndexer } from '../src/format/car/indexer.js'
import type { VerifyHashes } from '../src/base/index-types.js'
import type { Mount } from '../src/base/mount-types.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'
import { serve, standard, type TestServer } from './helpers/http-server.js'
import { encodeCar, makeBlock, patterned, RAW } from './helpers/car-gen.js'
import { u8 } from './helpers/file-reader.js'

const sample = await readFile(fixture('sample-v1.car'))

/** sample-v1.car with one byte flipped in the data of a block in the middle; that block's CID and section offset. */
async function tampered (): Promise<{ bytes: Uint8Array, cid: CID, offset: number }> {
  const entries = []
  for await (const e of await CarIndexer.fromBytes(sample)) if (e.blockLength > 0 && e.cid.multihash.code !== 0) entries.push(e)
  const e = entries[Math.floor(entries.length / 2)]
  if (e === undefined) throw new Error('sample-v1.car has blocks')
  const bytes = Uint8Array.from(sample)
  const at = e.blockOffset + Math.floor(e.blockLength / 2)
  bytes[at] = (bytes[at] as number) ^ 0x01
  return { bytes, cid: e.cid, offset: e.offset }
}

/** Registers `mount` under `key` in a store with `verifyHashes` (undefined: the default); the shard's state and error. */
async function registerWith (
  dir: string, verifyHashes: VerifyHashes | undefined, key: string, mount: Mount
): Promise<{ state: string, error?: Error & { code?: string } }> {
  const { store } = await openStore(join(dir, `store-${String(verifyHashes)}-${key}`), verifyHashes === undefined ? {} : { verifyHashes })
  try {
    let failure: (Error & { code?: string }) | undefined
    await store.register(key, mount).catch((err: Error & { code?: string }) => { failure = err })
    const info = store.getShardInfo(key)
    if (info.error === undefined) {
      assert.is(failure, undefined)
      return { state: info.state }
    }
    // The register's result carries the shard's own error as its cause.
    assert.is(failure?.code, 'ERR_SHARD_INITIALIZATION_FAILED')
    assert.is(failure?.cause, info.error)
    return { state: info.state, error: info.error }
  } finally {
    await store.close()
  }
}

function assertMismatch (got: { state: string, error?: Error & { code?: string } }, cid: CID, offset: number, label: string): void {
  assert.is(got.state, 'errored', label)
  assert.is(got.error?.code, 'ERR_INVALID_CAR', label)
  assert.ok(got.error?.message.endsWith(`block hash mismatch for ${cid.toString()} at byte ${offset}`), `${label}: ${String(got.error?.message)}`)
}

const test = dirSuite('verifyHashes')

test('an HTTP shard with a tampered block fails by default and with true; false makes it available', async (ctx) => {
  const { bytes, cid, offset } = await tampered()
  const srv = await serve(standard(bytes))
  try {
    assertMismatch(await registerWith(ctx.dir, undefined, 'http', new HttpMount(srv.url)), cid, offset, 'default')
    assertMismatch(await registerWith(ctx.dir, true, 'http', new HttpMount(srv.url)), cid, offset, 'true')
    assert.equal(await registerWith(ctx.dir, false, 'http', new HttpMount(srv.url)), { state: 'available' })
  } finally {
    await srv.close()
  }
})

test('a local file with a tampered block is available by default and with \'remote\'; true fails it', async (ctx) => {
  const { bytes, cid, offset } = await tampered()
  const path = join(ctx.dir, 'tampered.car')
  await writeFile(path, bytes)
  assert.equal(await registerWith(ctx.dir, undefined, 'file', new FileMount(path)), { state: 'available' })
  assert.equal(await registerWith(ctx.dir, 'remote', 'file', new FileMount(path)), { state: 'available' })
  assertMismatch(await registerWith(ctx.dir, true, 'file', new FileMount(path)), cid, offset, 'true')
})

test('sample-v1.car (blake2b-256 CIDs) over HTTP verifies and serves every block', async (ctx) => {
  const srv = await serve(standard(sample))
  const { store } = await openStore(ctx.dir)
  try {
    await store.register('sample', new HttpMount(srv.url))
    assert.is(store.getShardInfo('sample').state, 'available')
    const blocks = await carBlocks('sample-v1.car')
    assert.ok(blocks.some((b) => b.cid.multihash.code === 0xb220))
    const acc = await store.acquire('sample')
    try {
      for (const b of blocks) assert.equal(u8(await acc.blockstore().get(b.cid)), u8(b.bytes), b.cid.toString())
    } finally {
      await acc.close()
    }
  } finally {
    await store.close()
    await srv.close()
  }
})

test('an HTTP shard with a block whose hash function has no hasher fails with ERR_UNSUPPORTED_HASH; false takes it', async (ctx) => {
  const murmur = { cid: CID.createV1(RAW, Digest.create(0x22, new Uint8Array(16).fill(3))), bytes: patterned(100, 4) }
  const car = encodeCar([makeBlock('raw', patterned(10, 1)), murmur])
  let srv: TestServer | undefined
  try {
    srv = await serve(standard(car.bytes))
    const got = await registerWith(ctx.dir, undefined, 'odd', new HttpMount(srv.url))
    assert.is(got.state, 'errored')
    assert.is(got.error?.code, 'ERR_UNSUPPORTED_HASH')
    assert.match(got.error?.message ?? '', new RegExp(`cannot verify ${murmur.cid.toString()}: no hasher for multihash code 0x22 at byte ${String(car.sections[1]?.offset)}$`))
    assert.equal(await registerWith(ctx.dir, false, 'odd', new HttpMount(srv.url)), { state: 'available' })
  } finally {
    await srv?.close()
  }
})

test('an indexer from createShardIndexer follows the store\'s decision unless it says otherwise', async (ctx) => {
  const { bytes, cid, offset } = await tampered()
  const srv = await serve(standard(bytes))
  const path = join(ctx.dir, 'tampered.car')
  await writeFile(path, bytes)
  const stores: DAGStore[] = []
  const open = async (name: string, options: ConstructorParameters<typeof DAGStore>[0]): Promise<DAGStore> => {
    const { store } = await openStore(join(ctx.dir, name), options)
    stores.push(store)
    return store
  }
  try {
    const following = await open('following', { shardIndexer: createShardIndexer({ readMode: 'stream' }) })
    await following.register('http', new HttpMount(srv.url)).catch(() => {})
    const info = following.getShardInfo('http')
    assertMismatch({ state: info.state, ...(info.error === undefined ? {} : { error: info.error }) }, cid, offset, 'remote, stream indexer')
    await following.register('file', new FileMount(path))
    assert.is(following.getShardInfo('file').state, 'available')
    const never = await open('never', { verifyHashes: true, shardIndexer: createShardIndexer({ verifyHashes: false }) })
    await never.register('http', new HttpMount(srv.url))
    assert.is(never.getShardInfo('http').state, 'available')
  } finally {
    for (const s of stores) await s.close()
    await srv.close()
  }
})

test('verifyHashes takes \'remote\', true or false', (ctx) => {
  for (const bad of ['all', 'local', 1, null]) {
    assert.throws(() => new DAGStore({ dir: ctx.dir, verifyHashes: bad as never }), (err: Error) => err instanceof RangeError && /verifyHashes/.test(err.message))
  }
})

test.run()
