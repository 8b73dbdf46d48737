// toInterfaceBlockstore: the interface-blockstore v7 shapes over a ReadBlockstore, read-only.
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { FsBlockstore } from 'blockstore-fs'
import type { Blockstore } from 'interface-blockstore'
import { FileMount } from '../src/storage/mount/file.js'
import { toInterfaceBlockstore } from '../src/read/adapter.js'
import { carBlocks, fixture, unknownCid } from './helpers/fixtures.js'
import { concatStream, u8 } from './helpers/file-reader.js'
import { dirSuite, openStore } from './helpers/store.js'
import { at, codeOf, rejectsWith } from './helpers/assert.js'

const test = dirSuite('interface-blockstore adapter')

async function drain (it: Iterable<unknown> | AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) { /* consume */ }
}

test('over an accessor: get/has/getMany/getAll in v7 shapes, byte-identical to CarReader', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('v1', new FileMount(fixture('sample-v1.car')))
  const acc = await store.acquire('v1')
  const bs: Blockstore = toInterfaceBlockstore(acc.blockstore())
  const blocks = await carBlocks('sample-v1.car')

  // get: a generator of chunks (here exactly one), usable with for await.
  const gen = bs.get(at(blocks, 0).cid)
  assert.type((gen as AsyncGenerator<Uint8Array>)[Symbol.asyncIterator], 'function')
  const chunks: Uint8Array[] = []
  for await (const c of gen) chunks.push(c)
  assert.is(chunks.length, 1)
  assert.equal(u8(at(chunks, 0)), u8(at(blocks, 0).bytes))

  for (const { cid, bytes } of blocks) {
    assert.is(await bs.has(cid), true)
    assert.equal(u8(await concatStream(bs.get(cid))), u8(bytes), cid.toString())
  }
  assert.is(await bs.has(unknownCid), false)

  // getMany: {cid, bytes: generator} in input order, missing blocks fail the iteration.
  const wanted = blocks.map((b) => b.cid).reverse()
  const got: string[] = []
  let i = blocks.length - 1
  for await (const pair of bs.getMany(wanted)) {
    got.push(pair.cid.toString())
    assert.equal(u8(await concatStream(pair.bytes)), u8(at(blocks, i--).bytes))
  }
  assert.equal(got, wanted.map((c) => c.toString()))
  await rejectsWith(drain(bs.getMany([at(blocks, 1).cid, unknownCid])), (e) => {
    assert.is(e.name, 'NotFoundError')
    assert.is(e.code, 'ERR_NOT_FOUND')
    assert.is(e.cause?.name, 'BlockNotFoundError')
  })
  // An early stop leaves no unhandled rejection behind (a missing block in the window).
  for await (const _ of bs.getMany([at(blocks, 1).cid, unknownCid, at(blocks, 2).cid])) break

  // getAll: every block as written in the CAR, in CAR order.
  const all: Array<[string, Uint8Array]> = []
  for await (const pair of bs.getAll()) all.push([pair.cid.toString(), await concatStream(pair.bytes)])
  assert.equal(all.map(([c]) => c), blocks.map((b) => b.cid.toString()))
  for (const [j, [, bytes]] of all.entries()) assert.equal(u8(bytes), u8(at(blocks, j).bytes))

  await acc.close()
  await store.close()
})

test('missing blocks: NotFoundError with code ERR_NOT_FOUND; writes throw ERR_READ_ONLY', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('v1', new FileMount(fixture('sample-v1.car')))
  const acc = await store.acquire('v1')
  const bs = toInterfaceBlockstore(acc.blockstore())
  await rejectsWith(drain(bs.get(unknownCid)), (e) => {
    assert.is(e.name, 'NotFoundError')
    assert.is(e.code, 'ERR_NOT_FOUND')
  })
  const { cid, bytes } = at(await carBlocks('sample-v1.car'), 0)
  const readOnly = (e: { code: string, name: string }): void => {
    assert.is(e.code, 'ERR_READ_ONLY')
    assert.is(e.name, 'ReadOnlyError')
  }
  await rejectsWith(Promise.resolve(bs.put(cid, bytes)), readOnly)
  await rejectsWith(drain(bs.putMany([{ cid, bytes }])), readOnly)
  await rejectsWith(Promise.resolve(bs.delete(cid)), readOnly)
  await rejectsWith(drain(bs.deleteMany([cid])), readOnly)
  assert.is(await bs.has(cid), true, 'nothing was deleted')
  await acc.close()
  await store.close()
})

test('an aborted signal stops get, has, getMany and getAll before any work', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('v1', new FileMount(fixture('sample-v1.car')))
  const acc = await store.acquire('v1')
  const bs = toInterfaceBlockstore(acc.blockstore())
  const { cid } = at(await carBlocks('sample-v1.car'), 0)
  const signal = AbortSignal.abort()
  const aborted = (e: { name: string }): void => { assert.is(e.name, 'AbortError') }
  await rejectsWith(drain(bs.get(cid, { signal })), aborted)
  await rejectsWith(Promise.resolve(bs.has(cid, { signal })), aborted)
  await rejectsWith(drain(bs.getMany([cid], { signal })), aborted)
  await rejectsWith(drain(bs.getAll({ signal })), aborted)
  // Aborting midway stops getAll at the next block.
  const ac = new AbortController()
  let n = 0
  await rejectsWith((async () => {
    for await (const _ of bs.getAll({ signal: ac.signal })) { if (++n === 3) ac.abort() }
  })(), aborted)
  assert.is(n, 3)
  await acc.close()
  await store.close()
})

test('over the all-shards blockstore', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  await store.register('b', new FileMount(fixture('sample-wrapped-v2.car')))
  const all = store.blockstore()
  const bs = toInterfaceBlockstore(all)
  const blocks = await carBlocks('sample-v1.car')
  for (const { cid, bytes } of blocks.slice(0, 100)) assert.equal(u8(await concatStream(bs.get(cid))), u8(bytes))
  let n = 0
  for await (const _ of bs.getAll()) n++
  assert.is(n, 2 * blocks.length, 'one pair per shard a block is in')
  assert.is(await codeOf(drain(bs.get(unknownCid))), 'ERR_NOT_FOUND')
  await all.close()
  for (const k of ['a', 'b']) assert.is(store.getShardInfo(k).refs, 0)
  await store.close()
})

test('round trip: every block copied from the adapter into blockstore-fs reads back equal', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  await store.register('v1', new FileMount(fixture('sample-v1.car')))
  const acc = await store.acquire('v1')
  const ours = toInterfaceBlockstore(acc.blockstore())
  const fsbs = new FsBlockstore(join(ctx.dir, 'blocks'))
  await fsbs.open()
  const copied: CID[] = []
  for await (const { cid, bytes } of ours.getAll()) {
    await fsbs.put(cid, bytes)
    copied.push(cid)
  }
  const blocks = await carBlocks('sample-v1.car')
  assert.is(copied.length, blocks.length)
  for (const { cid, bytes } of blocks) {
    assert.ok(await fsbs.has(cid), cid.toString())
    assert.equal(u8(await concatStream(fsbs.get(cid))), u8(bytes), cid.toString())
  }
  // And back through getMany of both, pairwise.
  const theirs: Uint8Array[] = []
  for await (const pair of fsbs.getMany(copied)) theirs.push(await concatStream(pair.bytes))
  let k = 0
  for await (const pair of ours.getMany(copied)) assert.equal(u8(await concatStream(pair.bytes)), u8(at(theirs, k++)))
  assert.is(k, copied.length)
  await fsbs.close()
  await acc.close()
  await store.close()
})

test.run()
