// Destroy leaves nothing behind, whatever the shard's work is doing when it arrives, and a
// shard registered again under the same key never meets anything of the old one.
import * as assert from 'uvu/assert'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { HttpMount } from '../src/storage/mount/http.js'
import { FileMount } from '../src/storage/mount/file.js'
import { MemoryIndexRepo } from '../src/storage/index/memory-repo.js'
import { defaultShardIndexer } from '../src/format/car/indexer.js'
import type { AnyLevel } from '../src/storage/state/state-store.js'
import type { FullIndexRepo, ShardIndex } from '../src/base/index-types.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { encodeCar, makeBlock, patterned } from './helpers/car-gen.js'
import { serve, type Handler } from './helpers/http-server.js'
import { openStore, dirSuite } from './helpers/store.js'
import { codeOf } from './helpers/assert.js'

const test = dirSuite('destroy')

/** Registers `key` as soon as the destroy of its previous shard has been processed. */
async function registerAgain (register: () => Promise<void>): Promise<void> {
  for (;;) {
    const code = await codeOf(register())
    if (code !== 'ERR_SHARD_EXISTS') return
    await new Promise((resolve) => setImmediate(resolve))
  }
}

async function tombstoned (db: AnyLevel, key: string): Promise<boolean> {
  return await db.sublevel<string, string>('shards-destroying', { keyEncoding: 'utf8', valueEncoding: 'utf8' }).get(key) !== undefined
}

test('a destroy right behind the register resolves (the aborted job does not wait for the destroy\'s own barrier)', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    for (let i = 0; i < 20; i++) {
      const registered = codeOf(store.register('k', new FileMount(fixture('sample-v1.car'))))
      await store.destroy('k')
      assert.is(await registered, 'ERR_SHARD_UNKNOWN')
    }
  } finally {
    await store.close()
  }
})

test('a shard registered again under a destroyed key writes its index only once the old tombstone is cleared', async (ctx) => {
  const db = new Level(join(ctx.dir, 'state')) as unknown as AnyLevel
  const reader = await new FileMount(fixture('sample-v1.car')).fetch()
  const index = await defaultShardIndexer('k', reader, new AbortController().signal)
  await reader.close()
  const inner = new MemoryIndexRepo()
  const whileTombstoned: boolean[] = []
  const indexRepo: FullIndexRepo = {
    add: async (key: string, i: ShardIndex) => { whileTombstoned.push(await tombstoned(db, key)); await inner.add(key, i) },
    get: async (key) => await inner.get(key),
    drop: async (key) => await inner.drop(key),
    stat: async (key) => await inner.stat(key),
    keys: () => inner.keys()
  }
  // An indexer that takes no time: the new shard's index write follows its barrier at once.
  const { store } = await openStore(ctx.dir, { datastore: db, indexRepo, shardIndexer: async () => index })
  try {
    await store.register('k', new FileMount(fixture('sample-v1.car')))
    for (let i = 0; i < 20; i++) {
      const destroyed = store.destroy('k')
      await registerAgain(async () => { await store.register('k', new FileMount(fixture('sample-v1.car'))) })
      await destroyed
    }
    assert.is(whileTombstoned.length, 21)
    assert.equal(whileTombstoned.filter((t) => t), [], 'no index written while a tombstone of its key was set')
    assert.is(await tombstoned(db, 'k'), false)
  } finally {
    await store.close()
    await db.close()
  }
})

test('a cleanup that fails keeps the tombstone; the next shard of the key finishes it before indexing', async (ctx) => {
  const db = new Level(join(ctx.dir, 'state')) as unknown as AnyLevel
  const inner = new MemoryIndexRepo()
  let failDrops = 0
  const indexRepo: FullIndexRepo = {
    add: async (key, i) => { await inner.add(key, i) },
    get: async (key) => await inner.get(key),
    drop: async (key) => {
      if (failDrops > 0) { failDrops--; throw Object.assign(new Error('EIO: i/o error, unlink'), { code: 'EIO' }) }
      return await inner.drop(key)
    },
    stat: async (key) => await inner.stat(key),
    keys: () => inner.keys()
  }
  const other = encodeCar(Array.from({ length: 20 }, (_, i) => makeBlock('raw', patterned(700 + i, 9000 + i))))
  await writeFile(join(ctx.dir, 'other.car'), other.bytes)
  const sample = await carBlocks('sample-v1.car')
  const { store, reported } = await openStore(ctx.dir, { datastore: db, indexRepo })
  try {
    await store.register('k', new FileMount(fixture('sample-v1.car')))
    failDrops = 1
    await store.destroy('k')
    assert.ok(reported.some((r) => /cleanup of destroyed shard "k" failed/.test(r.context)), 'the failure is reported')
    assert.is(await tombstoned(db, 'k'), true, 'the tombstone stays')
    assert.is((await inner.stat('k')).exists, true, 'the old index is still there')

    await store.register('k', new FileMount(join(ctx.dir, 'other.car')))
    assert.is(await tombstoned(db, 'k'), false, 'the new shard finished the cleanup')
    const accessor = await store.acquire('k')
    for (const b of other.blocks) assert.equal(await accessor.blockstore().get(b.cid), b.bytes)
    assert.not.ok(await accessor.blockstore().has(sample[1]!.cid), 'nothing of the old shard')
    await accessor.close()
    assert.equal(await store.shardsContainingCid(sample[1]!.cid), [])
  } finally {
    await store.close()
    await db.close()
  }
})

test('a tombstone left by a failed cleanup is finished by the next start', async (ctx) => {
  const db = new Level(join(ctx.dir, 'state')) as unknown as AnyLevel
  const inner = new MemoryIndexRepo()
  let failDrops = 0
  const indexRepo: FullIndexRepo = {
    add: async (key, i) => { await inner.add(key, i) },
    get: async (key) => await inner.get(key),
    drop: async (key) => {
      if (failDrops > 0) { failDrops--; throw new Error('EIO: i/o error, unlink') }
      return await inner.drop(key)
    },
    stat: async (key) => await inner.stat(key),
    keys: () => inner.keys()
  }
  const sample = await carBlocks('sample-v1.car')
  const s1 = await openStore(ctx.dir, { datastore: db, indexRepo })
  await s1.store.register('k', new FileMount(fixture('sample-v1.car')))
  failDrops = 1
  await s1.store.destroy('k')
  await s1.store.close()
  assert.is(await tombstoned(db, 'k'), true)

  const s2 = await openStore(ctx.dir, { datastore: db, indexRepo })
  try {
    assert.is(await tombstoned(db, 'k'), false)
    assert.is((await inner.stat('k')).exists, false)
    assert.equal(await s2.store.shardsContainingCid(sample[1]!.cid), [])
  } finally {
    await s2.store.close()
    await db.close()
  }
})

test('no transient outlives its destroy: downloads failing, finishing or in flight (200 tries)', async (ctx) => {
  const sample = await readFile(fixture('sample-v1.car'))
  const junk = await readFile(fixture('junk.dat'))
  // Whole bodies that are not CARs, bodies cut short, and good bodies sent in pieces.
  const handlers: Handler[] = [
    (req, res) => {
      res.writeHead(200, { 'content-length': junk.byteLength })
      res.end(req.method === 'HEAD' ? undefined : junk)
    },
    (req, res) => {
      res.writeHead(200, { 'content-length': sample.byteLength })
      if (req.method === 'HEAD') { res.end(); return }
      res.write(sample.subarray(0, 100_000), () => { req.socket.destroy() })
    },
    (req, res) => {
      res.writeHead(200, { 'content-length': sample.byteLength })
      if (req.method === 'HEAD') { res.end(); return }
      let sent = 0
      const more = (): void => {
        if (res.destroyed) return
        const next = Math.min(sample.byteLength, sent + 64 * 1024)
        res.write(sample.subarray(sent, next))
        sent = next
        if (sent === sample.byteLength) res.end()
        else setImmediate(more)
      }
      more()
    }
  ]
  const srv = await serve((req, res, n) => { (handlers[Number(new URL(req.url ?? '/', 'http://x').searchParams.get('h'))] ?? handlers[0] as Handler)(req, res, n) })
  const { store } = await openStore(ctx.dir)
  const transients = join(ctx.dir, 'transients')
  try {
    for (let i = 0; i < 200; i++) {
      const key = `k${i % 4}`
      const url = `${srv.url}?h=${i % handlers.length}`
      const registered = store.register(key, new HttpMount(url, { retries: 0 })).catch(() => {})
      // Destroy at a spread of moments: at once, a little later, or once the register settled.
      const when = Math.floor(i / handlers.length) % 3
      if (when === 1) await new Promise((resolve) => setTimeout(resolve, i % 7))
      else if (when === 2) await registered
      await store.destroy(key)
      await registered
      assert.equal(await readdir(transients), [], `try ${i}: the transients folder is empty once destroy resolved`)
    }
  } finally {
    await store.close()
    await srv.close()
  }
})

test.run()
