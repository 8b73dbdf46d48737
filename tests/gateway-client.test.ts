// An ecosystem trustless-gateway client against our gateway: a Helia node over HTTP only
// (@helia/http's createHeliaHTTP) whose block broker is @helia/block-brokers' trustlessGateway,
// routed to our server alone by @helia/routers' httpGatewayRouting. Helia requests each block
// as /ipfs/{cid}?format=raw (Accept: application/vnd.ipld.raw) and hashes what comes back against
// the CID before handing it out — a gateway that lies is caught by the client, not by us.
//
// Node 20: @helia/http 3 runs here except for one call, Promise.withResolvers (Node >= 22), used
// by a transitive queue (it-queue via mortice). It is shimmed below, before Helia is loaded; on
// Node 22+ the shim does nothing. (@helia/http 4 and helia 7 cannot load on Node 20 at all: they
// import undici 8, which needs Node >= 22.19.)
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { CID } from 'multiformats/cid'
import type { Registry } from 'prom-client'
import type { Gateway } from '../src/app/server/gateway.js'
import type { DAGStore } from '../src/engine/store.js'
import { carBlocks, unknownCid } from './helpers/fixtures.js'
import { blockRequests, gatewayFixture, listen, serveGateway } from './helpers/gateway.js'
import { blake2b256, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { u8, flipBits } from './helpers/file-reader.js'
import { at } from './helpers/assert.js'

const promiseStatics = Promise as unknown as { withResolvers?: () => unknown }
promiseStatics.withResolvers ??= function withResolvers () {
  let resolve: unknown
  let reject: unknown
  const promise = new Promise((_resolve, _reject) => { resolve = _resolve; reject = _reject })
  return { promise, resolve, reject }
}
const { createHeliaHTTP } = await import('@helia/http')
const { trustlessGateway } = await import('@helia/block-brokers')
const { httpGatewayRouting } = await import('@helia/routers')

type Helia = Awaited<ReturnType<typeof createHeliaHTTP>>

interface Ctx {
  store: DAGStore
  gateway: Gateway
  registry: Registry
  base: string
  /** Every request the server saw: method, URL, Accept. */
  log: string[]
  /** CID string → bytes the server sends instead of the block (a lying gateway). */
  lies: Map<string, Uint8Array>
  close: () => Promise<void>
}

/** The generated shard: sha2-256 blocks Helia hashes with its built-in hasher (dag-pb, raw, dag-cbor, sha2-512). */
function generatedBlocks (): Block[] {
  return [
    makeBlock('pb', patterned(300, 11)),
    makeBlock('v0', patterned(301, 12)),
    makeBlock('raw', patterned(4096, 13)),
    makeBlock('cbor', patterned(64, 14)),
    makeBlock('sha512', patterned(900, 15))
  ]
}

async function heliaFor (base: string): Promise<Helia> {
  return await createHeliaHTTP({
    // A local, plain-HTTP gateway: both are refused by default.
    blockBrokers: [trustlessGateway({ allowInsecure: true, allowLocal: true })],
    routers: [httpGatewayRouting({ gateways: [base], shuffle: false })],
    // sample-v1.car is Filecoin data: blake2b-256, which Helia does not bundle.
    hashers: [blake2b256 as never]
  })
}

/** Helia's blockstore.get yields the block in chunks (interface-blockstore 6 may also resolve one). */
async function heliaGet (helia: Helia, cid: CID, signal = AbortSignal.timeout(10_000)): Promise<Uint8Array> {
  const got = await (helia.blockstore.get(cid as never, { signal }) as unknown as Promise<Uint8Array | AsyncIterable<Uint8Array>>)
  if (got instanceof Uint8Array) return got
  const parts: Uint8Array[] = []
  for await (const chunk of got) parts.push(chunk)
  return Buffer.concat(parts)
}

const test = suite<Ctx>('gateway client (@helia/http + trustlessGateway)')

test.before.each(async (ctx) => {
  const f = await gatewayFixture(generatedBlocks())
  ctx.store = f.store
  ctx.registry = f.registry
  ctx.gateway = f.gateway
  ctx.log = []
  ctx.lies = new Map()
  const srv = await listen((req, res) => {
    ctx.log.push(`${String(req.method)} ${String(req.url)} ${String(req.headers.accept)}`)
    const lie = ctx.lies.get(/^\/ipfs\/([^/?]+)/.exec(req.url ?? '')?.[1] ?? '')
    if (lie !== undefined) {
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.raw', 'content-length': String(lie.length) })
      res.end(lie)
      return
    }
    serveGateway(ctx.gateway, req, res)
  })
  ctx.base = srv.base
  ctx.close = async () => {
    await srv.close()
    await f.close()
  }
})
test.after.each(async (ctx) => { await ctx.close() })

test('Helia fetches and verifies blocks of both shards over the trustless gateway (raw block requests)', async (ctx) => {
  const sample = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const picks = [at(sample, 0), at(sample, 1), at(sample, 250), at(sample, 777), at(sample, sample.length - 1), ...generatedBlocks()]
  const helia = await heliaFor(ctx.base)
  try {
    for (const { cid, bytes } of picks) {
      assert.equal(u8(await heliaGet(helia, cid)), u8(bytes), cid.toString())
    }
  } finally {
    await helia.stop()
  }
  // Every block came over HTTP from our gateway, asked for the way the spec says.
  for (const { cid } of picks) {
    assert.ok(ctx.log.includes(`GET /ipfs/${cid.toString()}?format=raw application/vnd.ipld.raw`), cid.toString())
  }
  assert.equal(await blockRequests(ctx.registry), { 200: picks.length })
})

test('the client rejects a block whose bytes do not hash to its CID, and a CID the gateway does not have', async (ctx) => {
  const sample = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const [good, tampered, swapped] = [at(sample, 10), at(sample, 11), at(generatedBlocks(), 2)]
  // The server now lies, with a 200 and a plausible body: flipped bytes for one block, another
  // block's bytes for a second. Nothing but the client's own hash check can tell.
  const flipped = Uint8Array.from(tampered.bytes)
  flipBits(flipped, 0, 0xff)
  ctx.lies.set(tampered.cid.toString(), flipped)
  ctx.lies.set(swapped.cid.toString(), at(generatedBlocks(), 3).bytes)
  const helia = await heliaFor(ctx.base)
  try {
    assert.equal(u8(await heliaGet(helia, good.cid)), u8(good.bytes))
    for (const cid of [tampered.cid, swapped.cid, unknownCid]) {
      let failed: unknown
      try {
        await heliaGet(helia, cid, AbortSignal.timeout(10_000))
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
  for (const cid of [tampered.cid, swapped.cid, unknownCid]) {
    assert.ok(ctx.log.some((l) => l.startsWith(`GET /ipfs/${cid.toString()}?format=raw`)), `asked for ${cid.toString()}`)
  }
  assert.is((await blockRequests(ctx.registry))['404'], ctx.log.filter((l) => l.includes(unknownCid.toString())).length)
})

test.run()
