// Destroy under load: destroy(key, { drain: true }) refuses new acquires at once, waits for the
// accessors to close, then destroys; an abort leaves the shard serving. Through the store, and
// through a real server whose gateway keeps reading the shard.
import * as assert from 'uvu/assert'
import { copyFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startServer, type DagstoreServer } from '../src/app/server/index.js'
import { FileMount } from '../src/storage/mount/file.js'
import type { DAGStore } from '../src/engine/store.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, recordTraces, result, until } from './helpers/store.js'
import { codeOf } from './helpers/assert.js'

const test = dirSuite('destroy with drain')
const sample = (): FileMount => new FileMount(fixture('sample-v1.car'))
const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)

test('acquires fail with ERR_SHARD_DRAINING at once; the destroy runs when the last accessor closes', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    await store.register('k', sample())
    const a = await store.acquire('k')
    const b = await store.acquire('k')
    const t = recordTraces(store)
    let destroyed = false
    const destroying = store.destroy('k', { drain: true }).then(() => { destroyed = true })
    await until(() => store.getShardInfo('k').draining === true, 'the drain to start')
    assert.equal(store.getShardInfo('k'), { state: 'serving', refs: 2, draining: true })
    assert.is(await codeOf(store.acquire('k')), 'ERR_SHARD_DRAINING')
    // Accessors handed out before the drain go on reading.
    assert.ok(await a.blockstore().has(blocks[0]!.cid))
    await a.close()
    assert.equal(store.getShardInfo('k'), { state: 'serving', refs: 1, draining: true })
    assert.not.ok(destroyed)
    await b.close()
    await destroying
    assert.is(await codeOf(Promise.resolve().then(() => store.getShardInfo('k'))), 'ERR_SHARD_UNKNOWN')
    assert.equal(await store.shardsContainingCid(blocks[0]!.cid), [])
    await until(() => t.traces.length === 5, 'traces')
    assert.equal(t.ops(), ['destroy:serving', 'acquire:serving', 'release:serving', 'release:available', 'destroy:available'])
  } finally {
    await store.close()
  }
})

test('a shard nobody holds is destroyed at once; without drain a shard in use is still refused', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    await store.register('idle', sample())
    await store.destroy('idle', { drain: true })
    await store.register('busy', sample())
    const a = await store.acquire('busy')
    assert.is(await codeOf(store.destroy('busy')), 'ERR_SHARD_IN_USE')
    assert.equal(store.getShardInfo('busy'), { state: 'serving', refs: 1 })
    await a.close()
  } finally {
    await store.close()
  }
})

test('an aborted drain leaves the shard serving: acquires work again, and nothing is destroyed', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    await store.register('k', sample())
    const held = await store.acquire('k')
    const controller = new AbortController()
    const destroying = codeOf(store.destroy('k', { drain: true, signal: controller.signal }))
    await until(() => store.getShardInfo('k').draining === true, 'the drain to start')
    assert.is(await codeOf(store.acquire('k')), 'ERR_SHARD_DRAINING')
    controller.abort()
    assert.is(await destroying, 'ABORT_ERR')
    assert.equal(store.getShardInfo('k'), { state: 'serving', refs: 1 })
    const again = await store.acquire('k')
    assert.ok(Buffer.from(blocks[0]!.bytes).equals(await again.blockstore().get(blocks[0]!.cid)))
    await again.close()
    await held.close()
    assert.equal(store.getShardInfo('k'), { state: 'available', refs: 0 })
    assert.equal(await store.shardsContainingCid(blocks[0]!.cid), ['k'])
  } finally {
    await store.close()
  }
})

test('an errored shard with accessors drains too: no recover meanwhile, destroyed when the last one closes', async (ctx) => {
  const path = join(ctx.dir, 'copy.car')
  await copyFile(fixture('sample-v1.car'), path)
  const { store } = await openStore(ctx.dir)
  try {
    await store.register('k', new FileMount(path))
    const held = await store.acquire('k')
    // Its file goes: the next acquire fails the shard, which keeps its reference.
    await rm(path)
    store.getShardInfo('k')
    await store.acquire('k').catch(() => {})
    await until(() => store.getShardInfo('k').state === 'errored', 'the shard to fail')
    const destroying = store.destroy('k', { drain: true })
    await until(() => store.getShardInfo('k').draining === true, 'the drain to start')
    assert.is(await codeOf(store.recover('k')), 'ERR_SHARD_DRAINING')
    assert.is(await codeOf(store.acquire('k')), 'ERR_SHARD_DRAINING')
    await held.close()
    await destroying
    assert.not.ok(store.allShardsInfo().has('k'))
  } finally {
    await store.close()
  }
})

test('close() while draining: the destroy gets ERR_STORE_CLOSED and the shard is still there after a restart', async (ctx) => {
  const s1 = (await openStore(ctx.dir)).store
  await s1.register('k', sample())
  await s1.acquire('k')
  const destroying = result((out) => { s1.destroyShard('k', out, { drain: true }) })
  await until(() => s1.getShardInfo('k').draining === true, 'the drain to start')
  await s1.close()
  assert.is((await destroying).error?.name, 'StoreClosedError')
  const s2 = (await openStore(ctx.dir)).store
  try {
    assert.equal(s2.getShardInfo('k'), { state: 'available', refs: 0 })
  } finally {
    await s2.close()
  }
})

// ── through the server ─────────────────────────────────────────────────────────────────────

const TOKEN = 'drain-token_0123456789'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any

async function admin (server: DagstoreServer, method: string, path: string, signal?: AbortSignal): Promise<{ status: number, json: Json }> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${TOKEN}` } }
  if (signal !== undefined) init.signal = signal
  const res = await fetch(`http://${server.host}:${server.port}${path}`, init)
  return { status: res.status, json: await res.json() }
}

/** Gateway requests for the shard's blocks, `workers` at a time, until stopped; statuses counted. */
function load (server: DagstoreServer, workers: number): { statuses: Map<number, number>, stop: () => Promise<void> } {
  const statuses = new Map<number, number>()
  const stopped = new AbortController()
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = w; !stopped.signal.aborted; i += workers) {
      const block = blocks[i % blocks.length]!
      const res = await fetch(`http://${server.host}:${server.port}/ipfs/${block.cid.toString()}?format=raw`)
      await res.arrayBuffer()
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
    }
  })
  return { statuses, stop: async () => { stopped.abort(); await Promise.all(loops) } }
}

async function blockStatus (server: DagstoreServer, i: number): Promise<number> {
  const res = await fetch(`http://${server.host}:${server.port}/ipfs/${blocks[i]!.cid.toString()}?format=raw`)
  await res.arrayBuffer()
  return res.status
}

async function withServer (dir: string, fn: (store: DAGStore, server: DagstoreServer) => Promise<void>): Promise<void> {
  const { store } = await openStore(dir)
  const errors: unknown[] = []
  const server = await startServer(store, { port: 0, token: TOKEN, onError: (err) => { errors.push(err) } })
  try {
    await store.register('hot', sample())
    await fn(store, server)
    assert.equal(errors, [], 'no errors reported')
  } finally {
    await server.close()
    await store.close()
  }
}

test('DELETE /shards/{key}?drain=1 under continuous gateway load: destroyed, and then no block of it is served', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    const traffic = load(server, 4)
    try {
      await until(() => (traffic.statuses.get(200) ?? 0) >= 20 && store.getShardInfo('hot').refs > 0, 'the gateway to serve the shard')
      const gone = await admin(server, 'DELETE', '/shards/hot?drain=1')
      assert.equal([gone.status, gone.json], [200, { key: 'hot', destroyed: true }])
    } finally {
      await traffic.stop()
    }
    assert.equal([...traffic.statuses.keys()].filter((s) => s !== 200 && s !== 404), [], 'every request was served or not found')
    for (let i = 0; i < blocks.length; i += 50) assert.is(await blockStatus(server, i), 404, `block ${i} after the destroy`)
    assert.is((await admin(server, 'GET', '/shards/hot')).status, 404)
    assert.equal(await store.shardsContainingCid(blocks[0]!.cid), [])
  })
})

test('during a drain: acquires fail with ERR_SHARD_DRAINING, its blocks 404; a client that gives up leaves the shard serving', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    const held = await store.acquire('hot')
    const traffic = load(server, 2)
    try {
      const gaveUp = new AbortController()
      const pending = admin(server, 'DELETE', '/shards/hot?drain=1', gaveUp.signal).catch((err: unknown) => err)
      await until(() => store.getShardInfo('hot').draining === true, 'the drain to start')
      assert.equal((await admin(server, 'GET', '/shards/hot')).json.draining, true)
      assert.is(await codeOf(store.acquire('hot')), 'ERR_SHARD_DRAINING')
      assert.is(await blockStatus(server, 3), 404)

      gaveUp.abort()
      assert.is((await pending as Error).name, 'AbortError')
      await until(() => store.getShardInfo('hot').draining !== true, 'the drain to end')
      assert.is(await blockStatus(server, 3), 200)
      assert.is(store.getShardInfo('hot').state, 'serving')
    } finally {
      await traffic.stop()
      await held.close()
    }
    const bad = await admin(server, 'DELETE', '/shards/hot?drain=maybe')
    assert.equal([bad.status, bad.json.error.code], [400, 'ERR_INVALID_REQUEST'])
  })
})

test.run()
