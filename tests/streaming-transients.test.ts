// Streaming transients through the store: fetch and index in one pass, acquirers served while
// a reclaimed transient downloads again, and what a download failing under them does.
import * as assert from 'uvu/assert'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { defaultShardIndexer } from '../src/format/car/indexer.js'
import type { ShardIndexer } from '../src/base/index-types.js'
import type { MountReader } from '../src/base/mount-types.js'
import { StreamMount } from './helpers/stream-mount.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, until } from './helpers/store.js'
import { encodeCar, makeBlock, patterned } from './helpers/car-gen.js'
import { at } from './helpers/assert.js'

const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)
const blocks = (await carBlocks('sample-v1.car')).map((b) => ({ cid: b.cid, bytes: new Uint8Array(b.bytes) }))
const HOLD_AT = 256 * 1024

const test = dirSuite('streaming transients')

function latch (): { promise: Promise<void>, open: () => void, isOpen: () => boolean } {
  let opened = false
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = () => { opened = true; resolve() } })
  return { promise, open, isOpen: () => opened }
}

test('registering a remote shard is one pass: the indexer reads while the download runs', async (ctx) => {
  const held = latch()
  let indexedWhileHeld = 0
  // The default indexer, watched: how far its reads got while the download was held.
  const watching: ShardIndexer = async (key, reader, signal) => {
    const read = reader.read!.bind(reader)
    const watched: MountReader = {
      get size () { return reader.size },
      stream: (start) => reader.stream(start),
      read: async (position, length) => {
        const bytes = await read(position, length)
        if (!held.isOpen()) indexedWhileHeld = Math.max(indexedWhileHeld, position + bytes.byteLength)
        return bytes
      },
      close: async () => { await reader.close() }
    }
    return await defaultShardIndexer(key, watched, signal)
  }
  // 4 MiB: several of the indexer's 1 MiB read windows, so it has whole windows to read
  // before the held point.
  const car = encodeCar(Array.from({ length: 1024 }, (_, i) => makeBlock('raw', patterned(4096, i))))
  const holdAt = 2560 * 1024
  const { store } = await openStore(ctx.dir, { shardIndexer: watching })
  const registering = (async () => {
    const mount = new StreamMount(car.bytes, { chunkSize: 64 * 1024, pause: (served) => served === holdAt ? held.promise : undefined })
    await store.register('remote', mount)
    return mount
  })()
  registering.catch(() => {})
  try {
    await until(() => indexedWhileHeld >= 2 * 1024 * 1024, 'the indexer to reach the held part of the download')
    assert.is(store.getShardInfo('remote').state, 'initializing')
    assert.ok(indexedWhileHeld <= holdAt, 'never past the bytes on disk')
    held.open()
    const mount = await registering
    assert.is(mount.fetchCount, 1)
    const acc = await store.acquire('remote')
    for (const b of [at(car.blocks, 0), at(car.blocks, car.blocks.length - 1)]) {
      assert.equal(new Uint8Array(await acc.blockstore().get(b.cid)), b.bytes)
    }
    await acc.close()
  } finally {
    held.open()
    await store.close()
  }
})

test('an acquirer of a shard whose transient was reclaimed is served while it downloads again', async (ctx) => {
  const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024 })
  let { store } = await openStore(ctx.dir)
  try {
    await store.register('remote', mount)
    const gc = await store.gc()
    assert.ok(gc.reclaimedBytes >= sampleBytes.byteLength)
    assert.equal(await readdir(join(ctx.dir, 'transients')), [])

    const held = latch()
    mount.options.pause = (served) => served === HOLD_AT ? held.promise : undefined
    const acc = await store.acquire('remote')
    assert.is(mount.fetchCount, 2)
    const index = await store.getIterableIndex('remote')
    const early = blocks.find((b) => (index.get(b.cid.multihash.bytes) ?? Infinity) < HOLD_AT / 2)!
    const late = at(blocks, blocks.length - 1)
    assert.equal(new Uint8Array(await acc.blockstore().get(early.cid)), early.bytes, 'a block already on disk')
    const lateGet = acc.blockstore().get(late.cid)
    held.open()
    assert.equal(new Uint8Array(await lateGet), late.bytes, 'a block that arrived later')
    await acc.close()
    // The copy is the shard's, recorded durably: a restart keeps it.
    await until(() => mount.activeStreams === 0, 'the download to finish')
    await store.close()
    ;({ store } = await openStore(ctx.dir))
    assert.is((await readdir(join(ctx.dir, 'transients'))).length, 1, 'not taken for an orphan')
    const again = await store.acquire('remote')
    assert.equal(new Uint8Array(await again.blockstore().get(late.cid)), late.bytes)
    await again.close()
  } finally {
    await store.close()
  }
})

test('a download failing under an accessor fails the shard with its cause; recover fetches it again', async (ctx) => {
  const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024 })
  const { store } = await openStore(ctx.dir)
  try {
    await store.register('remote', mount)
    await store.gc()
    const cause = Object.assign(new Error('reset mid-body'), { code: 'ECONNRESET' })
    mount.options.failAfter = HOLD_AT
    mount.options.failWith = cause
    const acc = await store.acquire('remote')
    const late = at(blocks, blocks.length - 1)
    const err = await acc.blockstore().get(late.cid).then(() => undefined, (e: unknown) => e)
    assert.ok(err !== undefined, 'a block the failed download never delivered is not served')
    await until(() => store.getShardInfo('remote').state === 'errored', 'the shard to fail')
    const info = store.getShardInfo('remote')
    assert.is(info.error, cause)
    assert.is(info.refs, 1, 'the accessor still holds its reference')
    assert.equal(await readdir(join(ctx.dir, 'transients')), [], 'no .partial left')
    await acc.close()
    assert.is(store.getShardInfo('remote').refs, 0)

    mount.options.failAfter = undefined
    await store.recover('remote')
    const again = await store.acquire('remote')
    assert.equal(new Uint8Array(await again.blockstore().get(late.cid)), late.bytes)
    await again.close()
  } finally {
    await store.close()
  }
})

test.run()
