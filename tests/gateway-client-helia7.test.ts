// Today's ecosystem client against the server users run: Helia 7 made HTTP-only by
// @helia/http 4's withHTTP (a trustless-gateway block broker, our server as its only gateway),
// talking to `startServer` over a real store on 127.0.0.1. Helia asks for each block as a raw
// block and hashes what comes back against the CID before handing it out.
//
// Our server is also its delegated router: with no router but the fallback (gateway) one,
// Helia 7's routing waits for ever for the non-fallback routers to finish. Our server answers
// /routing/v1/providers with 404 (no providers), and Helia falls back to the gateway.
//
// Helia 7 needs Node >= 22.19 (it loads undici 8). On older Node these tests are skipped, say
// so, and count as skipped; tests/gateway-client.test.ts covers @helia/http 3 there.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CID } from 'multiformats/cid'
import { sha512 } from 'multiformats/hashes/sha2'
import type { Helia } from 'helia'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { startServer, type DagstoreServer } from '../src/app/server/index.js'
import { carBlocks, fixture, tempDir, unknownCid } from './helpers/fixtures.js'
import { blake2b256, encodeCar, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { flipBits, u8 } from './helpers/file-reader.js'
import { at } from './helpers/assert.js'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
const supported = major > 22 || (major === 22 && minor >= 19)
if (!supported) {
  console.log(`\n  gateway-client-helia7: SKIPPING the Helia 7 client tests: Helia 7 and @helia/http 4 need Node >= 22.19, this is ${process.version}\n`)
}

interface Ctx {
  store: DAGStore
  server: DagstoreServer
  cleanup: () => Promise<void>
}

/** Blocks of the codecs and hashes Helia meets most (dag-pb, raw, dag-cbor; sha2-256, sha2-512). */
function generatedBlocks (): Block[] {
  return [
    makeBlock('pb', patterned(300, 21)),
    makeBlock('raw', patterned(4096, 22)),
    makeBlock('cbor', patterned(64, 23)),
    makeBlock('sha512', patterned(900, 24))
  ]
}

/** A block whose bytes in the CAR are not the ones its CID names: the store indexes and serves it as is. */
function corruptBlock (): { cid: CID, served: Uint8Array } {
  const named = makeBlock('raw', patterned(512, 25))
  const served = Uint8Array.from(named.bytes)
  flipBits(served, 100, 0xff)
  return { cid: named.cid, served }
}

async function heliaFor (gateway: string): Promise<Helia> {
  const { createHeliaLight } = await import('helia')
  const { withHTTP } = await import('@helia/http-v4')
  // createHeliaLight bundles sha2-256 only; sample-v1.car is Filecoin data (blake2b-256).
  const helia = withHTTP(createHeliaLight({ hashers: [blake2b256 as never, sha512] }), {
    delegatedRouters: [gateway],
    recursiveGateways: [gateway],
    // A local, plain-HTTP gateway: both are refused by default.
    allowInsecure: true,
    allowLocal: true
  })
  await helia.start()
  return helia
}

/** interface-blockstore 7: get yields the block in chunks. */
async function heliaGet (helia: Helia, cid: CID): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const chunk of helia.blockstore.get(cid as never, { signal: AbortSignal.timeout(10_000) })) parts.push(chunk)
  return Buffer.concat(parts)
}

/** dagstore_block_requests_total by status, from the server's /metrics. */
async function blockRequests (server: DagstoreServer): Promise<Record<string, number>> {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^dagstore_block_requests_total\{status="(\d+)"\} (\d+)$/gm)) out[at(m, 1)] = Number(m[2])
  return out
}

const test = suite<Ctx>('gateway client (Helia 7 + @helia/http 4, startServer)')
const run = supported ? test : test.skip

test.before.each(async (ctx) => {
  if (!supported) return
  const { dir, cleanup } = await tempDir()
  const store = new DAGStore({ dir })
  await store.start()
  await store.register('sample', new FileMount(fixture('sample-v1.car')))
  const bad = corruptBlock()
  const generated = join(dir, 'generated.car')
  await writeFile(generated, encodeCar([...generatedBlocks(), { cid: bad.cid, bytes: bad.served }]).bytes)
  await store.register('generated', new FileMount(generated))
  const server = await startServer(store, { host: '127.0.0.1', port: 0 })
  ctx.store = store
  ctx.server = server
  ctx.cleanup = async () => {
    await server.close()
    await store.close()
    await cleanup()
  }
})
test.after.each(async (ctx) => { if (supported) await ctx.cleanup() })

run('Helia 7 fetches and hash-verifies blocks of both shards from startServer, only from it', async (ctx) => {
  const sample = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const picks = [at(sample, 0), at(sample, 1), at(sample, 250), at(sample, 777), at(sample, sample.length - 1), ...generatedBlocks()]
  const helia = await heliaFor(ctx.server.url)
  try {
    for (const { cid, bytes } of picks) {
      assert.equal(u8(await heliaGet(helia, cid)), u8(bytes), cid.toString())
    }
  } finally {
    await helia.stop()
  }
  // Every block was one successful raw-block request to our server.
  assert.equal(await blockRequests(ctx.server), { 200: picks.length })
})

run('Helia 7 refuses bytes that do not hash to the CID, and a CID no shard holds', async (ctx) => {
  const bad = corruptBlock()
  // The store serves the corrupt block honestly (it indexed the CAR without verifyHashes).
  const direct = await fetch(`${ctx.server.url}/ipfs/${bad.cid.toString()}?format=raw`)
  assert.is(direct.status, 200)
  assert.equal(u8(new Uint8Array(await direct.arrayBuffer())), u8(bad.served))
  const helia = await heliaFor(ctx.server.url)
  try {
    for (const cid of [bad.cid, unknownCid]) {
      let failed: unknown
      try {
        await heliaGet(helia, cid)
      } catch (err) {
        failed = err
      }
      assert.ok(failed instanceof Error, `${cid.toString()} must not be accepted`)
      assert.not.match((failed as Error).name, /Abort|Timeout/, `${cid.toString()}: refused, not timed out`)
      assert.is(await helia.blockstore.has(cid as never), false, 'nothing unverified was stored')
    }
  } finally {
    await helia.stop()
  }
  const counts = await blockRequests(ctx.server)
  // Helia got the corrupt block with a 200 and still refused it: its own hash check did.
  assert.ok((counts['200'] ?? 0) >= 2, 'the corrupt block was served (to us, then to Helia)')
  assert.ok((counts['404'] ?? 0) >= 1, 'the unknown CID was asked for')
})

test.run()
