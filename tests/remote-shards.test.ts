// Remote shards through the store: HttpMount behind a real HTTP server on 127.0.0.1.
import * as assert from 'uvu/assert'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { HttpMount } from '../src/storage/mount/http.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, recordTraces, until } from './helpers/store.js'
import { serve, standard } from './helpers/http-server.js'
import { at } from './helpers/assert.js'

const sample = await readFile(fixture('sample-v1.car'))
const test = dirSuite('remote shards')

test('50 acquirers of one lazy remote shard: one download, all served the same bytes', async (ctx) => {
  const srv = await serve(standard(sample))
  const { store } = await openStore(ctx.dir)
  try {
    // Copied (the origin honours Range): the test is about one shared download.
    await store.register('remote', new HttpMount(srv.url), { lazy: true, copy: 'always' })
    const accs = await Promise.all(Array.from({ length: 50 }, async () => await store.acquire('remote')))
    assert.is(srv.log.filter((r) => r.method === 'GET').length, 1, 'one download')
    assert.equal(store.getShardInfo('remote'), { state: 'serving', refs: 50 })
    const roots: Uint8Array[] = []
    for (const acc of accs) {
      for await (const cid of acc.blockstore().allKeys()) { roots.push(await acc.blockstore().get(cid)); break }
    }
    for (const r of roots) assert.equal(new Uint8Array(r), new Uint8Array(at(roots, 0)))
    await Promise.all(accs.map(async (a) => { await a.close() }))
    assert.equal(store.getShardInfo('remote'), { state: 'available', refs: 0 })
  } finally {
    await store.close()
    await srv.close()
  }
})

test('a failed download leaves no .partial, fails every waiter, and the shard recovers once the server is back', async (ctx) => {
  let healthy = false
  const good = standard(sample)
  const srv = await serve((req, res, n) => {
    if (healthy) { good(req, res, n); return }
    res.writeHead(500)
    res.end()
  })
  const { store } = await openStore(ctx.dir)
  const t = recordTraces(store)
  try {
    // Few retries with a short backoff keep the failing phase quick.
    const mount = new HttpMount(srv.url, { retries: 1, backoffMs: 1 })
    const results = await Promise.allSettled([
      store.register('flaky', mount),
      store.acquire('flaky'),
      store.acquire('flaky')
    ])
    for (const r of results) assert.is(r.status, 'rejected')
    assert.is(store.getShardInfo('flaky').state, 'errored')
    assert.equal((await readdir(join(ctx.dir, 'transients'))).filter((f) => f.endsWith('.partial')), [])
    healthy = true
    await store.recover('flaky')
    const acc = await store.acquire('flaky')
    let bytes = 0
    for await (const chunk of acc.reader()) bytes += chunk.length
    assert.is(bytes, sample.byteLength)
    await acc.close()
    await until(() => t.ops('flaky').includes('makeAvailable:available'))
  } finally {
    await store.close()
    await srv.close()
  }
})

test.run()
