// The gateway's hop to a block's owner (DESIGN §12), in process: two stores on one database,
// the owner's advertised URL a server that accepts connections and never answers (503 with
// Retry-After once the proxy's response timeout passes, never a hang), an owner that stopped
// (503 at once, nobody asked), and an answer relayed with its status and headers.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { postgresBackend } from '../src/postgres.js'
import { createGateway, type Gateway } from '../src/app/server/gateway.js'
import { carBlocks, fixture, tempDir } from './helpers/fixtures.js'
import { postgresAvailable, postgresServer } from './helpers/postgres.js'

interface Listening { url: string, server: Server, sockets: Set<Socket>, requests: number }

async function listen (handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void): Promise<Listening> {
  const sockets = new Set<Socket>()
  const out: Listening = { url: '', server: createServer((req, res) => { out.requests++; handler(req, res) }), sockets, requests: 0 }
  out.server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => out.server.listen(0, '127.0.0.1', resolve))
  out.url = `http://127.0.0.1:${(out.server.address() as AddressInfo).port}`
  return out
}

async function shut (l: Listening): Promise<void> {
  for (const s of l.sockets) s.destroy()
  await new Promise<void>((resolve) => l.server.close(() => resolve()))
}

if (postgresAvailable('cluster proxy')) {
  const test = suite('cluster: the hop to the owner')

  test('an owner that never answers → 503 ERR_OWNER_UNAVAILABLE with Retry-After; a stopped owner → 503 without a request; a live one is relayed', async () => {
    const db = await (await postgresServer()).freshDatabase('proxy')
    const { dir, cleanup } = await tempDir()
    const silent = await listen(() => {}) // accepts, reads the request, never answers
    const [block] = await carBlocks('sample-v1.car')
    const owner = new DAGStore({ dir: `${dir}/a`, backend: postgresBackend({ url: db, node: 'a', advertise: silent.url }) })
    const asker = new DAGStore({ dir: `${dir}/b`, backend: postgresBackend({ url: db, node: 'b' }) })
    let gateway: Gateway | undefined
    let front: Listening | undefined
    let ownerGateway: Gateway | undefined
    let ownerFront: Listening | undefined
    try {
      await owner.start()
      await asker.start()
      await owner.register('local', new FileMount(fixture('sample-v1.car')))
      const gw = gateway = createGateway(asker, { proxy: { responseTimeoutMs: 300, connectTimeoutMs: 300 } })
      front = await listen((req, res) => { gw.handle(req, res).catch(() => {}) })
      const target = `${front.url}/ipfs/${block?.cid.toString() ?? ''}?format=raw`
      const get = async (): Promise<Response> => await fetch(target, { signal: AbortSignal.timeout(10_000) })

      let res = await get()
      assert.is(res.status, 503)
      assert.is(res.headers.get('retry-after'), '5')
      let body = (await res.json()) as { error: { code: string, message: string } }
      assert.is(body.error.code, 'ERR_OWNER_UNAVAILABLE')
      assert.match(body.error.message, /did not answer within 300 ms/)
      assert.is(silent.requests, 1, 'the owner was asked once')

      // The owner answers: its answer is relayed.
      const og = ownerGateway = createGateway(owner)
      ownerFront = await listen((req, res) => { og.handle(req, res).catch(() => {}) })
      await owner.close()
      const relaying = new DAGStore({ dir: `${dir}/a`, backend: postgresBackend({ url: db, node: 'a', advertise: ownerFront.url }) })
      await relaying.start()
      const og2 = ownerGateway = createGateway(relaying)
      ownerFront.server.removeAllListeners('request')
      ownerFront.server.on('request', (req, res) => { og2.handle(req, res).catch(() => {}) })
      res = await get()
      assert.is(res.status, 200)
      assert.is(res.headers.get('content-type'), 'application/vnd.ipld.raw')
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(block?.bytes ?? [])))

      // Stopped cleanly: down at once, nobody is asked.
      await og2.close()
      await relaying.close()
      const asked = silent.requests
      res = await get()
      assert.is(res.status, 503)
      body = (await res.json()) as { error: { code: string, message: string } }
      assert.is(body.error.code, 'ERR_OWNER_UNAVAILABLE')
      assert.match(body.error.message, /down/)
      assert.is(silent.requests, asked)
    } finally {
      await gateway?.close()
      await ownerGateway?.close()
      await owner.close()
      await asker.close()
      if (front !== undefined) await shut(front)
      if (ownerFront !== undefined) await shut(ownerFront)
      await shut(silent)
      await cleanup()
    }
  })

  test.run()
}
