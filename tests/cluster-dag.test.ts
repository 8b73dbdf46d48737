// One DAG whose blocks sit in local files of two nodes, read through a third (DESIGN §12): the
// root's owner gets the request (one proxied hop), every other block the walk needs is fetched
// from the node owning it, hash-verified; the CARs are byte-identical to a single store's. With
// one owner killed: a root it held answers 503 with Retry-After at once; a DAG whose root is
// alive but whose blocks it held is cut mid-stream, as a missing block is. `find` and the
// blockstore list both nodes' shards holding a block they share.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { createGateway } from '../src/app/server/gateway.js'
import { cli } from './helpers/cli.js'
import { tempDir } from './helpers/fixtures.js'
import { listen, serveGateway } from './helpers/gateway.js'
import { buildFixture } from './helpers/dag-oracle.js'
import { writerCar, type Block } from './helpers/car-gen.js'
import { makeNode, registerOn, startNode, type ServeNode } from './helpers/cluster-nodes.js'
import { postgresAvailable, postgresServer } from './helpers/postgres.js'
import { call } from './helpers/net.js'

if (postgresAvailable('cluster DAG')) {
  const test = suite('cluster: one DAG over several nodes\' files')

  test('a CAR of a DAG spread over two nodes\' files, through a third node, is the single store\'s CAR; an owner killed', async () => {
    const db = await (await postgresServer()).freshDatabase('cluster_dag')
    const { dir, cleanup } = await tempDir()
    const fx = await buildFixture()
    const files = join(dir, 'files')
    await mkdir(files)
    // Three files: part-0 and part-2 on node a, part-1 on node b. The file's root on b, the
    // directory's root on a, the rest round robin; one leaf in a's and b's files both.
    const parts: Block[][] = [[], [], []]
    const fileRoot = fx.file.cid.toString()
    const dirRoot = fx.dir.toString()
    let i = 0
    for (const block of fx.blocks.map.values()) {
      const s = block.cid.toString()
      const n = s === fileRoot ? 1 : s === dirRoot ? 0 : i++ % 3
      parts[n]?.push(block)
    }
    const shared = parts[2]?.find((b) => b.cid.code === 0x55) as Block
    parts[1]?.push(shared)
    const paths: string[] = []
    for (const [n, blocks] of parts.entries()) {
      const path = join(files, `part-${n}.car`)
      await writeFile(path, await writerCar(blocks))
      paths.push(path)
    }

    // The single store's answers, for comparison.
    const single = new DAGStore({ dir: join(dir, 'single') })
    await single.start()
    for (const [n, path] of paths.entries()) await single.register(`part-${n}`, new FileMount(path))
    const singleGateway = createGateway(single)
    const singleServer = await listen((req, res) => { serveGateway(singleGateway, req, res) })

    const nodes: ServeNode[] = []
    try {
      for (const name of ['a', 'b', 'c']) nodes.push(await makeNode(`node-${name}`, join(dir, name)))
      await Promise.all(nodes.map(async (n) => { await startNode(n, db, files) }))
      const [a, b, c] = nodes as [ServeNode, ServeNode, ServeNode]
      await registerOn(a, 'part-0', pathToFileURL(paths[0] as string).href)
      await registerOn(b, 'part-1', pathToFileURL(paths[1] as string).href)
      await registerOn(a, 'part-2', pathToFileURL(paths[2] as string).href)

      const requests = [
        `/ipfs/${fileRoot}?format=car&dag-scope=all`, // root on b, blocks on a and b
        `/ipfs/${fileRoot}?format=car&dag-scope=entity&entity-bytes=1000:30000`,
        `/ipfs/${dirRoot}?format=car`, // root on a
        `/ipfs/${dirRoot}/sub/big.bin?format=car`, // a UnixFS file by its path
        `/ipfs/${fx.cbor.toString()}?format=car&dag-scope=all`
      ]
      for (const path of requests) {
        const expected = await call(singleServer.base + path)
        assert.is(expected.status, 200, `single store: ${path}`)
        assert.ok(expected.body.length > 0)
        for (const node of nodes) {
          const got = await call(node.url + path)
          assert.is(got.status, 200, `${path} via ${node.name}: ${got.body.toString()}`)
          assert.is(got.error, undefined, `${path} via ${node.name}: complete`)
          assert.ok(got.body.equals(expected.body), `${path} via ${node.name}: byte-identical to the single store's CAR`)
        }
      }

      // find and the all-shards blockstore are cluster-wide: the shared leaf is in a's and b's files.
      const found = await cli(['find', shared.cid.toString(), '--dir', c.dir, '--json'])
      assert.is(found.code, 0, found.stderr)
      assert.equal((JSON.parse(found.stdout) as { shards: string[] }).shards.sort(), ['part-1', 'part-2'])
      const viaGateway = await call(`${c.url}/ipfs/${shared.cid.toString()}?format=raw`)
      assert.is(viaGateway.status, 200)
      assert.ok(viaGateway.body.equals(shared.bytes))

      // node-b killed (its lease still current): a root it held answers 503 at once, nobody hangs.
      await b.serve?.stop('SIGKILL')
      const down = await call(`${c.url}/ipfs/${fileRoot}?format=car&dag-scope=all`)
      assert.is(down.status, 503)
      assert.is(down.headers['retry-after'], '5')
      assert.is((JSON.parse(down.body.toString()) as { error: { code: string } }).error.code, 'ERR_OWNER_UNAVAILABLE')
      // A root on node a, blocks on node b: the CAR starts and is cut where b's first block is needed.
      const cut = await call(`${c.url}/ipfs/${dirRoot}?format=car`)
      const whole = await call(`${singleServer.base}/ipfs/${dirRoot}?format=car`)
      assert.is(cut.status, 200)
      assert.ok(cut.error !== undefined || cut.body.length < whole.body.length, 'the CAR is incomplete')
      assert.ok(cut.body.length < whole.body.length)
    } finally {
      await Promise.all(nodes.map(async (n) => await n.serve?.kill()))
      await singleServer.close()
      await singleGateway.close()
      await single.close()
      await cleanup()
    }
  })

  test.run()
}
