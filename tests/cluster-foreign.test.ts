// Another node's http shard read in place whose origin changes under it (DESIGN §12, §11): the
// reading node drops what it cached of the origin (its probe, its sections) and asks the owner
// (one proxied hop), whose state machine alone decides about the shard; here the owner keeps a
// copy, so it serves the old bytes and the shard stays available. Two stores in process on one
// database, a real node:http origin, the owner's gateway on a real loopback server.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DAGStore } from '../src/engine/store.js'
import { HttpMount } from '../src/storage/mount/http.js'
import { postgresBackend } from '../src/postgres.js'
import { createGateway, type Gateway } from '../src/app/server/gateway.js'
import { tempDir } from './helpers/fixtures.js'
import { listen, serveGateway } from './helpers/gateway.js'
import { serve } from './helpers/http-server.js'
import { rangeOrigin, type Origin } from './helpers/range-origin.js'
import { encodeCar, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { postgresAvailable, postgresServer } from './helpers/postgres.js'

if (postgresAvailable('cluster foreign reads')) {
  const test = suite('cluster: a foreign in-place read that fails falls back to the owner')

  test('the origin changes (new ETag, then other bytes under it): the non-owner drops its probe and asks the owner', async () => {
    const db = await (await postgresServer()).freshDatabase('foreign')
    const { dir, cleanup } = await tempDir()
    const blocks: Block[] = Array.from({ length: 24 }, (_, i) => makeBlock('raw', patterned(1500 + 61 * i, 40 + i)))
    const origin: Origin = { body: encodeCar(blocks).bytes, etag: '"v1"', ranges: true }
    const originServer = await serve(rangeOrigin(origin))
    let ownerGateway: Gateway | undefined
    const ownerFront = await listen((req, res) => { if (ownerGateway !== undefined) serveGateway(ownerGateway, req, res) })
    const owner = new DAGStore({ dir: `${dir}/a`, backend: postgresBackend({ url: db, node: 'a', advertise: ownerFront.base }) })
    const asker = new DAGStore({ dir: `${dir}/b`, backend: postgresBackend({ url: db, node: 'b' }) })
    let askerGateway: Gateway | undefined
    let front: { base: string, close: () => Promise<void> } | undefined
    try {
      await owner.start()
      await asker.start()
      // The owner keeps a copy: what happens to the origin later does not touch its reads.
      await owner.register('remote', new HttpMount(originServer.url), { copy: 'always' })
      ownerGateway = createGateway(owner)
      const gw = askerGateway = createGateway(asker)
      front = await listen((req, res) => { serveGateway(gw, req, res) })
      const get = async (block: Block): Promise<Response> =>
        await fetch(`${front?.base ?? ''}/ipfs/${block.cid.toString()}?format=raw`, { signal: AbortSignal.timeout(10_000) })
      const probes = (): number => originServer.log.filter((r) => r.range?.startsWith('bytes=0-') === true).length
      const assertServed = async (block: Block, label: string): Promise<void> => {
        const res = await get(block)
        const body = Buffer.from(await res.arrayBuffer())
        assert.is(res.status, 200, `${label}: ${body.toString()}`)
        assert.ok(body.equals(block.bytes), `${label}: byte-identical`)
      }

      // Read in place by the non-owner.
      const before = originServer.log.length
      await assertServed(blocks[0] as Block, 'in place')
      assert.ok(originServer.log.length > before, 'the non-owner read the origin itself')
      const probed = probes()

      // A new version under the URL: the non-owner's read fails (ERR_HTTP_CHANGED), the owner answers.
      origin.body = encodeCar(blocks.slice().reverse()).bytes
      origin.etag = '"v2"'
      await assertServed(blocks[12] as Block, 'after the origin changed')
      assert.is.not(owner.getShardInfo('remote').state, 'errored', 'the owner alone decides about the shard')

      // Its probe was dropped: the next read asks the origin again, reads the new bytes at the
      // old offsets (ERR_HASH_MISMATCH or worse), and the owner answers again.
      origin.body = encodeCar([...blocks.slice(12), ...blocks.slice(0, 12)]).bytes
      await assertServed(blocks[20] as Block, 'other bytes under the same ETag')
      assert.ok(probes() > probed, 'the non-owner probed the origin again')
      assert.is.not(owner.getShardInfo('remote').state, 'errored')
    } finally {
      await askerGateway?.close()
      await ownerGateway?.close()
      await front?.close()
      await ownerFront.close()
      await asker.close()
      await owner.close()
      await originServer.close()
      await cleanup()
    }
  })

  test.run()
}
