// The section cache (storage/remote/): shared requests, one bounded budget, read-ahead, keep
// after close on an injected clock, and requests nobody waits for aborted. Real origins on
// 127.0.0.1; what the server was asked for is the evidence.
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { HttpMount, type HttpMountOptions, type RangedProbe } from '../src/storage/mount/http.js'
import { SectionCache } from '../src/storage/remote/section-cache.js'
import type { SectionCacheOptions } from '../src/storage/remote/options.js'
import { codeOf } from './helpers/assert.js'
import { fixture } from './helpers/fixtures.js'
import { serve, withServer, type Handler, type TestServer } from './helpers/http-server.js'
import { askedRange, rangeOrigin } from './helpers/range-origin.js'
import { until } from './helpers/store.js'

const test = suite('remote cache')
const sample = await readFile(fixture('sample-v1.car'))
const KiB = 1024

function same (got: Uint8Array, want: Uint8Array, message?: string): void {
  assert.ok(Buffer.from(got).equals(want), message ?? `${got.byteLength} bytes differ from the ${want.byteLength} expected`)
}

async function probed (url: string, options: HttpMountOptions = {}): Promise<{ mount: HttpMount, probe: RangedProbe }> {
  const mount = new HttpMount(url, { backoffMs: 1, maxBackoffMs: 5, ...options })
  const probe = await mount.probeRange()
  if (!probe.ranged) throw new Error(`not ranged: ${probe.reason}`)
  return { mount, probe }
}

/** The ranged reads the server saw after the probe, as [start, end). */
function reads (srv: TestServer): Array<[number, number]> {
  return srv.log.slice(1).map((e) => askedRange(e.range))
}

test('a section of a multi-section request is handed out when its bytes are in, not when the whole request is', async () => {
  const S = 4 * KiB
  // Requests for more than one section send their first section, then hold the rest until the
  // test lets them go: a stream that waited for whole requests would stop at the first held one.
  const held: Array<() => void> = []
  const inner = rangeOrigin({ body: sample, etag: '"a"', ranges: true })
  const origin: Handler = (req, res, n) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    const first = Number(m?.[1] ?? 0)
    const last = Math.min(Number(m?.[2] ?? 0), sample.byteLength - 1)
    if (m === null || last - first + 1 <= S) { inner(req, res, n); return }
    res.writeHead(206, {
      etag: '"a"', 'accept-ranges': 'bytes', 'content-length': last - first + 1, 'content-range': `bytes ${first}-${last}/${sample.byteLength}`
    })
    // The first section comes a little later, so the stream is already waiting for it.
    setTimeout(() => { res.write(sample.subarray(first, first + S)) }, 20)
    held.push(() => { res.end(sample.subarray(first + S, last + 1)) })
  }
  await withServer(origin, async (srv) => {
    const { mount, probe } = await probed(srv.url)
    const reader = mount.openInPlace(new SectionCache({ sectionBytes: S, maxReadAheadBytes: 8 * S }), probe)
    try {
      const it = reader.stream(0)[Symbol.asyncIterator]()
      let pos = 0
      // Until read-ahead is in full swing (2 sections a request) and the stream has had the
      // first section of a request that is held.
      const insideHeld = (): boolean => reads(srv).some(([a, b]) => b - a > S && pos === a + S)
      while (!insideHeld()) {
        const { value } = await Promise.race([it.next(), new Promise<never>((_resolve, reject) => {
          setTimeout(() => { reject(new Error(`the stream stopped at byte ${pos}, waiting for a held request to end`)) }, 10_000).unref()
        })])
        same(value as Uint8Array, sample.subarray(pos, pos + (value as Uint8Array).byteLength))
        pos += (value as Uint8Array).byteLength
      }
      assert.ok(held.length > 0, 'some multi-section requests were held')
      for (const release of held.splice(0)) release()
      await it.return?.()
    } finally {
      for (const release of held.splice(0)) release()
      await reader.close()
    }
  })
})

test('50 concurrent gets of one cold block, from 5 readers, make exactly one request', async () => {
  await withServer(rangeOrigin({ body: sample, etag: '"a"', ranges: true }), async (srv) => {
    const { mount, probe } = await probed(srv.url)
    const cache = new SectionCache()
    const readers = Array.from({ length: 5 }, () => mount.openInPlace(cache, probe))
    try {
      const got = await Promise.all(Array.from({ length: 50 }, async (_, i) => await (readers[i % 5] as typeof readers[0]).read(12_345, 4_000)))
      for (const g of got) same(g, sample.subarray(12_345, 16_345))
      assert.equal(reads(srv), [[12_345, 16_345]])
      const stats = cache.stats()
      assert.is(stats.rangedRequests, 1)
      assert.is(stats.bytesFetched, 4_000)
      assert.is(stats.misses, 50)
      // And once cached, the same get is a hit.
      same(await (readers[0] as typeof readers[0]).read(12_345, 4_000), sample.subarray(12_345, 16_345))
      assert.is(cache.stats().hits, 1)
      assert.is(srv.log.length, 2)
    } finally {
      await Promise.all(readers.map(async (r) => { await r.close() }))
    }
  })
})

test('a read covered by cached sections asks for nothing; one partly covered asks only for the rest', async () => {
  await withServer(rangeOrigin({ body: sample, etag: '"a"', ranges: true }), async (srv) => {
    const { mount, probe } = await probed(srv.url)
    const cache = new SectionCache({ sectionBytes: 4 * KiB, maxReadAheadBytes: 0 })
    const reader = mount.openInPlace(cache, probe)
    try {
      const it = reader.stream(0)[Symbol.asyncIterator]()
      await it.next()
      await it.return?.()
      // A stream asks for the rest of the source in one request, and takes in what it grants:
      // with no read-ahead, the section it reads.
      assert.equal(reads(srv), [[0, sample.byteLength]])
      await until(() => cache.stats().inFlightRequests === 0, 'the stream\'s request to be let go')
      assert.is(cache.stats().cachedBytes, 4 * KiB)
      same(await reader.read(100, 1000), sample.subarray(100, 1100))
      assert.is(srv.log.length, 2, 'served from the section')
      same(await reader.read(3 * KiB, 2 * KiB), sample.subarray(3 * KiB, 5 * KiB))
      assert.equal(reads(srv).at(-1), [4 * KiB, 5 * KiB], 'only the bytes the section lacks')
    } finally {
      await reader.close()
    }
  })
})

test('read-ahead starts at 2 sections, doubles while sequential up to maxReadAheadBytes, and resets on a seek', async () => {
  const S = 4 * KiB
  await withServer(rangeOrigin({ body: sample, etag: '"a"', ranges: true }), async (srv) => {
    const { mount, probe } = await probed(srv.url)
    const cache = new SectionCache({ sectionBytes: S, maxReadAheadBytes: 8 * S })
    const reader = mount.openInPlace(cache, probe)
    try {
      const it = reader.stream(0)[Symbol.asyncIterator]()
      // After the section at index i is handed out, sections up to i + window are granted to
      // the stream's request (reserved, or already in): never more, whatever the origin sends.
      const granted = (): number => { const st = cache.stats(); return (st.cachedBytes + st.inFlightBytes) / S }
      const windows = [2, 4, 8, 8, 8]
      let pos = 0
      for (const [i, window] of windows.entries()) {
        const { value } = await it.next()
        same(value as Uint8Array, sample.subarray(pos, pos + S))
        pos += S
        assert.is(granted(), i + 1 + window, `sections 0..${i + window} granted after section ${i}`)
        await until(() => cache.stats().inFlightBytes === 0, `sections 0..${i + window} to arrive`)
        assert.is(cache.stats().cachedBytes, (i + 1 + window) * S, 'no more than the window is taken in')
        assert.is(cache.stats().readAheadBytes, Math.min(2 * window, 8) * S)
      }
      // One request for the whole stream, from where it started to the end of the source.
      assert.equal(reads(srv), [[0, sample.byteLength]])
      await it.return?.()
      assert.is(cache.stats().readAheadBytes, 0)
      await until(() => cache.stats().inFlightRequests === 0, 'read-ahead nobody waits for to stop')

      // A stream that picks up where the last one stopped is still sequential: the window stays at 8.
      const asked = srv.log.length
      const cont = reader.stream(pos)[Symbol.asyncIterator]()
      await cont.next()
      await cont.return?.()
      pos += S
      // A seek: back to 2 sections.
      const far = 80
      const before = cache.stats().cachedBytes
      const seek = reader.stream(far * S + 10)[Symbol.asyncIterator]()
      const first = await seek.next()
      same(first.value as Uint8Array, sample.subarray(far * S + 10, (far + 1) * S))
      assert.equal(reads(srv).at(-1), [far * S, sample.byteLength], 'the seek\'s request starts at its section')
      assert.is(granted() - before / S, 3, 'the seek\'s section and 2 ahead')
      await until(() => cache.stats().inFlightBytes === 0, 'the seek\'s sections to arrive')
      assert.is(cache.stats().cachedBytes - before, 3 * S)
      await seek.return?.()
      assert.ok(srv.log.length > asked)
    } finally {
      await reader.close()
    }
  })
})

test('a stream\'s request paused at its grant is not timed out while its reader holds; a stall while bytes are due still is', async () => {
  const S = 4 * KiB
  const strict = { timeoutMs: 100, minBytesPerSecond: 1_000_000, rateWindowMs: 200 }
  await withServer(rangeOrigin({ body: sample, etag: '"a"', ranges: true }), async (srv) => {
    const { mount, probe } = await probed(srv.url, { ...strict, retries: 0 })
    const reader = mount.openInPlace(new SectionCache({ sectionBytes: S, maxReadAheadBytes: 2 * S }), probe)
    try {
      const it = reader.stream(0)[Symbol.asyncIterator]()
      const parts: Uint8Array[] = [(await it.next()).value as Uint8Array]
      // The origin has sent everything it could; the request waits at its grant. Holding the
      // stream four times longer than the stall timeout and two rate windows must not fail it.
      await new Promise((resolve) => setTimeout(resolve, 400))
      for (let r = await it.next(); r.done !== true; r = await it.next()) parts.push(r.value)
      same(Buffer.concat(parts), sample)
      assert.equal(reads(srv), [[0, sample.byteLength]], 'one request, never retried')
    } finally {
      await reader.close()
    }
  })
  // Three sections, then nothing: the stream has granted more, so the wait is the origin's.
  const good = rangeOrigin({ body: sample, etag: '"a"', ranges: true })
  const stalls: Handler = (req, res, n) => {
    if (n === 0) { good(req, res, n); return }
    const [first] = askedRange(req.headers.range)
    const size = sample.byteLength
    res.writeHead(206, { etag: '"a"', 'content-range': `bytes ${first}-${size - 1}/${size}`, 'content-length': size - first })
    if (first === 0) res.write(sample.subarray(0, 3 * S))
  }
  await withServer(stalls, async (srv) => {
    const { mount, probe } = await probed(srv.url, { ...strict, retries: 1 })
    const reader = mount.openInPlace(new SectionCache({ sectionBytes: S, maxReadAheadBytes: 8 * S }), probe)
    try {
      const it = reader.stream(0)[Symbol.asyncIterator]()
      for (let i = 0; i < 3; i++) same((await it.next()).value as Uint8Array, sample.subarray(i * S, (i + 1) * S))
      assert.is(await codeOf(it.next()), 'ERR_HTTP_TIMEOUT')
      assert.equal(reads(srv), [[0, sample.byteLength], [3 * S, sample.byteLength]], 'the retry resumed after the sections given')
    } finally {
      await reader.close()
    }
  })
})

test('streams that do not all fit the budget wait for room inside their one request each, within the budget; a section let go early is fetched alone', async () => {
  const S = 4 * KiB
  // Four streams of four origins, each wanting its section and one ahead (8 sections), in a
  // budget of 5: some grants wait for room. Each stream must go on in its own request rather
  // than start a new one whenever its next section did not fit at once.
  const origin = (i: number): Handler => rangeOrigin({ body: sample, etag: `"p${i}"`, ranges: true })
  const servers = await Promise.all(Array.from({ length: 4 }, async (_, i) => await serve(origin(i))))
  const cacheBytes = 5 * S
  const cache = new SectionCache({ cacheBytes, sectionBytes: S, maxReadAheadBytes: S })
  let peak = 0
  const check = (): void => {
    const st = cache.stats()
    peak = Math.max(peak, st.cachedBytes + st.inFlightBytes + st.pooledBytes)
  }
  try {
    const readers = await Promise.all(servers.map(async (srv) => {
      const { mount, probe } = await probed(srv.url)
      return mount.openInPlace(cache, probe)
    }))
    try {
      const sampler = setInterval(check, 1)
      try {
        await Promise.all(readers.map(async (reader) => {
          const parts: Uint8Array[] = []
          for await (const part of reader.stream(0)) { check(); parts.push(part) }
          same(Buffer.concat(parts), sample)
        }))
      } finally {
        clearInterval(sampler)
      }
      assert.ok(peak <= cacheBytes, `held ${peak} bytes, over the budget of ${cacheBytes}`)
      for (const srv of servers) {
        // A read-ahead section the budget let go before its stream read it is fetched alone.
        const [run, ...alone] = reads(srv)
        assert.equal(run, [0, sample.byteLength], 'one request per stream')
        for (const [a, b] of alone) assert.ok(a % S === 0 && b - a === S, `only single sections besides: ${JSON.stringify(reads(srv))}`)
      }
    } finally {
      await Promise.all(readers.map(async (r) => { await r.close() }))
    }
  } finally {
    await Promise.all(servers.map(async (srv) => { await srv.close() }))
  }
})

test('streams paused at their grants hold up neither other streams nor gets: 20 of one source, then a 21st and a get', async () => {
  const S = 4 * KiB
  await withServer(rangeOrigin({ body: sample, etag: '"a"', ranges: true }), async (srv) => {
    const { mount, probe } = await probed(srv.url)
    const cache = new SectionCache({ sectionBytes: S, maxReadAheadBytes: S })
    const reader = mount.openInPlace(cache, probe)
    const streams: Array<AsyncIterator<Uint8Array>> = []
    const inTime = async <T>(p: Promise<T>, what: string): Promise<T> => await Promise.race([p, new Promise<never>((_resolve, reject) => {
      setTimeout(() => { reject(new Error(`${what} waited 10 s: held up by paused streams`)) }, 10_000).unref()
    })])
    try {
      // More streams than a source's connection slots (16), each at its own place, each taking
      // one section and then holding its request at the grant (nobody reads on).
      for (let i = 0; i <= 20; i++) {
        const it = reader.stream(i * 4 * S)[Symbol.asyncIterator]()
        streams.push(it)
        const { value } = await inTime(it.next(), `stream ${i}`)
        same(value as Uint8Array, sample.subarray(i * 4 * S, i * 4 * S + S))
      }
      const at = 100 * S + 7
      same(await inTime(reader.read(at, 3000), 'a get'), sample.subarray(at, at + 3000))
    } finally {
      await Promise.all(streams.map(async (it) => await it.return?.()))
      await reader.close()
    }
  })
})

test('a 64-reader stress run never holds more than cacheBytes, and every byte is right', async () => {
  const origin = (i: number): Handler => rangeOrigin({ body: sample, etag: `"s${i}"`, ranges: true })
  const servers = await Promise.all(Array.from({ length: 4 }, async (_, i) => await serve(origin(i))))
  const cacheBytes = 64 * KiB
  const cache = new SectionCache({ cacheBytes, sectionBytes: 8 * KiB, maxReadAheadBytes: 32 * KiB })
  let samples = 0
  let peak = 0
  const check = (): void => {
    const s = cache.stats()
    samples++
    peak = Math.max(peak, s.cachedBytes + s.inFlightBytes)
    const held = s.cachedBytes + s.inFlightBytes + s.pooledBytes
    assert.ok(held <= cacheBytes, `${s.cachedBytes} cached + ${s.inFlightBytes} in flight + ${s.pooledBytes} spare > ${cacheBytes}`)
  }
  try {
    const sources = await Promise.all(servers.map(async (srv) => await probed(srv.url)))
    let seed = 42
    const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
    await Promise.all(Array.from({ length: 64 }, async (_, r) => {
      const { mount, probe } = sources[r % 4] as typeof sources[0]
      const reader = mount.openInPlace(cache, probe)
      check()
      try {
        for (let op = 0; op < 12; op++) {
          if (r % 3 === 0 && op % 4 === 0) {
            // A stretch of a stream.
            const start = random(sample.byteLength)
            let pos = start
            let chunks = 0
            for await (const chunk of reader.stream(start)) {
              check()
              same(chunk, sample.subarray(pos, pos + chunk.byteLength))
              pos += chunk.byteLength
              if (++chunks === 6) break
            }
          } else {
            const p = random(sample.byteLength)
            const n = 1 + random(12 * KiB)
            same(await reader.read(p, n), sample.subarray(p, p + n))
          }
          check()
        }
      } finally {
        await reader.close()
        check()
      }
    }))
    const s = cache.stats()
    assert.is(s.inFlightBytes, 0)
    assert.is(s.inFlightRequests, 0)
    assert.ok(s.evictions > 0, 'the budget was under pressure')
    assert.ok(samples > 64 * 12)
    assert.ok(peak > cacheBytes / 2)
  } finally {
    await Promise.all(servers.map(async (srv) => { await srv.close() }))
  }
})

test('a source\'s sections stay keepAfterCloseMs after its last reader closes, then go first (injected clock)', async () => {
  const S = 4 * KiB
  for (const expired of [false, true]) {
    const a = await serve(rangeOrigin({ body: sample, etag: '"a"', ranges: true }))
    const b = await serve(rangeOrigin({ body: sample, etag: '"b"', ranges: true }))
    try {
      let now = 0
      const options: SectionCacheOptions = { cacheBytes: 3 * S, sectionBytes: S, maxReadAheadBytes: 0, keepAfterCloseMs: 1000, clock: () => now }
      const cache = new SectionCache(options)
      const A = await probed(a.url)
      const B = await probed(b.url)
      const readB = B.mount.openInPlace(cache, B.probe)
      same(await readB.read(0, S), sample.subarray(0, S)) // B's extent [0, S): the least recently used
      let readA = A.mount.openInPlace(cache, A.probe)
      same(await readA.read(S, S), sample.subarray(S, 2 * S))
      await readA.close()
      now = 500
      // Reopened within the window: cached, no request.
      readA = A.mount.openInPlace(cache, A.probe)
      same(await readA.read(S, S), sample.subarray(S, 2 * S))
      assert.is(a.log.length, 2)
      await readA.close()
      now = expired ? 500 + 1000 : 500 + 999
      // Two more of B's: one fits, the next needs room.
      same(await readB.read(2 * S, S), sample.subarray(2 * S, 3 * S))
      same(await readB.read(3 * S, S), sample.subarray(3 * S, 4 * S))
      const sources = new Map(cache.stats().sources.map((s) => [s.label, s]))
      if (expired) {
        assert.is(sources.get(a.url), undefined, 'A\'s section went first, and A with it')
        same(await readB.read(0, S), sample.subarray(0, S))
        assert.is(b.log.length, 4, 'B\'s oldest extent stayed')
      } else {
        assert.is(sources.get(a.url)?.cachedBytes, S, 'A\'s section is still kept')
        same(await readB.read(0, S), sample.subarray(0, S))
        assert.is(b.log.length, 5, 'B\'s least recently used extent went instead')
      }
      await readB.close()
    } finally {
      await a.close()
      await b.close()
    }
  }
})

test('scan resistance: a lone stream of a source larger than a quarter of the cache keeps none of what it passed; a small source stays cached', async () => {
  const S = 4 * KiB
  await withServer(rangeOrigin({ body: sample, etag: '"a"', ranges: true }), async (srv) => {
    const { mount, probe } = await probed(srv.url)
    // sample-v1.car (469 KiB) is more than a quarter of 1 MiB: a big source for this cache.
    const small = new SectionCache({ sectionBytes: S, maxReadAheadBytes: 8 * S, cacheBytes: 1024 * KiB })
    let reader = mount.openInPlace(small, probe)
    let peak = 0
    const parts: Uint8Array[] = []
    for await (const chunk of reader.stream(0)) {
      parts.push(chunk)
      peak = Math.max(peak, small.stats().cachedBytes)
    }
    same(Buffer.concat(parts), sample)
    assert.ok(peak <= 12 * S, `the stream kept ${peak} bytes cached (read-ahead is 8 sections)`)
    await reader.close()
    // The same stream through a cache four times the source's size keeps every section.
    const big = new SectionCache({ sectionBytes: S, maxReadAheadBytes: 8 * S, cacheBytes: 4 * 1024 * KiB })
    reader = mount.openInPlace(big, probe)
    for await (const chunk of reader.stream(0)) assert.ok(chunk.byteLength > 0)
    assert.is(big.stats().cachedBytes, sample.byteLength)
    await reader.close()
  })
})

test('a request every waiter gave up on is aborted and its reservation released', async () => {
  const held: IncomingMessage[] = []
  let closed = 0
  const good = rangeOrigin({ body: sample, etag: '"a"', ranges: true })
  const stall: Handler = (req, res, n) => {
    if (n === 0) { good(req, res, n); return }
    held.push(req)
    req.socket.on('close', () => { closed++ })
    res.writeHead(206, { etag: '"a"', 'content-range': `bytes 0-99/${sample.byteLength}`, 'content-length': 100 })
    res.write(sample.subarray(0, 1))
  }
  await withServer(stall, async (srv) => {
    const { mount, probe } = await probed(srv.url)
    const cache = new SectionCache()
    const reader = mount.openInPlace(cache, probe)
    try {
      const controllers = [new AbortController(), new AbortController(), new AbortController()]
      const gets = controllers.map((c) => reader.read(0, 100, c.signal))
      await until(() => held.length === 1 && cache.stats().inFlightBytes === 100, 'the one shared request to reach the server')
      for (const c of controllers) c.abort()
      for (const g of gets) assert.is(await codeOf(g), 'ABORT_ERR')
      await until(() => closed === 1, 'the server to see the request torn down')
      assert.is(cache.stats().inFlightBytes, 0)
      assert.is(cache.stats().inFlightRequests, 0)
      assert.is(held.length, 1)
    } finally {
      await reader.close()
    }
  })
})

test('reads after close, and reads cut short by close, fail with ERR_READER_CLOSED; a read larger than the cache with ERR_REMOTE_READ_TOO_LARGE', async () => {
  const good = rangeOrigin({ body: sample, etag: '"a"', ranges: true })
  const stall: Handler = (req, res, n) => {
    if (n === 0) { good(req, res, n); return }
    res.writeHead(206, { etag: '"a"', 'content-range': `bytes 0-99/${sample.byteLength}`, 'content-length': 100 })
  }
  await withServer(stall, async (srv) => {
    const { mount, probe } = await probed(srv.url)
    const cache = new SectionCache({ cacheBytes: 64 * KiB, sectionBytes: 4 * KiB })
    const reader = mount.openInPlace(cache, probe)
    assert.is(await codeOf(reader.read(0, 64 * KiB + 1)), 'ERR_REMOTE_READ_TOO_LARGE')
    const pending = reader.read(0, 100)
    await until(() => srv.log.length === 2, 'the read to reach the server')
    await reader.close()
    assert.is(await codeOf(pending), 'ERR_READER_CLOSED')
    assert.is(await codeOf(reader.read(0, 100)), 'ERR_READER_CLOSED')
    const it = reader.stream(0)[Symbol.asyncIterator]()
    assert.is(await codeOf(it.next()), 'ERR_READER_CLOSED')
    assert.is(cache.stats().inFlightBytes, 0)
  })
})

test('bad options are refused', () => {
  assert.throws(() => new SectionCache({ cacheBytes: 0 }), /cacheBytes/)
  assert.throws(() => new SectionCache({ cacheBytes: 1024, sectionBytes: 2048 }), /sectionBytes/)
  assert.throws(() => new SectionCache({ keepAfterCloseMs: -1 }), /keepAfterCloseMs/)
})

test.run()
