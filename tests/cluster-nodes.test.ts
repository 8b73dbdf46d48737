// Node leases over a real PostgreSQL server (DESIGN §12): the row a node upserts at start, its
// heartbeat by the database's clock, "stopped" at close, `nodes()` (shards by state per node),
// adopt's refusals (alive, unknown, itself) and the lease options' checks.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { postgresBackend } from '../src/postgres.js'
import { CODE } from '../src/base/errors/codes.js'
import { fixture, tempDir } from './helpers/fixtures.js'
import { postgresAvailable, postgresServer, sql } from './helpers/postgres.js'

const codeOf = (err: unknown): unknown => (err as { code?: unknown }).code

if (postgresAvailable('cluster nodes')) {
  const test = suite('cluster nodes: leases, heartbeats, nodes(), adopt refusals')

  test('a node upserts its row, heartbeats by the database clock, and is marked stopped at close', async () => {
    const url = await (await postgresServer()).freshDatabase('nodes_lease')
    const { dir, cleanup } = await tempDir()
    const backend = postgresBackend({ url, node: 'n1', advertise: 'http://127.0.0.1:1', heartbeatMs: 50, leaseMs: 1000 })
    const store = new DAGStore({ dir, backend })
    try {
      await store.start()
      assert.is(store.node, 'n1')
      const first = (await sql<{ heartbeat_at: Date, lease_ms: number }>(url,
        "SELECT heartbeat_at, lease_ms FROM dagstore_nodes WHERE name = 'n1'"))[0]
      assert.is(first?.lease_ms, 1000)
      // The heartbeat moves heartbeat_at forward (the database's now(), not this process's clock).
      for (let i = 0; ; i++) {
        const now = (await sql<{ heartbeat_at: Date }>(url, "SELECT heartbeat_at FROM dagstore_nodes WHERE name = 'n1'"))[0]
        if ((now?.heartbeat_at.getTime() ?? 0) > (first?.heartbeat_at.getTime() ?? 0)) break
        if (i > 200) assert.unreachable('no heartbeat')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      await store.register('s', new FileMount(fixture('sample-v1.car')))
      const [node] = await store.nodes()
      assert.is(node?.name, 'n1')
      assert.is(node?.alive, true)
      assert.is(node?.advertise, 'http://127.0.0.1:1')
      assert.equal(node?.shards, { available: 1 })
      assert.is((await store.describeShard('s')).node, 'n1')
    } finally {
      await store.close()
    }
    const [row] = await sql<{ stopped: boolean }>(url, "SELECT stopped_at IS NOT NULL AS stopped FROM dagstore_nodes WHERE name = 'n1'")
    assert.is(row?.stopped, true)
    // Started again under the same name: alive again.
    const again = new DAGStore({ dir, backend: postgresBackend({ url, node: 'n1' }) })
    try {
      await again.start()
      assert.equal((await again.nodes()).map((n) => [n.name, n.alive, n.shards]), [['n1', true, { available: 1 }]])
    } finally {
      await again.close()
      await cleanup()
    }
  })

  test('adopt: refused while the node is alive (ERR_NODE_ALIVE), for an unknown node, and of itself; moves only http shards', async () => {
    const url = await (await postgresServer()).freshDatabase('nodes_adopt')
    const { dir, cleanup } = await tempDir()
    const a = new DAGStore({ dir: `${dir}/a`, backend: postgresBackend({ url, node: 'a' }) })
    const b = new DAGStore({ dir: `${dir}/b`, backend: postgresBackend({ url, node: 'b' }) })
    try {
      await a.start()
      await b.start()
      await a.register('local', new FileMount(fixture('sample-v1.car')))
      // An http shard of a, registered lazily (its origin is never contacted here).
      await sql(url, "INSERT INTO dagstore_shards (key, owner, state, record) VALUES ('remote', 'a', 'new', $1)",
        [JSON.stringify({ k: 'remote', u: 'http://127.0.0.1:9/x.car', s: 'new', l: 1 })])
      await b.adopt('a').then(() => assert.unreachable('adopted'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_NODE_ALIVE) })
      await b.adopt('nobody').then(() => assert.unreachable('adopted'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_NODE_UNKNOWN) })
      await b.adopt('b').then(() => assert.unreachable('adopted'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_INVALID_ARGUMENT) })
      await a.close()
      assert.equal(await b.adopt('a'), ['remote'])
      assert.is(b.getShardInfo('remote').state, 'new')
      assert.equal((await sql<{ key: string, owner: string }>(url, 'SELECT key, owner FROM dagstore_shards ORDER BY key')),
        [{ key: 'local', owner: 'a' }, { key: 'remote', owner: 'b' }])
      const nodes = await b.nodes()
      assert.equal(nodes.map((n) => [n.name, n.alive, n.shards]), [['a', false, { available: 1 }], ['b', true, { new: 1 }]])
    } finally {
      await a.close()
      await b.close()
      await cleanup()
    }
  })

  test('lease options: positive integers, the lease at least twice the heartbeat; a store without a database has no nodes', async () => {
    for (const o of [{ heartbeatMs: 0 }, { leaseMs: -1 }, { heartbeatMs: 1000, leaseMs: 1500 }]) {
      assert.throws(() => postgresBackend({ url: 'postgres://x/y', node: 'a', ...o }), (err: unknown) => codeOf(err) === CODE.ERR_INVALID_ARGUMENT, JSON.stringify(o))
    }
    const { dir, cleanup } = await tempDir()
    const store = new DAGStore({ dir })
    try {
      await store.start()
      assert.is(store.node, undefined)
      await store.nodes().then(() => assert.unreachable('listed'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_NOT_CLUSTERED) })
      await store.adopt('a').then(() => assert.unreachable('adopted'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_NOT_CLUSTERED) })
    } finally {
      await store.close()
      await cleanup()
    }
  })

  test.run()
}
