// Listings of a clustered store (DESIGN §12, §13): GET /shards and `dagstore ls` (through a
// server, and with --db straight from the database) list every node's shards, each with its
// node; `node=` / --node keeps one node's; paging by key with the opaque cursor, state and
// prefix filters; a filter that few rows match answers short pages with a `next` (bounded work
// per page). Two `serve` processes on one database; lazy shards (nothing is fetched).
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { cli } from './helpers/cli.js'
import { tempDir } from './helpers/fixtures.js'
import { makeNode, startNode, type ServeNode } from './helpers/cluster-nodes.js'
import { postgresAvailable, postgresServer, sql } from './helpers/postgres.js'

interface Listed { key: string, node?: string, state: string, url: string }
interface Page { shards: Listed[], next?: string }

async function page (base: string, query: string): Promise<Page> {
  const res = await fetch(`${base}/shards?${query}`, { signal: AbortSignal.timeout(10_000) })
  assert.is(res.status, 200, `GET /shards?${query}: ${res.status}`)
  return (await res.json()) as Page
}

async function walk (base: string, query: string): Promise<{ shards: Listed[], pages: Page[] }> {
  const pages: Page[] = []
  let cursor: string | undefined
  do {
    const p = await page(base, query + (cursor === undefined ? '' : `&cursor=${cursor}`))
    pages.push(p)
    cursor = p.next
  } while (cursor !== undefined)
  return { shards: pages.flatMap((p) => p.shards), pages }
}

const pairs = (shards: Listed[]): Array<[string, string | undefined]> => shards.map((s) => [s.key, s.node])

if (postgresAvailable('cluster listings')) {
  const test = suite('cluster: listings say the owner')

  test('GET /shards and ls list every node\'s shards with their node; node, state, prefix filters; paging; bounded pages', async () => {
    const db = await (await postgresServer()).freshDatabase('cluster_list')
    const { dir, cleanup } = await tempDir()
    const nodes: ServeNode[] = []
    try {
      for (const name of ['a', 'b']) nodes.push(await makeNode(`node-${name}`, join(dir, name)))
      await Promise.all(nodes.map(async (n) => { await startNode(n, db, dir) }))
      const [a, b] = nodes as [ServeNode, ServeNode]
      const owners: Record<string, ServeNode> = { 'x-1': a, 'x-3': a, 'y-1': a, 'x-2': b, 'y-2': b, z: b }
      for (const [key, node] of Object.entries(owners)) {
        const res = await fetch(`${node.url}/shards`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ key, url: `http://user:secret@127.0.0.1:9/${key}.car`, lazy: true })
        })
        assert.is(res.status, 201, `register ${key}: ${await res.text()}`)
      }
      const everything: Array<[string, string]> = [
        ['x-1', 'node-a'], ['x-2', 'node-b'], ['x-3', 'node-a'], ['y-1', 'node-a'], ['y-2', 'node-b'], ['z', 'node-b']
      ]

      // Every node lists every shard, with its owner; another node's URL is redacted as its own are.
      for (const node of nodes) {
        const listed = await page(node.url, 'limit=100')
        assert.equal(pairs(listed.shards), everything, `GET /shards on ${node.name}`)
        assert.is(listed.next, undefined)
        for (const s of listed.shards) assert.not.match(s.url, /secret/)
        assert.ok(listed.shards.every((s) => s.state === 'new'), 'lazy shards, never acquired')
      }
      assert.equal(pairs((await page(a.url, 'node=node-b')).shards), everything.filter(([, n]) => n === 'node-b'))
      assert.equal(pairs((await page(b.url, 'prefix=x-')).shards), everything.filter(([k]) => k.startsWith('x-')))
      assert.equal(pairs((await page(b.url, 'prefix=x-&node=node-a')).shards), [['x-1', 'node-a'], ['x-3', 'node-a']])
      assert.equal((await page(a.url, 'state=available')).shards, [])
      assert.equal(pairs((await page(a.url, 'state=new&node=node-b')).shards), everything.filter(([, n]) => n === 'node-b'))
      const paged = await walk(a.url, 'limit=2')
      assert.equal(pairs(paged.shards), everything, 'pages of two, in key order, nothing twice')
      assert.equal(paged.pages.map((p) => p.shards.length), [2, 2, 2])
      const unknown = await fetch(`${a.url}/shards?node=`)
      assert.is(unknown.status, 400)

      // ls through the running server, and with --db from the database (no repo opened).
      let ls = await cli(['ls', '--dir', a.dir, '--json'])
      assert.is(ls.code, 0, ls.stderr)
      assert.equal(pairs((JSON.parse(ls.stdout) as Page).shards), everything)
      ls = await cli(['ls', '--dir', b.dir, '--node', 'node-a'])
      assert.is(ls.code, 0, ls.stderr)
      assert.match(ls.stdout, /^KEY\s+STATE\s+REFS\s+SIZE\s+NODE/)
      assert.equal(ls.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['x-1', 'x-3', 'y-1'])
      const empty = join(dir, 'no-repo')
      ls = await cli(['ls', '--db', db, '--dir', empty, '--json'])
      assert.is(ls.code, 0, ls.stderr)
      assert.equal(pairs((JSON.parse(ls.stdout) as Page).shards), everything)
      assert.not.match(ls.stdout, /secret/)
      ls = await cli(['ls', '--dir', empty, '--node', 'node-b', '--limit', '2', '--json'], { env: { DAGSTORE_DB: db } })
      assert.is(ls.code, 0, ls.stderr)
      const first = JSON.parse(ls.stdout) as Page
      assert.equal(pairs(first.shards), [['x-2', 'node-b'], ['y-2', 'node-b']])
      ls = await cli(['ls', '--db', db, '--dir', empty, '--node', 'node-b', '--limit', '2', '--cursor', first.next ?? '', '--json'])
      assert.equal(pairs((JSON.parse(ls.stdout) as Page).shards), [['z', 'node-b']])
      // A repo without a database has no nodes to filter by.
      ls = await cli(['ls', '--dir', join(dir, 'plain'), '--node', 'node-a'])
      assert.is(ls.code, 1)
      assert.match(ls.stderr, /ERR_NOT_CLUSTERED/)

      // Bounded work per page: 5,000 more shards of node-b, two of them errored, far apart. A
      // state filter answers a short page with a `next` rather than scanning the whole table.
      await sql(db, `INSERT INTO dagstore_shards (key, owner, state, record)
        SELECT k, 'node-b', CASE WHEN i IN (1, 5000) THEN 'errored' ELSE 'available' END,
          json_build_object('k', k, 'u', 'http://127.0.0.1:9/' || k, 's', CASE WHEN i IN (1, 5000) THEN 'errored' ELSE 'available' END, 'e', 'gone')::text
        FROM (SELECT i, 'bulk-' || lpad(i::text, 5, '0') AS k FROM generate_series(1, 5000) AS i) AS t`)
      const errored = await walk(a.url, 'state=errored&limit=10')
      assert.equal(errored.shards.map((s) => s.key), ['bulk-00001', 'bulk-05000'])
      assert.ok(errored.pages.length >= 2, 'the two are found on different pages')
      assert.equal(errored.shards.map((s) => s.node), ['node-b', 'node-b'])
      assert.equal((errored.shards[0] as { error?: { message: string } }).error?.message, 'gone')
      assert.is((await walk(b.url, 'limit=1000')).shards.length, 5006)

      // Commands that act on shards take the server's own from the listing, not the cluster's.
      const recover = await cli(['recover', '--all-errored', '--dir', a.dir, '--json'])
      assert.is(recover.code, 0, recover.stderr + recover.stdout)
      const verify = await cli(['verify', '--all', '--dir', a.dir, '--json'])
      assert.is(verify.code, 0, verify.stderr + verify.stdout)
      assert.equal(JSON.parse(recover.stdout), { shards: [], errors: [] }, 'node-a has no errored shard (node-b has two)')
      assert.equal(JSON.parse(verify.stdout), { shards: [] }, 'node-a\'s three are lazy: nothing to verify')
    } finally {
      await Promise.all(nodes.map(async (n) => await n.serve?.kill()))
      await cleanup()
    }
  })

  test.run()
}
