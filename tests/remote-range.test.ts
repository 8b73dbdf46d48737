// Reads in place over HTTP (storage/mount/http-range.ts): HttpMount#probeRange decides whether an
// origin can be read in place, and every ranged read checks its 206 against the probe. Real
// node:http servers on 127.0.0.1 that misbehave on purpose.
import { readdir, readFile } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { HttpMount, type HttpMountOptions, type RangedProbe } from '../src/storage/mount/http.js'
import { SectionCache } from '../src/storage/remote/section-cache.js'
import { codeOf } from './helpers/assert.js'
import { fixture } from './helpers/fixtures.js'
import { serve, withServer, type Handler } from './helpers/http-server.js'
import { rangeOrigin, type Origin } from './helpers/range-origin.js'
import { until } from './helpers/store.js'

const test = suite('remote range')
const sample = await readFile(fixture('sample-v1.car'))
const FAST: HttpMountOptions = { backoffMs: 1, maxBackoffMs: 5 }

function same (got: Uint8Array, want: Uint8Array, message?: string): void {
  assert.ok(Buffer.from(got).equals(want), message ?? `${got.byteLength} bytes differ from the ${want.byteLength} expected`)
}

function origin (extra: Partial<Origin> = {}): Origin {
  return { body: sample, etag: '"v1"', ranges: true, ...extra }
}

async function ranged (mount: HttpMount): Promise<RangedProbe> {
  const probe = await mount.probeRange()
  if (!probe.ranged) throw new Error(`expected a ranged origin, got ${probe.reason}`)
  return probe
}

test('an origin honouring Range: ranged, with its size and ETag; reads are the exact bytes', async () => {
  await withServer(rangeOrigin(origin()), async (srv) => {
    const mount = new HttpMount(srv.url, FAST)
    const probe = await ranged(mount)
    const { head, ...answer } = probe
    assert.equal(answer, { ranged: true, size: sample.byteLength, validator: { etag: '"v1"' } })
    same(head, sample.subarray(0, 4096), 'the probe reads the first 4 KiB (a CAR header) with the same request')
    assert.is(srv.log[0]?.method, 'GET')
    assert.is(srv.log[0]?.range, 'bytes=0-4095')
    const reader = mount.openInPlace(new SectionCache(), probe)
    try {
      same(await reader.read(1000, 333), sample.subarray(1000, 1333))
      assert.is(srv.log.at(-1)?.range, 'bytes=1000-1332', 'a random get asks for exactly its bytes')
      same(await reader.read(sample.byteLength - 10, 100), sample.subarray(sample.byteLength - 10), 'fewer bytes only at the end')
      assert.is((await reader.read(sample.byteLength, 10)).byteLength, 0)
    } finally {
      await reader.close()
    }
  })
})

test('Last-Modified alone is a validator', async () => {
  const lastModified = 'Wed, 21 Oct 2015 07:28:00 GMT'
  await withServer(rangeOrigin(origin({ etag: undefined, lastModified })), async (srv) => {
    const probe = await ranged(new HttpMount(srv.url, FAST))
    assert.equal(probe.validator, { lastModified })
  })
})

test('no validator, no size, or Range ignored: not ranged, and a 200 body is not downloaded', async () => {
  await withServer(rangeOrigin(origin({ etag: undefined })), async (srv) => {
    assert.equal(await new HttpMount(srv.url, FAST).probeRange(), { ranged: false, reason: 'no-validator' })
  })
  const unknownSize: Handler = (_req, res) => {
    res.writeHead(206, { etag: '"x"', 'content-range': 'bytes 0-0/*', 'content-length': 1 })
    res.end(sample.subarray(0, 1))
  }
  await withServer(unknownSize, async (srv) => {
    assert.equal(await new HttpMount(srv.url, FAST).probeRange(), { ranged: false, reason: 'unknown-size' })
  })
  // A large body sent with back pressure: had the probe read it, the server would have finished.
  const total = 64 * 1024 * 1024
  let finished: boolean | undefined
  let sent = 0
  const whole: Handler = (_req, res) => {
    res.writeHead(200, { etag: '"x"', 'content-length': total })
    const chunk = Buffer.alloc(64 * 1024)
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.byteLength
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      res.end()
    }
    res.on('close', () => { finished = res.writableFinished })
    pump()
  }
  await withServer(whole, async (srv) => {
    assert.equal(await new HttpMount(srv.url, FAST).probeRange(), { ranged: false, reason: 'range-ignored' })
    await until(() => finished !== undefined, 'the server to see the response closed')
    assert.is(finished, false, 'the client hung up before the body was sent')
    assert.ok(sent < total / 4, `only ${sent} of ${total} bytes left the server`)
  })
})

test('a probe answered with another Content-Range is not ranged; a missing origin is ERR_HTTP_STATUS 404', async () => {
  const wrong: Handler = (_req, res) => {
    res.writeHead(206, { etag: '"x"', 'content-range': `bytes 0-9/${sample.byteLength}`, 'content-length': 10 })
    res.end(sample.subarray(0, 10))
  }
  await withServer(wrong, async (srv) => {
    assert.equal(await new HttpMount(srv.url, FAST).probeRange(), { ranged: false, reason: 'bad-content-range' })
  })
  await withServer((_req, res) => { res.writeHead(404); res.end() }, async (srv) => {
    assert.is(await codeOf(new HttpMount(srv.url, FAST).probeRange()), 'ERR_HTTP_STATUS')
  })
})

test('a read answered with another Content-Range fails with ERR_HTTP_CHANGED, not retried', async () => {
  const o = origin()
  const good = rangeOrigin(o)
  const handler: Handler = (req, res, n) => {
    if (n === 0) { good(req, res, n); return }
    res.writeHead(206, { etag: '"v1"', 'content-range': `bytes 0-99/${sample.byteLength}`, 'content-length': 100 })
    res.end(sample.subarray(0, 100))
  }
  await withServer(handler, async (srv) => {
    const mount = new HttpMount(srv.url, FAST)
    const reader = mount.openInPlace(new SectionCache(), await ranged(mount))
    try {
      assert.is(await codeOf(reader.read(500, 100)), 'ERR_HTTP_CHANGED')
      assert.is(srv.log.length, 2, 'never retried')
    } finally {
      await reader.close()
    }
  })
})

test('an ETag that changes between reads fails the next read with ERR_HTTP_CHANGED, and its bytes are never returned', async () => {
  const o = origin()
  await withServer(rangeOrigin(o), async (srv) => {
    const mount = new HttpMount(srv.url, FAST)
    const reader = mount.openInPlace(new SectionCache(), await ranged(mount))
    try {
      same(await reader.read(0, 100), sample.subarray(0, 100))
      o.etag = '"v2"'
      o.body = Buffer.alloc(sample.byteLength, 7)
      assert.is(await codeOf(reader.read(200, 100)), 'ERR_HTTP_CHANGED')
      assert.is(srv.log.length, 3)
    } finally {
      await reader.close()
    }
  })
})

test('an origin that stops honouring Range fails the read with ERR_HTTP_RANGE', async () => {
  const o = origin()
  await withServer(rangeOrigin(o), async (srv) => {
    const mount = new HttpMount(srv.url, FAST)
    const reader = mount.openInPlace(new SectionCache(), await ranged(mount))
    try {
      o.ranges = false
      assert.is(await codeOf(reader.read(200, 100)), 'ERR_HTTP_RANGE')
    } finally {
      await reader.close()
    }
  })
})

test('a read that stalls, or trickles below the minimum rate, fails with ERR_HTTP_TIMEOUT after its retries', async () => {
  const good = rangeOrigin(origin())
  const stall: Handler = (req, res, n) => {
    if (n === 0) { good(req, res, n); return }
    res.writeHead(206, { etag: '"v1"', 'content-range': `bytes 0-99/${sample.byteLength}`, 'content-length': 100 })
    res.write(sample.subarray(0, 10)) // and nothing more
  }
  await withServer(stall, async (srv) => {
    const mount = new HttpMount(srv.url, { ...FAST, timeoutMs: 100, retries: 1 })
    const reader = mount.openInPlace(new SectionCache(), await ranged(mount))
    try {
      assert.is(await codeOf(reader.read(0, 100)), 'ERR_HTTP_TIMEOUT')
      assert.is(srv.log.length, 3, 'the probe, the read and its one retry')
    } finally {
      await reader.close()
    }
  })
  const trickle: Handler = (req, res, n) => {
    if (n === 0) { good(req, res, n); return }
    res.writeHead(206, { etag: '"v1"', 'content-range': `bytes 0-99999/${sample.byteLength}`, 'content-length': 100000 })
    const timer = setInterval(() => { if (!res.destroyed) res.write(sample.subarray(0, 1)) }, 10)
    res.on('close', () => { clearInterval(timer) })
  }
  await withServer(trickle, async (srv) => {
    const mount = new HttpMount(srv.url, { ...FAST, minBytesPerSecond: 10_000, rateWindowMs: 200, retries: 0 })
    const reader = mount.openInPlace(new SectionCache(), await ranged(mount))
    try {
      assert.is(await codeOf(reader.read(0, 100000)), 'ERR_HTTP_TIMEOUT')
    } finally {
      await reader.close()
    }
  })
})

for (const status of [503, 429]) {
  test(`${status} with Retry-After: the read waits as asked, then succeeds`, async () => {
    const good = rangeOrigin(origin())
    const at: number[] = []
    const handler: Handler = (req, res, n) => {
      at.push(performance.now())
      if (n === 1) { res.writeHead(status, { 'retry-after': '1' }); res.end(); return }
      good(req, res, n)
    }
    await withServer(handler, async (srv) => {
      const mount = new HttpMount(srv.url, FAST)
      const reader = mount.openInPlace(new SectionCache(), await ranged(mount))
      try {
        same(await reader.read(100, 50), sample.subarray(100, 150))
        assert.is(srv.log.length, 3)
        // A lower bound only: backoffMs (1 ms) alone would have retried at once.
        assert.ok((at[2] as number) - (at[1] as number) >= 900, 'the retry waited for Retry-After')
      } finally {
        await reader.close()
      }
    })
  })
}

test('a Retry-After beyond maxRetryAfterMs is capped', async () => {
  const good = rangeOrigin(origin())
  const handler: Handler = (req, res, n) => {
    if (n === 1) { res.writeHead(503, { 'retry-after': '3600' }); res.end(); return }
    good(req, res, n)
  }
  await withServer(handler, async (srv) => {
    const mount = new HttpMount(srv.url, { ...FAST, maxRetryAfterMs: 20 })
    const reader = mount.openInPlace(new SectionCache(), await ranged(mount))
    try {
      same(await reader.read(100, 50), sample.subarray(100, 150))
    } finally {
      await reader.close()
    }
  })
})

test('reads share keep-alive connections; after close, fds and sockets are back to their baseline', async () => {
  const sockets = new Set<Socket>()
  const inner = rangeOrigin(origin())
  const srv = await serve((req, res, n) => { sockets.add(req.socket); inner(req, res, n) })
  const allClosed = (): boolean => [...sockets].every((s) => s.closed)
  const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length
  try {
    const mount = new HttpMount(srv.url, FAST)
    const probe = await ranged(mount)
    await until(allClosed, 'the probe\'s connection to close')
    const baseline = await openFds()
    const reader = mount.openInPlace(new SectionCache({ cacheBytes: 1024 * 1024, sectionBytes: 4096 }), probe)
    for (let i = 0; i < 40; i++) {
      const p = (i * 7919) % (sample.byteLength - 100)
      same(await reader.read(p, 100), sample.subarray(p, p + 100))
    }
    await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const p = 200_000 + i * 1000
      same(await reader.read(p, 500), sample.subarray(p, p + 500))
    }))
    assert.is(srv.log.length, 49)
    assert.ok(sockets.size - 1 <= 8, `48 reads over ${sockets.size - 1} connections`)
    assert.ok(await openFds() > baseline, 'kept-alive connections are open before close')
    await reader.close()
    await until(allClosed, 'the server to see every connection closed')
    // The probe's own kept-alive socket may still have counted in the baseline and close later:
    // back to the baseline or below, never above (a leak would stay above).
    const deadline = Date.now() + 10_000
    let now = await openFds()
    while (now > baseline && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      now = await openFds()
    }
    assert.ok(now <= baseline, `${now} fds open after close, ${baseline} before the reads`)
  } finally {
    await srv.close()
  }
})

test.run()
