// Shard readers are pooled across acquires; the pool must never serve a file that changed.
import * as assert from 'uvu/assert'
import { copyFile, readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { FileMount } from '../src/storage/mount/file.js'
import { MountRegistry } from '../src/storage/mount/registry.js'
import type { MountReader } from '../src/base/mount-types.js'
import type { CID } from 'multiformats/cid'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, until } from './helpers/store.js'
import { ReaderPool } from '../src/engine/accessor/reader-pool.js'
import { openFileReader } from '../src/storage/transients/file-reader.js'
import { MemoryIndexRepo } from '../src/storage/index/memory-repo.js'

/** A FileMount that counts how often its file is opened. */
class CountingFileMount extends FileMount {
  static opened = 0
  override async fetch (signal?: AbortSignal): Promise<MountReader> {
    CountingFileMount.opened++
    return await super.fetch(signal)
  }
}

function registry (): MountRegistry {
  const r = new MountRegistry({ builtins: false })
  r.register('file', (url) => new CountingFileMount(FileMount.fromURL(url).path))
  return r
}

const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length

const test = dirSuite('reader pool')

test('acquires of one shard share one open file, and a released shard is reopened for free', async (ctx) => {
  const { store } = await openStore(ctx.dir, { mounts: registry() })
  await store.register('a', new CountingFileMount(fixture('sample-v1.car')))
  CountingFileMount.opened = 0
  const accs = await Promise.all(Array.from({ length: 8 }, async () => await store.acquire('a')))
  assert.is(CountingFileMount.opened, 1)
  await Promise.all(accs.map(async (a) => { await a.close() }))
  for (let i = 0; i < 20; i++) await (await store.acquire('a')).close()
  assert.is(CountingFileMount.opened, 1)
  await store.close()
})

test('a file replaced behind the store is reopened, never served from the stale descriptor', async (ctx) => {
  const path = join(ctx.dir, 'x.car')
  await copyFile(fixture('sample-v1.car'), path)
  const { store } = await openStore(ctx.dir, { mounts: registry() })
  await store.register('a', new CountingFileMount(path))
  await (await store.acquire('a')).close()
  CountingFileMount.opened = 0
  // Same path, new inode.
  await copyFile(fixture('sample-v1.car'), path + '.new')
  await rename(path + '.new', path)
  await (await store.acquire('a')).close()
  assert.is(CountingFileMount.opened, 1)
  // Gone: the acquire fails (and the shard errors) instead of reading a deleted file.
  await rm(path)
  await store.acquire('a').then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_SHARD_ERRORED') })
  await store.close()
})

test('a pooled reader is trusted for revalidateMs after a check, then checked again (injected clock)', async (ctx) => {
  const path = join(ctx.dir, 'x.car')
  await copyFile(fixture('sample-v1.car'), path)
  let now = 0
  const pool = new ReaderPool({ maxIdle: 4, revalidateMs: 1000, report: (err) => { throw err }, clock: () => now })
  let opened = 0
  const open = async (): Promise<{ reader: MountReader }> => { opened++; return { reader: await openFileReader(path) } }
  ;(await pool.lease('k', open)).closeNow()
  await copyFile(fixture('sample-v1.car'), path + '.new')
  await rename(path + '.new', path)
  now = 999
  ;(await pool.lease('k', open)).closeNow()
  assert.is(opened, 1, 'inside the window the reader is trusted without a system call')
  now = 1000
  ;(await pool.lease('k', open)).closeNow()
  assert.is(opened, 2, 'after the window the replaced file is seen and reopened')
  now = 1500
  ;(await pool.lease('k', open)).closeNow()
  assert.is(opened, 2, 'the reopened file was found current at 1000: trusted again')
  await pool.closeAll()
})

test('leaseReady hands out a pooled reader only with its index, and never after the file changed or an invalidate', async (ctx) => {
  const path = join(ctx.dir, 'x.car')
  await copyFile(fixture('sample-v1.car'), path)
  const repo = new MemoryIndexRepo()
  const pool = new ReaderPool({ maxIdle: 4, revalidateMs: 0, report: (err) => { throw err } })
  const open = async (): Promise<{ reader: MountReader }> => ({ reader: await openFileReader(path) })
  assert.is(pool.leaseReady('k'), undefined, 'nothing pooled')
  const first = await pool.lease('k', open)
  assert.is(pool.leaseReady('k'), undefined, 'pooled, but no index yet')
  const { store } = await openStore(join(ctx.dir, 's'), { indexRepo: repo })
  await store.register('k', new FileMount(path))
  const index = await repo.get('k')
  pool.keep(first, index, { offset: 0 })
  first.closeNow()
  const ready = pool.leaseReady('k')
  assert.ok(ready)
  assert.is(ready.index, index)
  ready.lease.closeNow()
  pool.invalidate('k')
  assert.is(pool.leaseReady('k'), undefined, 'invalidated')
  const again = await pool.lease('k', open)
  pool.keep(again, index, { offset: 0 })
  again.closeNow()
  await rm(path)
  assert.is(pool.leaseReady('k'), undefined, 'the file was deleted: the pooled reader and its index are dropped')
  await store.close()
  await pool.closeAll()
})

test('the store wires readerRevalidateMs: a deleted file is noticed by an acquire once the window has passed', async (ctx) => {
  const path = join(ctx.dir, 'x.car')
  await copyFile(fixture('sample-v1.car'), path)
  const { store } = await openStore(ctx.dir, { readerRevalidateMs: 20 })
  await store.register('a', new FileMount(path))
  await (await store.acquire('a')).close()
  await rm(path)
  // Served from the pooled descriptor at most until the window ends; then the check fails the acquire.
  const deadline = Date.now() + 10_000
  for (;;) {
    const outcome = await store.acquire('a').then(async (acc) => { await acc.close(); return 'served' }, (e: { code: string }) => e.code)
    if (outcome === 'ERR_SHARD_ERRORED') break
    assert.is(outcome, 'served')
    if (Date.now() > deadline) assert.unreachable('the deleted file was never noticed')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await until(() => store.getShardInfo('a').state === 'errored', 'the shard to fail')
  await store.close()
})

test('readerRevalidateMs and maxIdleReaders are validated', async (ctx) => {
  const { DAGStore } = await import('../src/engine/store.js')
  assert.throws(() => new DAGStore({ dir: ctx.dir, readerRevalidateMs: -1 }), RangeError)
  assert.throws(() => new DAGStore({ dir: ctx.dir, maxIdleReaders: 1.5 }), RangeError)
})

test('idle readers are bounded by maxIdleReaders; close() closes them all', async (ctx) => {
  const before = await openFds()
  const { store } = await openStore(ctx.dir, { maxIdleReaders: 2 })
  for (let i = 0; i < 6; i++) await store.register(`s${i}`, new FileMount(fixture('sample-v1.car')))
  const baseline = await openFds()
  for (let i = 0; i < 6; i++) await (await store.acquire(`s${i}`)).close()
  assert.is(await openFds() - baseline, 2)
  await store.close()
  assert.is(await openFds(), before)
})

test('an accessor cannot read after close even though its reader stays pooled', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  const acc = await store.acquire('a')
  const bs = acc.blockstore()
  let first: CID | undefined
  for await (const c of bs.allKeys()) { first = c; break }
  if (first === undefined) throw new Error('no blocks')
  await acc.close()
  await bs.get(first).then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_ACCESSOR_CLOSED') })
  await store.close()
})

test('destroy and recover drop the pooled reader', async (ctx) => {
  const { store } = await openStore(ctx.dir, { mounts: registry() })
  await store.register('a', new CountingFileMount(fixture('sample-v1.car')))
  await (await store.acquire('a')).close()
  await store.destroy('a')
  await store.register('a', new CountingFileMount(fixture('sample-v1.car')))
  CountingFileMount.opened = 0
  await (await store.acquire('a')).close()
  assert.is(CountingFileMount.opened, 1, 'the destroyed shard\'s reader was not reused')
  await store.close()
})

test.run()
