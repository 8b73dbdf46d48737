// docs/CONTRACT.md, restart form: a shard is persisted as a restart would find it (serving as
// available, refs never), so acquire and release of an available shard write nothing, and their
// results wait for no commit — not even one in flight for other shards. Every op that changes
// the restart form is still durable before its result.
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, until } from './helpers/store.js'
import { gatedLevel } from './helpers/gated-level.js'
import { at } from './helpers/assert.js'

const test = dirSuite('restart form')
const blocks = await carBlocks('sample-v1.car')

/** Fails instead of hanging when `p` does not settle (a result waiting on a held commit). */
async function settles<T> (p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not settle while a commit was held`)) }, 10_000)
  })
  try {
    return await Promise.race([p, deadline])
  } finally {
    clearTimeout(timer)
  }
}

test('acquire and release of an available shard write nothing; serving is persisted as available', async ({ dir }) => {
  const gated = gatedLevel(join(dir, 'state'))
  let store = new DAGStore({ dir, datastore: gated.datastore })
  await store.start()
  await store.register('a', new FileMount(fixture('sample-v1.car')))
  const before = gated.writes
  for (let i = 0; i < 50; i++) {
    const one = await store.acquire('a')
    const two = await store.acquire('a')
    assert.equal(store.getShardInfo('a'), { state: 'serving', refs: 2 })
    assert.ok((await one.blockstore().get(at(blocks, i).cid)).length > 0)
    await one.close()
    await two.close()
  }
  assert.is(gated.writes, before, 'no commit for 100 acquires and releases')
  const held = await store.acquire('a')
  assert.is(held.key, 'a')
  await store.close()
  await gated.closeDb()
  store = new DAGStore({ dir })
  await store.start()
  assert.equal(store.getShardInfo('a'), { state: 'available', refs: 0 })
  await store.close()
})

test('results of acquire and release do not wait for a commit in flight for another shard', async ({ dir }) => {
  const gated = gatedLevel(join(dir, 'state'))
  const store = new DAGStore({ dir, datastore: gated.datastore })
  await store.start()
  try {
    await store.register('a', new FileMount(fixture('sample-v1.car')))
    await store.register('lazy', new FileMount(fixture('sample-v1.car')), { lazy: true })
    gated.hold()
    let registered = false
    const other = store.register('other', new FileMount(fixture('sample-wrapped-v2.car')), { lazy: true })
      .then(() => { registered = true })
    await gated.held()
    const accessor = await settles(store.acquire('a'), 'acquire of an available shard')
    assert.ok((await accessor.blockstore().get(at(blocks, 0).cid)).length > 0)
    await settles(accessor.close(), 'release')
    assert.is(registered, false, "the other shard's register still waits for its commit")

    // An op that changes the restart form (initialize of a lazy shard) waits for the disk,
    // queued behind the commit in flight.
    let opened = false
    const lazy = store.acquire('lazy').then((a) => { assert.ok(opened, 'delivered only after the commits went through'); return a })
    await until(() => store.getShardInfo('lazy').state === 'initializing', 'the acquire to start initialization')
    // A full loop round trip later the lazy acquire has had every chance to be answered early.
    await (await settles(store.acquire('a'), 'acquire')).close()
    opened = true
    gated.release()
    await other
    await (await lazy).close()
    assert.equal(store.getShardInfo('other'), { state: 'new', refs: 0 })
  } finally {
    gated.release()
    await store.close()
    await gated.closeDb()
  }
  const reopened = new DAGStore({ dir })
  await reopened.start()
  assert.equal(reopened.getShardInfo('a').state, 'available')
  assert.equal(reopened.getShardInfo('lazy').state, 'available')
  assert.equal(reopened.getShardInfo('other').state, 'new')
  await reopened.close()
})

test.run()
