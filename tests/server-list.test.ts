// GET /shards pages: limit, cursor, state, prefix, against startServer on 127.0.0.1 with a real store.
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { startServer, type DagstoreServer } from '../src/app/server/index.js'
import type { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import type { ShardListJson } from '../src/app/wire.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'

const test = dirSuite('server GET /shards pages')
const TOKEN = 'test-token_0123456789'

/** 250 lazy shards `k000`…`k249`, `other/x`, and one errored `z-broken`. */
async function fill (store: DAGStore): Promise<string[]> {
  const keys = Array.from({ length: 250 }, (_, i) => `k${String(i).padStart(3, '0')}`)
  await Promise.all(keys.map(async (key) => { await store.register(key, new FileMount(fixture('sample-v1.car')), { lazy: true }) }))
  await store.register('other/x', new FileMount(fixture('sample-v1.car')), { lazy: true })
  await store.register('z-broken', new FileMount(fixture('junk.dat'))).catch(() => {})
  return [...keys, 'other/x', 'z-broken']
}

async function get (server: DagstoreServer, path: string): Promise<{ status: number, body: ShardListJson & { error?: { code: string } } }> {
  const res = await fetch(new URL(path, server.url), { headers: { authorization: `Bearer ${TOKEN}` } })
  return { status: res.status, body: await res.json() as ShardListJson & { error?: { code: string } } }
}

async function withServer (dir: string, fn: (store: DAGStore, server: DagstoreServer) => Promise<void>): Promise<void> {
  const { store } = await openStore(join(dir, 'store'))
  let server: DagstoreServer | undefined
  try {
    server = await startServer(store, { port: 0, token: TOKEN })
    await fn(store, server)
  } finally {
    await server?.close()
    await store.close()
  }
}

test('pages of `limit` in key order; following `next` lists every shard once; the default page is 100', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    const all = await fill(store)
    const first = await get(server, '/shards')
    assert.is(first.status, 200)
    assert.equal(first.body.shards.map((s) => s.key), all.slice(0, 100))
    assert.type(first.body.next, 'string')
    const seen: string[] = []
    let path = '/shards?limit=70'
    for (;;) {
      const page = await get(server, path)
      assert.is(page.status, 200)
      assert.ok(page.body.shards.length <= 70)
      seen.push(...page.body.shards.map((s) => s.key))
      if (page.body.next === undefined) break
      path = `/shards?limit=70&cursor=${page.body.next}`
    }
    assert.equal(seen, all)
    // Each entry is the full description, as before paging.
    const broken = await get(server, '/shards?state=errored')
    assert.equal(broken.body.shards.map((s) => [s.key, s.state, s.error?.code]), [['z-broken', 'errored', 'ERR_INVALID_CAR']])
    assert.is(broken.body.next, undefined)
    const prefixed = await get(server, `/shards?prefix=${encodeURIComponent('other/')}`)
    assert.equal(prefixed.body.shards.map((s) => s.key), ['other/x'])
    assert.is(prefixed.body.next, undefined)
    const tail = await get(server, '/shards?prefix=k24&limit=5')
    assert.equal(tail.body.shards.map((s) => s.key), ['k240', 'k241', 'k242', 'k243', 'k244'])
    const rest = await get(server, `/shards?prefix=k24&limit=5&cursor=${String(tail.body.next)}`)
    assert.equal([rest.body.shards.map((s) => s.key), rest.body.next], [['k245', 'k246', 'k247', 'k248', 'k249'], undefined])
    // A cursor stays good after its shard is destroyed.
    const page = await get(server, '/shards?limit=3')
    await store.destroy('k002')
    assert.equal((await get(server, `/shards?limit=2&cursor=${String(page.body.next)}`)).body.shards.map((s) => s.key), ['k003', 'k004'])
  })
})

test('bad queries: ERR_INVALID_CURSOR, ERR_INVALID_REQUEST; listing stays behind the token', async (ctx) => {
  await withServer(ctx.dir, async (_store, server) => {
    const cases: Array<[string, string]> = [
      ['cursor=not%20base64', 'ERR_INVALID_CURSOR'],
      ['cursor=', 'ERR_INVALID_CURSOR'],
      ['cursor=QR', 'ERR_INVALID_CURSOR'], // trailing bits: not the canonical form of any key
      ['cursor=AA', 'ERR_INVALID_CURSOR'], // a NUL byte: no shard key
      ['cursor=_w', 'ERR_INVALID_CURSOR'], // 0xff: not UTF-8
      ['limit=0', 'ERR_INVALID_REQUEST'],
      ['limit=1001', 'ERR_INVALID_REQUEST'],
      ['limit=ten', 'ERR_INVALID_REQUEST'],
      ['state=gone', 'ERR_INVALID_REQUEST'],
      ['states=errored', 'ERR_INVALID_REQUEST'],
      ['limit=1&limit=2', 'ERR_INVALID_REQUEST']
    ]
    for (const [query, code] of cases) {
      const r = await get(server, `/shards?${query}`)
      assert.equal([r.status, r.body.error?.code], [400, code], query)
    }
    const ok = await get(server, `/shards?cursor=${Buffer.from('a ✓').toString('base64url')}&limit=1000`)
    assert.equal([ok.status, ok.body.shards], [200, []])
    const anonymous = await fetch(new URL('/shards', server.url))
    assert.is(anonymous.status, 401)
  })
})

test.run()
