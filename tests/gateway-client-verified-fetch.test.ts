// An ecosystem client that resolves ipfs:// URLs to file bytes: @helia/verified-fetch 8 over a
// Helia 7 made HTTP-only by @helia/http 4 (a trustless-gateway block broker), with our server
// as its only gateway and its only delegated router, talking to `startServer` over a real store
// on 127.0.0.1. It walks the UnixFS DAG itself, hash-verifying every block it is given.
//
// The DAGs (a multi-block file; a directory with a nested one) are made by
// ipfs-unixfs-importer (tests/helpers/dag-oracle.ts) and their blocks spread over two shards.
// Our server answers /routing/v1/providers with 404 (no providers), so Helia falls back to the
// gateway (see tests/gateway-client-helia7.test.ts).
//
// verified-fetch 8 needs Node >= 22.19 (Helia 7, undici 8). On older Node these tests are
// skipped, say so, and count as skipped; CI's second pass runs them on Node 24.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Helia } from 'helia'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { startServer, type DagstoreServer } from '../src/app/server/index.js'
import { tempDir } from './helpers/fixtures.js'
import { encodeCar, type Block } from './helpers/car-gen.js'
import { buildFixture, type Fixture } from './helpers/dag-oracle.js'
import { u8 } from './helpers/file-reader.js'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
const supported = major > 22 || (major === 22 && minor >= 19)
if (!supported) {
  console.log(`\n  gateway-client-verified-fetch: SKIPPING the @helia/verified-fetch tests: verified-fetch 8 needs Node >= 22.19, this is ${process.version}\n`)
}

interface Ctx {
  fx: Fixture
  server: DagstoreServer
  cleanup: () => Promise<void>
}

type VerifiedFetch = (resource: string, options?: { signal?: AbortSignal }) => Promise<Response>

async function heliaFor (gateway: string): Promise<Helia> {
  const { createHeliaLight } = await import('helia')
  const { withHTTP } = await import('@helia/http-v4')
  const helia = withHTTP(createHeliaLight(), {
    delegatedRouters: [gateway],
    recursiveGateways: [gateway],
    // A local, plain-HTTP gateway: both are refused by default.
    allowInsecure: true,
    allowLocal: true
  })
  await helia.start()
  return helia
}

const test = suite<Ctx>('gateway client (@helia/verified-fetch 8, startServer)')
const run = supported ? test : test.skip

test.before(async (ctx) => {
  if (!supported) return
  ctx.fx = await buildFixture()
  const { dir, cleanup } = await tempDir()
  const store = new DAGStore({ dir })
  await store.start()
  // Alternate blocks in two shards: one file's blocks come from both.
  const halves: Block[][] = [[], []]
  let i = 0
  for (const block of ctx.fx.blocks.map.values()) halves[i++ % 2]?.push(block)
  for (const [n, blocks] of halves.entries()) {
    const path = join(dir, `part-${n}.car`)
    await writeFile(path, encodeCar(blocks).bytes)
    await store.register(`part-${n}`, new FileMount(path))
  }
  const server = await startServer(store, { host: '127.0.0.1', port: 0 })
  ctx.server = server
  ctx.cleanup = async () => {
    await server.close()
    await store.close()
    await cleanup()
  }
})
test.after(async (ctx) => { if (supported) await ctx.cleanup() })

/** The body of `url` through verified-fetch over our gateway alone; a fresh Helia per call (nothing cached). */
async function fetched (gateway: string, url: string): Promise<{ status: number, body: Uint8Array }> {
  const { createVerifiedFetchWithHelia } = await import('@helia/verified-fetch')
  const helia = await heliaFor(gateway)
  const verifiedFetch = await createVerifiedFetchWithHelia(helia) as VerifiedFetch & { stop: () => Promise<void> }
  try {
    const res = await verifiedFetch(url, { signal: AbortSignal.timeout(30_000) })
    return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) }
  } finally {
    await verifiedFetch.stop()
    await helia.stop()
  }
}

run('ipfs://{root} of a multi-block UnixFS file: the original bytes', async (ctx) => {
  const { cid, bytes } = ctx.fx.file
  const r = await fetched(ctx.server.url, `ipfs://${cid.toString()}`)
  assert.is(r.status, 200)
  assert.is(r.body.byteLength, bytes.byteLength)
  assert.equal(u8(r.body), u8(bytes))
})

run('ipfs://{dir}/sub/big.bin and ipfs://{dir}/a.txt: files inside (nested) directories, the original bytes', async (ctx) => {
  const big = await fetched(ctx.server.url, `ipfs://${ctx.fx.dir.toString()}/sub/big.bin`)
  assert.is(big.status, 200)
  assert.equal(u8(big.body), u8(ctx.fx.file.bytes))
  const small = await fetched(ctx.server.url, `ipfs://${ctx.fx.dir.toString()}/a.txt`)
  assert.is(small.status, 200)
  assert.is(new TextDecoder().decode(small.body), 'hello a')
})

test.run()
