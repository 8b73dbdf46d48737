// The HTTP server in your own process: a store, its trustless gateway and admin API on
// 127.0.0.1 (a free port), one block fetched over HTTP, then a clean shutdown.
//
//   npm run build && node dist/examples/embed-server.js [file.car]
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DAGStore, FileMount, startServer } from 'dagstore'

const car = process.argv[2] ?? fileURLToPath(new URL('../../tests/fixtures/sample-v1.car', import.meta.url))
const dir = await mkdtemp(join(tmpdir(), 'dagstore-example-'))
const store = new DAGStore({ dir })

try {
  await store.start()
  await store.register('sample', new FileMount(car))
  // port 0: any free port. No token given: the admin API gets a random one (server.token).
  const server = await startServer(store, { host: '127.0.0.1', port: 0 })
  try {
    console.log(`serving at ${server.url}`)
    const accessor = await store.acquire('sample')
    let cid
    let expected
    try {
      for await (const c of accessor.blockstore().allKeys()) { cid = c; break }
      if (cid === undefined) throw new Error('the CAR holds no blocks')
      expected = await accessor.blockstore().get(cid)
    } finally {
      await accessor.close()
    }

    // The gateway needs no token: a raw block, as any trustless-gateway client asks for it.
    const res = await fetch(`${server.url}/ipfs/${cid.toString()}`, { headers: { accept: 'application/vnd.ipld.raw' } })
    const body = new Uint8Array(await res.arrayBuffer())
    if (res.status !== 200 || !Buffer.from(body).equals(expected)) throw new Error(`GET /ipfs/${cid.toString()}: ${res.status}`)
    console.log(`GET /ipfs/${cid.toString()} → ${res.status} ${String(res.headers.get('content-type'))}, ${body.length} bytes, same as the shard's`)

    // The admin API wants the bearer token. The shard shows as serving: the gateway keeps an
    // accessor to it cached (released after a minute idle, or when the server closes).
    const shards = await fetch(`${server.url}/shards`, { headers: { authorization: `Bearer ${String(server.token)}` } })
    const listing = await shards.json() as { shards: Array<{ key: string, state: string }> }
    console.log(`GET /shards → ${shards.status}: ${listing.shards.map((s) => `${s.key} (${s.state})`).join(', ')}`)
  } finally {
    await server.close() // never closes the store
  }
} finally {
  await store.close()
  await rm(dir, { recursive: true, force: true })
}
