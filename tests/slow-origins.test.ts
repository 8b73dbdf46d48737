// Slow origins: HttpMount's minimum body rate (minBytesPerSecond over rateWindowMs) and its
// download deadline (deadlineMs), against real node:http servers on 127.0.0.1 that pace their
// bytes. A server that keeps sending, just too slowly, must still fail in bounded time; one
// that is slow but above the minimum must not. (remote-faults.test.ts runs both faults
// through the store: shard errored, nothing left in transientsDir, other shards serving.)
import { readFile } from 'node:fs/promises'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { HttpMount, HttpTimeoutError, type HttpMountOptions } from '../src/storage/mount/http.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'
import { paced, standard, withServer } from './helpers/http-server.js'

const sample = await readFile(fixture('sample-v1.car'))

async function download (mount: HttpMount): Promise<Buffer> {
  const reader = await mount.fetch()
  try {
    const parts: Uint8Array[] = []
    for await (const c of reader.stream()) parts.push(c)
    return Buffer.concat(parts)
  } finally {
    await reader.close()
  }
}

async function failure (p: Promise<unknown>): Promise<unknown> {
  return await p.then(() => assert.unreachable('expected a failure'), (err: unknown) => err)
}

const quick: HttpMountOptions = { retries: 0, backoffMs: 1, timeoutMs: 5000 }

const test = suite('slow origins')

test('options: minBytesPerSecond ≥ 0, rateWindowMs > 0, deadlineMs > 0 (integers), else ERR_INVALID_MOUNT', () => {
  const bad: HttpMountOptions[] = [
    { minBytesPerSecond: -1 }, { minBytesPerSecond: 1.5 }, { minBytesPerSecond: Number.NaN }, { minBytesPerSecond: Infinity },
    { rateWindowMs: 0 }, { rateWindowMs: -1 }, { rateWindowMs: 2.5 },
    { deadlineMs: 0 }, { deadlineMs: -5 }, { deadlineMs: 1.5 }, { deadlineMs: Infinity }
  ]
  for (const options of bad) {
    try {
      void new HttpMount('http://127.0.0.1:1/x.car', options)
      assert.unreachable(JSON.stringify(options))
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_INVALID_MOUNT', JSON.stringify(options))
    }
  }
  // 0 turns the minimum rate off; the deadline may be left out.
  void new HttpMount('http://127.0.0.1:1/x.car', { minBytesPerSecond: 0, rateWindowMs: 1, deadlineMs: 1 })
  void new HttpMount('http://127.0.0.1:1/x.car', {})
})

test('a trickle (1 byte every 50 ms) below minBytesPerSecond → ERR_HTTP_TIMEOUT, retried like a stall', async () => {
  await withServer(paced(sample, 1, 50), async (srv) => {
    const err = await failure(download(new HttpMount(srv.url, { ...quick, retries: 1, minBytesPerSecond: 1000, rateWindowMs: 300 })))
    assert.instance(err, HttpTimeoutError)
    assert.is((err as { code?: string }).code, 'ERR_HTTP_TIMEOUT')
    assert.is(srv.log.filter((r) => r.method === 'GET').length, 2, 'the slow attempt was retried once')
  })
})

test('slow, but above minBytesPerSecond over every window → completes, byte-identical', async () => {
  // 8 KiB every 20 ms (a little over a second for the sample): far above 20 000 bytes/s, and
  // many 200 ms windows long.
  await withServer(paced(sample, 8192, 20), async (srv) => {
    const got = await download(new HttpMount(srv.url, { ...quick, minBytesPerSecond: 20_000, rateWindowMs: 200 }))
    assert.ok(got.equals(sample), 'bytes differ')
    assert.is(srv.log.filter((r) => r.method === 'GET').length, 1, 'no attempt failed')
  })
})

test('deadlineMs: a download above the minimum rate but still going at the deadline → ERR_HTTP_TIMEOUT, not retried', async () => {
  await withServer(paced(sample, 4096, 25), async (srv) => {
    const err = await failure(download(new HttpMount(srv.url, { ...quick, retries: 3, deadlineMs: 300 })))
    assert.instance(err, HttpTimeoutError)
    assert.is((err as { code?: string }).code, 'ERR_HTTP_TIMEOUT')
    assert.is(srv.log.filter((r) => r.method === 'GET').length, 1)
  })
})

test('deadlineMs also ends a retry backoff: ERR_HTTP_TIMEOUT, not the status that caused the retry', async () => {
  await withServer((req, res, n) => {
    if (req.method === 'HEAD') { standard(sample)(req, res, n); return }
    res.writeHead(503)
    res.end()
  }, async (srv) => {
    const err = await failure(download(new HttpMount(srv.url, { retries: 1, backoffMs: 60_000, maxBackoffMs: 60_000, deadlineMs: 300 })))
    assert.is((err as { code?: string }).code, 'ERR_HTTP_TIMEOUT')
    assert.is(srv.log.filter((r) => r.method === 'GET').length, 1, 'the deadline came before the retry')
  })
})

test('the reader\'s own abort still wins: ABORT_ERR, not a timeout', async () => {
  await withServer(paced(sample, 1, 50), async (srv) => {
    const ac = new AbortController()
    const reader = await new HttpMount(srv.url, { ...quick, deadlineMs: 60_000 }).fetch(ac.signal)
    const it = reader.stream()[Symbol.asyncIterator]()
    await it.next()
    ac.abort()
    const err = await failure(it.next())
    assert.is((err as { code?: string }).code, 'ABORT_ERR')
    await reader.close()
  })
})

test.run()

const store = dirSuite('slow origins in a DAGStore')

store('a shard from a slow origin above the minimum rate registers and serves', async (ctx) => {
  await withServer(paced(sample, 8192, 20), async (srv) => {
    const { store: s, reported } = await openStore(ctx.dir)
    try {
      await s.register('slow', new HttpMount(srv.url, { ...quick, minBytesPerSecond: 20_000, rateWindowMs: 200 }))
      assert.is(s.getShardInfo('slow').state, 'available')
      const acc = await s.acquire('slow')
      const parts: Uint8Array[] = []
      for await (const c of acc.reader()) parts.push(c)
      await acc.close()
      assert.ok(Buffer.concat(parts).equals(sample), 'reader() bytes equal the source')
      assert.equal(reported, [])
    } finally {
      await s.close()
    }
  })
})

store.run()
