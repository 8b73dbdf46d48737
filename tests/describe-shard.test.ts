// describeShard: the details listings show (ls, GET /shards).
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'
import { FileMount } from '../src/storage/mount/file.js'
import { StreamMount } from './helpers/stream-mount.js'
import { fixture } from './helpers/fixtures.js'
import { codeOf } from './helpers/assert.js'
import { dirSuite, openStore } from './helpers/store.js'

const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)
const test = dirSuite('describeShard')

test('url, local copy, size and indexed blocks; lazy shards have no size or blocks yet', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    await store.register('local', new FileMount(SAMPLE))
    await store.register('remote', new StreamMount(SAMPLE))
    await store.register('lazy', new StreamMount(SAMPLE), { lazy: true })
    const indexed = (await store.getIterableIndex('local')).size
    const local = await store.describeShard('local')
    assert.equal(local, { key: 'local', state: 'available', refs: 0, url: pathToFileURL(SAMPLE).href, size: sampleBytes.byteLength, blocks: indexed, placement: 'local' })
    const remote = await store.describeShard('remote')
    assert.is(remote.size, sampleBytes.byteLength)
    assert.is(remote.blocks, indexed)
    assert.ok(remote.transient !== undefined && remote.url.startsWith('stream:'))
    const lazy = await store.describeShard('lazy')
    assert.equal([lazy.state, lazy.size, lazy.blocks, lazy.transient], ['new', undefined, undefined, undefined])
    assert.is(await codeOf(store.describeShard('nope')), 'ERR_SHARD_UNKNOWN')
  } finally {
    await store.close()
  }
})

test('progress while the shard is fetched and indexed: bytes read part way and the size; gone once available', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  let release = (): void => {}
  try {
    const half = Math.floor(sampleBytes.byteLength / 2)
    const held = new Promise<void>((resolve) => { release = resolve })
    const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024, pause: (served) => served >= half ? held : undefined })
    const registering = store.register('r', mount)
    // The download stops half way; the indexer reads the copy as it arrives, up to there.
    let d = await store.describeShard('r')
    while ((d.progress?.bytes ?? 0) < half) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      d = await store.describeShard('r')
    }
    assert.is(d.state, 'initializing')
    assert.ok((d.progress?.bytes ?? 0) < sampleBytes.byteLength, `part way: ${JSON.stringify(d.progress)}`)
    assert.is(d.progress?.size, sampleBytes.byteLength)
    release()
    await registering
    const done = await store.describeShard('r')
    assert.equal([done.state, done.progress], ['available', undefined])
  } finally {
    release()
    await store.close()
  }
})

test.run()
