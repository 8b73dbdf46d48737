// The all-shards blockstore of a clustered store (DESIGN §12), in process: three stores on one
// database. A CID is looked up cluster-wide (`shardsContainingCid`, `has` list every node's
// shards holding it); a block only another node's local file holds is not served by get() but
// by getAnywhere(), which asks the owner's advertised URL for that one block (marked as
// proxied) and checks the bytes against the CID: an owner answering other bytes is refused with
// ERR_HASH_MISMATCH, a stopped owner is ERR_OWNER_UNAVAILABLE without a request.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { postgresBackend } from '../src/postgres.js'
import { createGateway } from '../src/app/server/gateway.js'
import { carBlocks, fixture, tempDir } from './helpers/fixtures.js'
import { listen, serveGateway } from './helpers/gateway.js'
import { encodeCar, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { rejectsWith } from './helpers/assert.js'
import { postgresAvailable, postgresServer } from './helpers/postgres.js'

if (postgresAvailable('cluster blockstore')) {
  const test = suite('cluster: the all-shards blockstore')

  test('lookups are cluster-wide; getAnywhere fetches a block only its owner reads, hash-verified', async () => {
    const db = await (await postgresServer()).freshDatabase('cluster_bs')
    const { dir, cleanup } = await tempDir()
    const [shared] = await carBlocks('sample-v1.car')
    const own: Block[] = Array.from({ length: 4 }, (_, i) => makeBlock('raw', patterned(700 + i, 90 + i)))
    const ownCar = join(dir, 'own.car')
    await writeFile(ownCar, encodeCar(own).bytes)
    let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => { res.writeHead(503); res.end() }
    const seen: Array<string | undefined> = []
    const front = await listen((req, res) => { seen.push(req.headers['x-dagstore-proxied-by'] as string | undefined); answer(req, res) })
    const a = new DAGStore({ dir: join(dir, 'a'), backend: postgresBackend({ url: db, node: 'a', advertise: front.base }) })
    const b = new DAGStore({ dir: join(dir, 'b'), backend: postgresBackend({ url: db, node: 'b' }) })
    const c = new DAGStore({ dir: join(dir, 'c'), backend: postgresBackend({ url: db, node: 'c' }) })
    const aGateway = createGateway(a)
    try {
      await Promise.all([a.start(), b.start(), c.start()])
      await a.register('a-sample', new FileMount(fixture('sample-v1.car')))
      await b.register('b-sample', new FileMount(fixture('sample-v1.car')))
      await a.register('a-own', new FileMount(ownCar))
      const cid = shared?.cid
      if (cid === undefined) throw new Error('no block in the fixture')

      // Every node's shards holding the CID, from a node that has none.
      assert.equal((await c.shardsContainingCid(cid)).sort(), ['a-sample', 'b-sample'])
      const bs = c.blockstore()
      assert.ok(await bs.has(cid))
      assert.ok(await bs.has((own[0] as Block).cid))

      // get() leaves a block only another node reads to the gateway's hop; getAnywhere() fetches it.
      const target = own[2] as Block
      await rejectsWith(bs.get(target.cid), (err) => {
        assert.is(err.code, 'ERR_NOT_FOUND')
        assert.is(err.cause?.code, 'ERR_SHARD_ELSEWHERE')
      })
      answer = (req, res) => { serveGateway(aGateway, req, res) }
      const fetched = await bs.getAnywhere(target.cid)
      assert.ok(Buffer.from(fetched).equals(Buffer.from(target.bytes)))
      assert.equal(seen.slice(-1), ['c'], 'the owner was asked, marked as proxied by c')

      // Other bytes than the CID says: refused, whatever the owner claims.
      answer = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/vnd.ipld.raw' })
        res.end(Buffer.from((own[3] as Block).bytes))
      }
      await rejectsWith(bs.getAnywhere(target.cid), (err) => { assert.is(err.code, 'ERR_HASH_MISMATCH') })

      // The owner stopped (its lease ended): not asked at all.
      await aGateway.close()
      await a.close()
      const asked = seen.length
      await rejectsWith(bs.getAnywhere((own[1] as Block).cid), (err) => { assert.is(err.code, 'ERR_OWNER_UNAVAILABLE') })
      assert.is(seen.length, asked)
      await bs.close()
    } finally {
      await aGateway.close()
      await Promise.all([a.close(), b.close(), c.close()])
      await front.close()
      await cleanup()
    }
  })

  test.run()
}
