// A real DAGStore over the PostgreSQL backend and a real server: the schema's migrations
// (concurrent too), register / acquire / blocks / restart on an empty dir / destroy, keys
// decided cluster-wide by the database (two stores racing for one key: exactly one wins), and
// a commit that fails (the database refuses writes) delivers no result until a retry lands.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { migrateDatabase, postgresBackend, SCHEMA_VERSION } from '../src/postgres.js'
import { CODE } from '../src/base/errors/codes.js'
import type { ShardIndex } from '../src/base/index-types.js'
import { SortedIndex } from '../src/format/index/sorted-index.js'
import { carBlocks, fixture, tempDir } from './helpers/fixtures.js'
import { until, type Reported } from './helpers/store.js'
import { postgresAvailable, postgresServer, sql } from './helpers/postgres.js'

const SAMPLE = 'sample-v1.car'

interface Node { store: DAGStore, reported: Reported[], dir: string, cleanup: () => Promise<void> }

async function startNode (url: string, node: string, dir?: string): Promise<Node> {
  const temp = dir === undefined ? await tempDir() : { dir, cleanup: async () => {} }
  const reported: Reported[] = []
  const store = new DAGStore({
    dir: temp.dir,
    backend: postgresBackend({ url, node }),
    onError: (err, context) => { reported.push({ err, context }) }
  })
  await store.start()
  return { store, reported, dir: temp.dir, cleanup: temp.cleanup }
}

const codeOf = (err: unknown): unknown => (err as { code?: unknown }).code

if (postgresAvailable('PostgreSQL store')) {
  const fresh = async (label: string): Promise<string> => await (await postgresServer()).freshDatabase(label)

  const schema = suite('PostgreSQL schema')

  schema('migrations: concurrent migrators all succeed, the schema is applied once; again changes nothing', async () => {
    const url = await fresh('migrate')
    const results = await Promise.all(Array.from({ length: 4 }, async () => await migrateDatabase({ url })))
    for (const r of results) assert.is(r.version, SCHEMA_VERSION)
    const every = Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1)
    assert.equal(results.flatMap((r) => r.applied).sort(), every, 'exactly one migrator applied each version')
    assert.equal((await migrateDatabase({ url })).applied, [])
    const tables = (await sql<{ table_name: string }>(url,
      "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'dagstore_%' ORDER BY table_name")).map((r) => r.table_name)
    assert.equal(tables, ['dagstore_blocks', 'dagstore_indices', 'dagstore_nodes', 'dagstore_schema', 'dagstore_shards', 'dagstore_tombstones'])
  })

  schema('a database whose schema is newer than the code is refused with ERR_SCHEMA_VERSION', async () => {
    const url = await fresh('too_new')
    await migrateDatabase({ url })
    await sql(url, 'INSERT INTO dagstore_schema (version) VALUES ($1)', [SCHEMA_VERSION + 1])
    await migrateDatabase({ url }).then(() => assert.unreachable('migrated'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_SCHEMA_VERSION) })
    const { dir, cleanup } = await tempDir()
    const store = new DAGStore({ dir, backend: postgresBackend({ url, node: 'a' }) })
    await store.start().then(() => assert.unreachable('started'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_SCHEMA_VERSION) })
    await cleanup()
  })

  schema('bad options fail at once with ERR_INVALID_ARGUMENT; backend excludes datastore/indexRepo/topLevelIndex', async () => {
    for (const o of [{ url: '', node: 'a' }, { url: 'postgres://x/y', node: '' }, { url: 'postgres://x/y', node: 'a\nb' },
      { url: 'postgres://x/y', node: 'a', advertise: 'ftp://x' }, { url: 'postgres://x/y', node: 'a', max: 0 }]) {
      assert.throws(() => postgresBackend(o), (err: unknown) => codeOf(err) === CODE.ERR_INVALID_ARGUMENT, JSON.stringify(o))
    }
    const { MemoryIndexRepo } = await import('../src/storage/index/memory-repo.js')
    assert.throws(() => new DAGStore({ dir: '/tmp/x', backend: postgresBackend({ url: 'postgres://x/y', node: 'a' }), indexRepo: new MemoryIndexRepo() }),
      /backend/)
  })

  schema('one table for both indices: the top-level add after a full index writes only the pairs it lacks', async () => {
    const url = await fresh('one_table')
    const backend = postgresBackend({ url, node: 'node-a' })
    const { indexRepo, topLevelIndex } = await backend.open()
    try {
      const mh = (i: number): Uint8Array => Uint8Array.of(0x12, 0x02, i, i)
      await indexRepo.add('k', SortedIndex.from([0, 1, 2].map((i) => ({ multihash: mh(i), offset: 100 * i }))))
      await topLevelIndex.addMultihashesForShard('k', [mh(0), mh(1), mh(2), mh(9)])
      const rows = await sql<{ mh: string, pos: number }>(url, "SELECT encode(multihash, 'hex') AS mh, pos::int AS pos FROM dagstore_blocks WHERE shard = 'k' ORDER BY multihash")
      assert.equal(rows, [{ mh: '12020000', pos: 0 }, { mh: '12020101', pos: 100 }, { mh: '12020202', pos: 200 }, { mh: '12020909', pos: -1 }])
      assert.equal(await topLevelIndex.shardsForMultihash(mh(9)), ['k'])
      assert.equal([...await indexRepo.get('k')].map((e) => e.offset), [0, 100, 200], 'a top-level-only pair is no full-index entry')
      assert.equal(await backend.locate(mh(1)), [{ shard: 'k', offset: 100, owner: undefined }])
      await topLevelIndex.removeShard('k')
      assert.equal(await topLevelIndex.shardsForMultihash(mh(1)), [])
      assert.is(await indexRepo.drop('k'), true)
      assert.equal((await indexRepo.stat('k')).exists, false)
    } finally {
      await backend.close()
    }
  })

  schema.run()

  const store = suite('PostgreSQL store')

  store('register, acquire, blocks; one row per block; restart on an empty dir resumes; destroy removes every row', async () => {
    const url = await fresh('store')
    const expected = await carBlocks(SAMPLE)
    const a = await startNode(url, 'node-a')
    await a.store.register('eager', new FileMount(fixture(SAMPLE)))
    await a.store.register('lazy', new FileMount(fixture(SAMPLE)), { lazy: true })
    const acc = await a.store.acquire('eager')
    for (const { cid, bytes } of expected) assert.ok(Buffer.from(await acc.blockstore().get(cid)).equals(bytes), cid.toString())
    await acc.close()
    const first = expected[0]
    assert.ok(first !== undefined)
    assert.equal(await a.store.shardsContainingCid(first.cid), ['eager'])

    const index: ShardIndex = await a.store.getIterableIndex('eager')
    const rows = await sql<{ n: number, top: number }>(url,
      "SELECT count(*)::int AS n, count(*) FILTER (WHERE pos < 0)::int AS top FROM dagstore_blocks WHERE shard = 'eager'")
    assert.equal(rows[0], { n: index.size, top: 0 }, 'one row per block, none written by the top-level index on its own')
    const owners = await sql<{ key: string, owner: string, state: string }>(url, 'SELECT key, owner, state FROM dagstore_shards ORDER BY key')
    assert.equal(owners, [{ key: 'eager', owner: 'node-a', state: 'available' }, { key: 'lazy', owner: 'node-a', state: 'new' }])
    await a.store.close()
    await a.cleanup()

    // Same node, empty dir: the shards come back from the database.
    const again = await startNode(url, 'node-a')
    assert.equal(again.store.getShardInfo('eager'), { state: 'available', refs: 0 })
    assert.equal(again.store.getShardInfo('lazy'), { state: 'new', refs: 0 })
    const lazy = await again.store.acquire('lazy')
    for (const { cid, bytes } of expected) assert.ok(Buffer.from(await lazy.blockstore().get(cid)).equals(bytes), cid.toString())
    await lazy.close()

    await again.store.destroy('eager')
    for (const table of ['dagstore_blocks', 'dagstore_indices']) {
      assert.equal(await sql(url, `SELECT 1 FROM ${table} WHERE shard = 'eager'`), [], `${table} has no row of a destroyed shard`)
    }
    assert.equal(await sql(url, "SELECT 1 FROM dagstore_shards WHERE key = 'eager'"), [])
    assert.equal(await sql(url, 'SELECT 1 FROM dagstore_tombstones'), [], 'the destroy finished its cleanup')
    assert.equal(await again.store.shardsContainingCid(first.cid), ['lazy'])
    await again.store.close()
    await again.cleanup()
  })

  store('each node loads only its own shards; a key any node holds is ShardExistsError, decided by the database', async () => {
    const url = await fresh('owners')
    const a = await startNode(url, 'node-a')
    const b = await startNode(url, 'node-b')
    await a.store.register('mine', new FileMount(fixture(SAMPLE)), { lazy: true })
    await b.store.register('yours', new FileMount(fixture(SAMPLE)), { lazy: true })
    // node-b has never seen 'mine' in memory: the register reaches the database and is refused there.
    await b.store.register('mine', new FileMount(fixture(SAMPLE)), { lazy: true })
      .then(() => assert.unreachable('registered'), (err: unknown) => { assert.is(codeOf(err), CODE.ERR_SHARD_EXISTS) })
    assert.throws(() => b.store.getShardInfo('mine'), (err: unknown) => codeOf(err) === CODE.ERR_SHARD_UNKNOWN, 'the loser keeps nothing')
    assert.equal([...a.store.allShardsInfo().keys()], ['mine'])
    assert.equal([...b.store.allShardsInfo().keys()], ['yours'])
    await b.store.close()
    const b2 = await startNode(url, 'node-b')
    assert.equal([...b2.store.allShardsInfo().keys()], ['yours'], 'a restart loads only the node\'s own shards')
    await Promise.all([a.store.close(), b2.store.close()])
    await Promise.all([a.cleanup(), b.cleanup(), b2.cleanup()])
  })

  store('two stores racing for the same keys: exactly one wins each; the losers\' other registers in the same batches land', async () => {
    const url = await fresh('race')
    const a = await startNode(url, 'node-a')
    const b = await startNode(url, 'node-b')
    const keys = Array.from({ length: 40 }, (_, i) => `contested-${i}`)
    const mount = (): FileMount => new FileMount(fixture(SAMPLE))
    const settle = async (node: Node, key: string): Promise<string> =>
      await node.store.register(key, mount(), { lazy: true }).then(() => 'won', (err: unknown) => String(codeOf(err)))
    const [ra, rb, own] = await Promise.all([
      Promise.all(keys.map(async (k) => await settle(a, k))),
      Promise.all(keys.map(async (k) => await settle(b, k))),
      Promise.all(Array.from({ length: 40 }, async (_, i) => await settle(b, `own-${i}`)))
    ])
    const winners = new Map<string, string>()
    keys.forEach((k, i) => {
      const outcome = [ra[i], rb[i]].sort()
      assert.equal(outcome, [CODE.ERR_SHARD_EXISTS, 'won'], `${k}: one winner, one ShardExistsError`)
      winners.set(k, ra[i] === 'won' ? 'node-a' : 'node-b')
    })
    assert.ok(own.every((o) => o === 'won'), 'registers of free keys are not affected by the refused ones')
    const rows = await sql<{ key: string, owner: string }>(url, "SELECT key, owner FROM dagstore_shards WHERE key LIKE 'contested-%'")
    assert.is(rows.length, keys.length)
    for (const row of rows) assert.is(row.owner, winners.get(row.key), `${row.key} is held by its winner`)
    for (const k of keys) {
      const holder = winners.get(k) === 'node-a' ? a : b
      const other = holder === a ? b : a
      assert.is(holder.store.getShardInfo(k).state, 'new')
      assert.throws(() => other.store.getShardInfo(k), (err: unknown) => codeOf(err) === CODE.ERR_SHARD_UNKNOWN)
    }
    const counts = { a: a.store.stats().new, b: b.store.stats().new }
    assert.is(counts.a + counts.b, keys.length + 40, 'the losers\' shards left the counts too')
    await Promise.all([a.store.close(), b.store.close()])
    await Promise.all([a.cleanup(), b.cleanup()])
  })

  store('a commit the database refuses delivers no result; the retry that lands does; dropped connections are replaced', async () => {
    const url = await fresh('failing')
    const a = await startNode(url, 'node-a')
    await sql(url, 'ALTER TABLE dagstore_shards RENAME TO dagstore_shards_away')
    let settled = false
    const registered = a.store.register('held', new FileMount(fixture(SAMPLE)), { lazy: true }).finally(() => { settled = true })
    await until(() => a.reported.some((r) => r.context === 'persisting shard state failed'), 'a failed commit')
    assert.is(settled, false, 'no result for a write that did not commit')
    await sql(url, 'ALTER TABLE dagstore_shards_away RENAME TO dagstore_shards')
    await registered
    assert.equal(await sql(url, "SELECT owner FROM dagstore_shards WHERE key = 'held'"), [{ owner: 'node-a' }])
    // The server drops every connection of the store's pool (as a restart would): the next
    // commits go through on new ones.
    const dropped = await sql(url, 'SELECT pg_terminate_backend(pid) AS gone FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')
    assert.ok(dropped.length > 0, 'the store had connections open')
    await a.store.register('after-drop', new FileMount(fixture(SAMPLE)))
    assert.equal(await sql(url, "SELECT state FROM dagstore_shards WHERE key = 'after-drop'"), [{ state: 'available' }])
    await a.store.close()
    await a.cleanup()
  })

  store.run()
}
