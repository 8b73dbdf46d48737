// Three `dagstore serve` processes on one PostgreSQL database (DESIGN §12), each with its own
// repo dir, name and advertised port: shards registered on each (local files and http URLs of
// an origin in this test), every block fetched through every node byte-identical, racing
// registers of one key, kill -9 of a node (its http shards stay served by the others, its
// local files answer 503 with Retry-After), its restart, adopt, destroy, nodes, and a node
// restarted on an empty dir.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { cli, spawnServe, type Running } from './helpers/cli.js'
import { tempDir } from './helpers/fixtures.js'
import { encodeCar, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { serve as serveHttp, type TestServer } from './helpers/http-server.js'
import { rangeOrigin } from './helpers/range-origin.js'
import { postgresAvailable, postgresServer, sql } from './helpers/postgres.js'
import { freePort } from './helpers/net.js'

interface Node { name: string, dir: string, port: number, url: string, serve: Running | undefined }

/** Six shards, each of its own blocks: CARv1 and CARv2 (with an index), local and remote. */
function makeShards (): Array<{ key: string, node: string, remote: boolean, bytes: Uint8Array, blocks: Block[] }> {
  const out = []
  let seed = 1
  for (const node of ['a', 'b', 'c']) {
    for (const remote of [false, true]) {
      const blocks = Array.from({ length: 12 }, (_, i) => makeBlock('raw', patterned(200 + 97 * i, seed++)))
      const car = encodeCar(blocks, { version: remote ? 2 : 1 })
      out.push({ key: `${node}-${remote ? 'http' : 'file'}`, node, remote, bytes: car.bytes, blocks })
    }
  }
  return out
}

async function raw (base: string, block: Block, headers: Record<string, string> = {}): Promise<Response> {
  // A hang fails the test (the gateway must answer, 503 at worst), without timing anything.
  return await fetch(`${base}/ipfs/${block.cid.toString()}?format=raw`, { headers, signal: AbortSignal.timeout(10_000) })
}

async function assertServed (base: string, blocks: Block[], label: string): Promise<void> {
  for (const block of blocks) {
    const res = await raw(base, block)
    const body = Buffer.from(await res.arrayBuffer())
    assert.is(res.status, 200, `${label}: ${block.cid.toString()} → ${res.status} ${body.toString()}`)
    assert.ok(body.equals(block.bytes), `${label}: ${block.cid.toString()} byte-identical`)
  }
}

async function errorOf (res: Response): Promise<{ code: string, message: string }> {
  return ((await res.json()) as { error: { code: string, message: string } }).error
}

if (postgresAvailable('cluster')) {
  const test = suite('cluster: 3 serve processes on one database')

  test('any node answers any CID; races; kill -9; restart; adopt; destroy; nodes; empty-dir restart', async () => {
    const db = await (await postgresServer()).freshDatabase('cluster')
    const { dir, cleanup } = await tempDir()
    const shards = makeShards()
    const files = join(dir, 'files')
    await mkdir(files)
    const paths = new Map<string, Uint8Array>()
    for (const s of shards) if (s.remote) paths.set(`/${s.key}.car`, s.bytes)
    const origin: TestServer = await serveHttp((req, res, n) => {
      const body = paths.get(req.url ?? '')
      if (body === undefined) { res.writeHead(404); res.end(); return }
      rangeOrigin({ body, etag: `"${req.url ?? ''}"`, ranges: true })(req, res, n)
    })
    const originBase = origin.url.replace(/\/[^/]*$/, '')
    const nodes: Node[] = []
    const start = async (node: Node): Promise<void> => {
      const started = await spawnServe(node.dir, [
        '--no-auth', '--allow-root', files, '--listen', `127.0.0.1:${node.port}`,
        '--db', db, '--node', node.name, '--advertise', `http://127.0.0.1:${node.port}`
      ])
      node.serve = started.serve
      node.url = started.url
    }
    try {
      for (const name of ['a', 'b', 'c']) {
        const port = await freePort()
        nodes.push({ name: `node-${name}`, dir: join(dir, name), port, url: '', serve: undefined })
      }
      await Promise.all(nodes.map(start))
      const [a, b, c] = nodes as [Node, Node, Node]
      const nodeOf = (s: { node: string }): Node => nodes.find((n) => n.name === `node-${s.node}`) as Node

      // Registered on their nodes: local files and http URLs.
      for (const s of shards) {
        let url: string
        if (s.remote) {
          url = `${originBase}/${s.key}.car`
        } else {
          const path = join(files, `${s.key}.car`)
          await writeFile(path, s.bytes)
          url = pathToFileURL(path).href
        }
        const res = await fetch(`${nodeOf(s).url}/shards`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: s.key, url })
        })
        assert.is(res.status, 201, `register ${s.key}: ${await res.text()}`)
      }
      const listed = (await (await fetch(`${a.url}/shards?node=node-a`)).json()) as { shards: Array<{ key: string, node?: string }> }
      assert.equal(listed.shards.map((s) => [s.key, s.node]), [['a-file', 'node-a'], ['a-http', 'node-a']], 'listings say the owner')

      // Every block of every shard through every node, byte-identical.
      for (const node of nodes) for (const s of shards) await assertServed(node.url, s.blocks, `${s.key} via ${node.name}`)
      // A proxied CAR keeps its format.
      const carBlock = (shards[0] as { blocks: Block[] }).blocks[0] as Block
      const car = await fetch(`${b.url}/ipfs/${carBlock.cid.toString()}?format=car`, { signal: AbortSignal.timeout(10_000) })
      assert.is(car.status, 200)
      assert.match(car.headers.get('content-type') ?? '', /^application\/vnd\.ipld\.car/)
      assert.ok(Buffer.from(await car.arrayBuffer()).includes(Buffer.from(carBlock.bytes)))
      // The loop guard: a request another node proxied is never sent on.
      const guarded = await raw(b.url, carBlock, { 'x-dagstore-proxied-by': 'node-c' })
      assert.is(guarded.status, 503)
      assert.is((await errorOf(guarded)).code, 'ERR_OWNER_UNAVAILABLE')
      // find works cluster-wide.
      const found = await cli(['find', carBlock.cid.toString(), '--dir', c.dir, '--json'])
      assert.is(found.code, 0, found.stderr)
      assert.equal((JSON.parse(found.stdout) as { shards: string[] }).shards, ['a-file'])

      // Racing registers of one key on two nodes: exactly one wins.
      const race = await Promise.all([a, b].map(async (n) => await fetch(`${n.url}/shards`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: 'race', url: `${originBase}/a-http.car`, lazy: true })
      })))
      assert.equal(race.map((r) => r.status).sort(), [201, 409])
      const loser = race.find((r) => r.status === 409) as Response
      assert.is((await errorOf(loser)).code, 'ERR_SHARD_EXISTS')
      assert.is((await sql(db, "SELECT owner FROM dagstore_shards WHERE key = 'race'")).length, 1)

      // kill -9 of node a: its http shards stay served by the others, its local files answer 503 at once.
      await a.serve?.stop('SIGKILL')
      const aFile = shards.find((s) => s.key === 'a-file') as { blocks: Block[] }
      const aHttp = shards.find((s) => s.key === 'a-http') as { blocks: Block[] }
      for (const node of [b, c]) {
        await assertServed(node.url, aHttp.blocks, `a-http via ${node.name} with node-a dead`)
        const res = await raw(node.url, aFile.blocks[0] as Block)
        assert.is(res.status, 503)
        assert.is(res.headers.get('retry-after'), '5')
        assert.is((await errorOf(res)).code, 'ERR_OWNER_UNAVAILABLE')
      }
      // Its lease is still current: adopt is refused.
      let adopt = await cli(['adopt', '--from', 'node-a', '--dir', b.dir])
      assert.is(adopt.code, 1)
      assert.match(adopt.stderr, /ERR_NODE_ALIVE/)

      // Restarted (same name, same dir): all served again.
      await start(a)
      for (const node of nodes) await assertServed(node.url, [...aFile.blocks, ...aHttp.blocks], `node-a's shards via ${node.name} after its restart`)

      // Destroy on one node: no node finds the blocks.
      const bHttp = shards.find((s) => s.key === 'b-http') as { blocks: Block[] }
      assert.is((await fetch(`${b.url}/shards/b-http`, { method: 'DELETE' })).status, 200)
      for (const node of nodes) {
        const res = await raw(node.url, bHttp.blocks[0] as Block)
        assert.is(res.status, 404, `b-http's block via ${node.name} after the destroy`)
      }

      // node-a dies again and its lease runs out (made so in the database, as time would): adopt.
      await a.serve?.stop('SIGKILL')
      await sql(db, "UPDATE dagstore_nodes SET heartbeat_at = now() - interval '1 hour' WHERE name = 'node-a'")
      const stale = await raw(c.url, aFile.blocks[0] as Block)
      assert.is(stale.status, 503)
      assert.match((await errorOf(stale)).message, /down/)
      adopt = await cli(['adopt', '--from', 'node-a', '--dir', b.dir, '--json'])
      assert.is(adopt.code, 0, adopt.stderr)
      const aWonRace = race[0]?.status === 201
      assert.equal(JSON.parse(adopt.stdout), { from: 'node-a', node: 'node-b', shards: aWonRace ? ['a-http', 'race'] : ['a-http'] })
      const info = (await (await fetch(`${b.url}/shards/a-http`)).json()) as { state: string, node: string }
      assert.is(info.node, 'node-b')
      assert.is(info.state, 'available')
      await assertServed(b.url, aHttp.blocks, 'a-http adopted by node-b')
      const ls = await cli(['ls', '--dir', b.dir])
      assert.is(ls.code, 0, ls.stderr)
      assert.match(ls.stdout, /^KEY\s+STATE\s+REFS\s+SIZE\s+NODE/)
      assert.match(ls.stdout, /^a-http\s+\S+\s+\d+\s+\S+( \S+)?\s+node-b/m)
      await assertServed(c.url, aHttp.blocks, 'a-http via node-c, owned by node-b')

      const listedNodes = await cli(['nodes', '--json', '--dir', c.dir])
      assert.is(listedNodes.code, 0, listedNodes.stderr)
      type NodesOut = { nodes: Array<{ name: string, alive: boolean, shards: Record<string, number> }> }
      const byName = new Map((JSON.parse(listedNodes.stdout) as NodesOut).nodes.map((n) => [n.name, n]))
      assert.equal([...byName.keys()], ['node-a', 'node-b', 'node-c'])
      assert.equal([...byName.values()].map((n) => n.alive), [false, true, true])
      assert.equal(byName.get('node-a')?.shards, { available: 1 }, 'node-a keeps its local file')
      assert.equal(byName.get('node-c')?.shards, { available: 2 })

      // node-c restarted on an empty dir resumes its shards.
      await c.serve?.stop()
      c.dir = join(dir, 'c-again')
      await start(c)
      const cShards = shards.filter((s) => s.node === 'c')
      for (const s of cShards) await assertServed(c.url, s.blocks, `${s.key} via node-c on an empty dir`)
      const cListed = (await (await fetch(`${c.url}/shards?node=node-c`)).json()) as { shards: Array<{ key: string }> }
      assert.equal(cListed.shards.map((s) => s.key), ['c-file', 'c-http'])
    } finally {
      await Promise.all(nodes.map(async (n) => await n.serve?.kill()))
      await origin.close()
      await cleanup()
    }
  })

  test.run()
}
