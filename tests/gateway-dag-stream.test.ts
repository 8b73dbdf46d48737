// The gateway's DAG CAR streams on a big DAG: a 50,000-block dag-cbor chain (~100 MB of
// blocks, more than the memory the test allows the stream), served with back pressure (the
// heap and array buffers sampled during the stream stay far below the CAR's size), and a
// client that goes away mid-stream stops the walk and leaves no lease behind.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { request } from 'node:http'
import { createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { join } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import * as dagCbor from '@ipld/dag-cbor'
import { CarWriter } from '@ipld/car/writer'
import { CarBlockIterator } from '@ipld/car/iterator'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { FileMount } from '../src/storage/mount/file.js'
import { createGateway, type Gateway } from '../src/app/server/gateway.js'
import type { DAGStore } from '../src/engine/store.js'
import { tempDir } from './helpers/fixtures.js'
import { listen } from './helpers/gateway.js'
import { openStore, until } from './helpers/store.js'

const LENGTH = 50_000
const PAYLOAD = 2048
const MB = 1024 * 1024

interface Ctx {
  store: DAGStore
  head: CID
  dir: string
  cleanup: () => Promise<void>
}

const test = suite<Ctx>('gateway DAG streams')

/** The chain, written tail first as it is built: { n, data, next } with next the block after. */
async function writeChain (path: string): Promise<CID> {
  let head: CID | undefined
  const { writer, out } = CarWriter.create([])
  const written = pipeline(Readable.from(out), createWriteStream(path))
  let next: CID | null = null
  for (let n = LENGTH - 1; n >= 0; n--) {
    const data = new Uint8Array(PAYLOAD).fill(n & 0xff)
    data[0] = n >> 16
    data[1] = n >> 8
    const bytes: Uint8Array = dagCbor.encode({ n, data, next })
    const cid: CID = CID.createV1(dagCbor.code, await sha256.digest(bytes))
    await writer.put({ cid, bytes })
    next = cid
    head = cid
  }
  await writer.close()
  await written
  if (head === undefined) throw new Error('empty chain')
  return head
}

test.before(async (ctx) => {
  const { dir, cleanup } = await tempDir()
  ctx.dir = dir
  ctx.cleanup = cleanup
  const path = join(dir, 'chain.car')
  ctx.head = await writeChain(path)
  ctx.store = (await openStore(dir)).store
  await ctx.store.register('chain', new FileMount(path))
})
test.after(async (ctx) => {
  await ctx.store.close()
  await ctx.cleanup()
})

async function serve (gateway: Gateway): Promise<{ base: string, handled: Array<Promise<boolean>>, close: () => Promise<void> }> {
  const handled: Array<Promise<boolean>> = []
  const srv = await listen((req: IncomingMessage, res: ServerResponse) => { handled.push(gateway.handle(req, res)) })
  return { base: srv.base, handled, close: srv.close }
}

test('a 50,000-block chain streams whole, in order, with memory far below its size', async (ctx) => {
  const gateway = createGateway(ctx.store)
  const srv = await serve(gateway)
  try {
    // Live memory (collected first when the runner exposes gc, as tests/run.js does): garbage the
    // collector has not reached yet says nothing about what the stream holds.
    const collect = (globalThis as { gc?: () => void }).gc
    const used = (): number => { collect?.(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers }
    const baseline = used()
    let sampledAt = 0
    let peak = 0
    let bytes = 0
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      request(`${srv.base}/ipfs/${ctx.head.toString()}?format=car`, resolve).on('error', reject).end()
    })
    assert.is(res.statusCode, 200)
    const counted = (async function * () {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        bytes += chunk.length
        if (bytes - sampledAt >= 4 * MB) {
          sampledAt = bytes
          peak = Math.max(peak, used() - baseline)
        }
        yield chunk
      }
    })()
    let n = 0
    let expected: CID | null = ctx.head
    for await (const { cid, bytes: block } of await CarBlockIterator.fromIterable(counted)) {
      assert.ok(expected !== null && cid.equals(expected), `block ${n} is the chain's next`)
      const value = dagCbor.decode(block) as { n: number, next: CID | null }
      assert.is(value.n, n)
      expected = value.next
      n++
    }
    assert.is(n, LENGTH)
    assert.is(expected, null)
    assert.ok(bytes > 100 * MB, `the CAR is ${Math.round(bytes / MB)} MB`)
    // Half the CAR: a gateway that gathered the DAG (or ignored back pressure) would hold all ~100 MB.
    assert.ok(peak < 50 * MB, `heap + array buffers grew by ${Math.round(peak / MB)} MB during a ${Math.round(bytes / MB)} MB stream`)
  } finally {
    await srv.close()
    await gateway.close()
  }
})

test('a client that goes away mid-stream stops the walk; every lease is returned', async (ctx) => {
  let reads = 0
  // Counting the gateway's block reads: a `select` sees every one.
  const gateway = createGateway(ctx.store, { blockstore: { select: (_cid, shards) => { reads++; return shards[0] } } })
  const srv = await serve(gateway)
  try {
    await new Promise<void>((resolve, reject) => {
      const req = request(`${srv.base}/ipfs/${ctx.head.toString()}?format=car`, (res) => {
        let got = 0
        res.on('data', (chunk: Buffer) => {
          got += chunk.length
          if (got > MB) {
            req.destroy()
            resolve()
          }
        })
        res.on('end', () => { reject(new Error('the whole CAR arrived before the client went away')) })
      })
      req.on('error', () => {})
      req.end()
    })
    // handle() returns once the walk has stopped.
    assert.is(srv.handled.length, 1)
    assert.ok(await srv.handled[0])
    assert.ok(reads < LENGTH / 2, `the walk stopped after ${reads} of ${LENGTH} blocks`)
    assert.ok(ctx.store.getShardInfo('chain').refs <= 1, 'at most the cached accessor')
    await gateway.close()
    await until(() => ctx.store.getShardInfo('chain').refs === 0, 'every accessor released')
  } finally {
    await srv.close()
    await gateway.close()
  }
})

test.run()
