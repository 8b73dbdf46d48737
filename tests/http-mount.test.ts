// HttpMount against a real node:http server on 127.0.0.1 (port 0), serving sample-v1.car.
import type { Socket } from 'node:net'
import { readFile } from 'node:fs/promises'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { CarReader } from '@ipld/car'
import { HttpMount } from '../src/storage/mount/http.js'
import { MountRegistry } from '../src/storage/mount/registry.js'
import { FileMount } from '../src/storage/mount/file.js'
import { isAbortError } from '../src/base/errors.js'
import type { MountReader } from '../src/base/mount-types.js'
import { mountConformance } from '../src/testing/index.js'
import { runConformance } from './helpers/conformance.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'
import { serve, standard, withServer, type Handler } from './helpers/http-server.js'
import { at } from './helpers/assert.js'
import { flipBits } from './helpers/file-reader.js'

const sample = await readFile(fixture('sample-v1.car'))
const SIZE = sample.byteLength

/** Writes a raw response head then `bodyBytes` of `body`, then closes (or not) the socket. */
function raw (socket: Socket, head: string, body: Uint8Array, end: boolean): void {
  socket.write(head + '\r\n\r\n')
  socket.write(body)
  if (end) socket.end()
}

async function collect (reader: MountReader, start = 0): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of reader.stream(start)) parts.push(c)
  return Buffer.concat(parts)
}

async function codeOf (p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err) {
    return (err as { code?: string }).code
  }
  return 'no error'
}

async function download (mount: HttpMount, start = 0): Promise<Buffer> {
  const reader = await mount.fetch()
  try {
    return await collect(reader, start)
  } finally {
    await reader.close()
  }
}

// ---------------------------------------------------------------------------------------------

runConformance('mount conformance: HttpMount', (test) => {
  mountConformance(test, async () => {
    const srv = await serve(standard(sample))
    return { mount: new HttpMount(srv.url), expected: sample, cleanup: srv.close }
  })
})

runConformance('mount conformance: HttpMount (server without Range)', (test) => {
  mountConformance(test, async () => {
    const srv = await serve(standard(sample, { ranges: false }))
    return { mount: new HttpMount(srv.url), expected: sample, cleanup: srv.close }
  })
})

const test = suite('HttpMount')

/** The first GET sends 50,000 bytes and then drops the connection; every other request goes to `then`. */
function resetFirstGet (then: Handler): Handler {
  let gets = 0
  return (req, res, n) => {
    if (req.method === 'GET' && gets++ === 0) {
      res.writeHead(200, { 'accept-ranges': 'bytes', 'content-length': SIZE })
      res.write(sample.subarray(0, 50_000), () => { setTimeout(() => req.socket.destroy(), 20) })
      return
    }
    then(req, res, n)
  }
}

test('info, URL validation, serialize, default registry', () => {
  const m = new HttpMount('http://127.0.0.1:1/x.car')
  assert.equal(m.info(), { kind: 'remote', sequential: true, seek: false, random: false })
  assert.is(m.serialize().href, 'http://127.0.0.1:1/x.car')
  for (const bad of ['ftp://x/y', 'file:///x', 'not a url', 'bytes:AAAA']) {
    try {
      void new HttpMount(bad)
      assert.unreachable(bad)
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_INVALID_MOUNT', bad)
    }
  }
  const reg = new MountRegistry()
  assert.ok(reg.has('http') && reg.has('https'))
  assert.instance(reg.instantiate('https://example.com/a.car'), HttpMount)
  assert.is(reg.represent(m).href, m.serialize().href)
})

test('stat(): HEAD size/exists; 404 and 410 → not there; 403 → ERR_HTTP_STATUS', async () => {
  await withServer((req, res) => {
    if (req.url === '/gone') { res.writeHead(410); res.end(); return }
    if (req.url === '/missing') { res.writeHead(404); res.end(); return }
    if (req.url === '/forbidden') { res.writeHead(403); res.end(); return }
    standard(sample)(req, res, 0)
  }, async (srv) => {
    const st = await new HttpMount(srv.url).stat()
    assert.equal(st, { exists: true, size: SIZE, ready: true })
    assert.is(at(srv.log, 0).method, 'HEAD')
    const base = new URL(srv.url)
    assert.equal(await new HttpMount(new URL('/missing', base)).stat(), { exists: false, ready: true })
    assert.equal(await new HttpMount(new URL('/gone', base)).stat(), { exists: false, ready: true })
    assert.is(await codeOf(new HttpMount(new URL('/forbidden', base)).stat()), 'ERR_HTTP_STATUS')
    assert.is(await codeOf(new HttpMount(new URL('/missing', base)).fetch()), 'ERR_HTTP_STATUS')
  })
})

test('connection reset mid-body → resumes with Range; byte-identical', async () => {
  await withServer(resetFirstGet(standard(sample)), async (srv) => {
    const got = await download(new HttpMount(srv.url, { backoffMs: 1 }))
    assert.ok(got.equals(sample), 'bytes differ')
    const getsLog = srv.log.filter((r) => r.method === 'GET')
    assert.is(getsLog.length, 2)
    assert.is(at(getsLog, 0).range, undefined)
    assert.ok(/^bytes=\d+-$/.test(at(getsLog, 1).range ?? ''), `resume range ${String(at(getsLog, 1).range)}`)
    assert.ok(Number(/\d+/.exec(at(getsLog, 1).range ?? '')?.[0]) > 0)
  })
})

test('server advertising ranges but answering 200 to Range: not taken as a resume (restart + skip)', async () => {
  let gets = 0
  await withServer((req, res) => {
    res.setHeader('accept-ranges', 'bytes')
    if (req.method === 'GET' && gets++ === 0) {
      res.writeHead(200, { 'content-length': SIZE })
      res.write(sample.subarray(0, 40_000), () => { setTimeout(() => req.socket.destroy(), 20) })
      return
    }
    res.writeHead(200, { 'content-length': SIZE })
    res.end(req.method === 'HEAD' ? undefined : sample) // ignores Range
  }, async (srv) => {
    const mount = new HttpMount(srv.url, { backoffMs: 1 })
    assert.ok((await download(mount)).equals(sample), 'full stream')
    assert.ok(srv.log.some((r) => r.range !== undefined), 'a Range was asked for')
    assert.ok((await download(mount, 1234)).equals(sample.subarray(1234)), 'suffix from a Range-ignoring server')
  })
})

test('the resource changes between a reset and the resume (new ETag / Last-Modified) → ERR_HTTP_CHANGED, never spliced', async () => {
  const other = Buffer.from(sample)
  flipBits(other, 60_000, 0xff) // same length: only the version headers can tell
  for (const header of ['etag', 'last-modified'] as const) {
    const [before, after] = header === 'etag' ? ['"v1"', '"v2"'] : ['Sat, 21 Nov 2026 10:00:00 GMT', 'Sun, 22 Nov 2026 10:00:00 GMT']
    let gets = 0
    const first = resetFirstGet((req, res, n) => {
      // Reached by the HEAD and by every GET after the reset: those see the new version.
      res.setHeader(header, req.method === 'GET' ? after : before)
      standard(req.method === 'GET' ? other : sample)(req, res, n)
    })
    await withServer((req, res, n) => {
      if (req.method === 'GET' && gets++ === 0) res.setHeader(header, before)
      first(req, res, n)
    }, async (srv) => {
      assert.is(await codeOf(download(new HttpMount(srv.url, { backoffMs: 1 }))), 'ERR_HTTP_CHANGED', header)
    })
  }
  // The same version across the resume is fine (the reset test above has no version headers at all).
  const same = resetFirstGet(standard(sample))
  await withServer((req, res, n) => {
    res.setHeader('etag', '"v1"')
    same(req, res, n)
  }, async (srv) => {
    assert.ok((await download(new HttpMount(srv.url, { backoffMs: 1 }))).equals(sample))
  })
})

test('206 with the wrong Content-Range → ERR_HTTP_RANGE', async () => {
  await withServer((req, res) => {
    if (req.headers.range !== undefined) {
      res.writeHead(206, { 'content-range': `bytes 0-${SIZE - 1}/${SIZE}`, 'content-length': SIZE })
      res.end(sample)
      return
    }
    standard(sample)(req, res, 0)
  }, async (srv) => {
    assert.is(await codeOf(download(new HttpMount(srv.url), 10)), 'ERR_HTTP_RANGE')
  })
})

test('500 then success → retried', async () => {
  let n = 0
  await withServer((req, res, i) => {
    if (n++ < 2) { res.writeHead(500); res.end(); return }
    standard(sample)(req, res, i)
  }, async (srv) => {
    assert.ok((await download(new HttpMount(srv.url, { backoffMs: 1 }))).equals(sample))
    assert.ok(srv.log.length >= 4)
  })
})

test('500 forever → ERR_HTTP_STATUS after `retries`; 429 retried too', async () => {
  let status = 500
  await withServer((_req, res) => { res.writeHead(status); res.end() }, async (srv) => {
    const err = await new HttpMount(srv.url, { retries: 2, backoffMs: 1 }).stat().catch((e: unknown) => e) as { code?: string, status?: number }
    assert.is(err.code, 'ERR_HTTP_STATUS')
    assert.is(err.status, 500)
    assert.is(srv.log.length, 3)
    status = 429
    assert.is(await codeOf(new HttpMount(srv.url, { retries: 1, backoffMs: 1 }).stat()), 'ERR_HTTP_STATUS')
    assert.is(srv.log.length, 5)
  })
})

test('500 forever on GET (HEAD fine) → ERR_HTTP_STATUS after retries', async () => {
  await withServer((req, res, i) => {
    if (req.method === 'GET') { res.writeHead(503); res.end(); return }
    standard(sample)(req, res, i)
  }, async (srv) => {
    assert.is(await codeOf(download(new HttpMount(srv.url, { retries: 3, backoffMs: 1 }))), 'ERR_HTTP_STATUS')
    assert.is(srv.log.filter((r) => r.method === 'GET').length, 4)
  })
})

test('stall → ERR_HTTP_TIMEOUT within a small timeoutMs (headers and mid-body)', async () => {
  await withServer((req, res) => {
    if (req.method === 'HEAD') { standard(sample)(req, res, 0); return }
    if (req.url === '/body') {
      res.writeHead(200, { 'content-length': SIZE })
      res.write(sample.subarray(0, 1000)) // then nothing
    }
    // '/head': never answers
  }, async (srv) => {
    const base = new URL(srv.url)
    let t = Date.now()
    assert.is(await codeOf(download(new HttpMount(new URL('/head', base), { timeoutMs: 50, retries: 1, backoffMs: 1 }))), 'ERR_HTTP_TIMEOUT')
    assert.ok(Date.now() - t < 2000, `took ${Date.now() - t} ms`)
    t = Date.now()
    assert.is(await codeOf(download(new HttpMount(new URL('/body', base), { timeoutMs: 50, retries: 1, backoffMs: 1 }))), 'ERR_HTTP_TIMEOUT')
    assert.ok(Date.now() - t < 2000, `took ${Date.now() - t} ms`)
  })
})

test('lying Content-Length: body longer than declared → ERR_HTTP_LENGTH_MISMATCH, no extra bytes yielded', async () => {
  const declared = SIZE - 1000
  await withServer((req, res) => {
    if (req.method === 'HEAD') { res.writeHead(200, { 'content-length': declared }); res.end(); return }
    raw(req.socket, `HTTP/1.1 200 OK\r\nContent-Length: ${declared}\r\nConnection: close`, sample, true)
  }, async (srv) => {
    const reader = await new HttpMount(srv.url, { backoffMs: 1 }).fetch()
    let yielded = 0
    try {
      for await (const c of reader.stream()) yielded += c.byteLength
      assert.unreachable('should fail')
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_HTTP_LENGTH_MISMATCH', String(err))
    } finally {
      await reader.close()
    }
    assert.ok(yielded <= declared, `yielded ${yielded} > ${declared}`)
  })
})

test('GET Content-Length disagreeing with HEAD → ERR_HTTP_LENGTH_MISMATCH', async () => {
  await withServer((req, res) => {
    if (req.method === 'HEAD') { res.writeHead(200, { 'content-length': SIZE - 10 }); res.end(); return }
    res.writeHead(200, { 'content-length': SIZE })
    res.end(sample)
  }, async (srv) => {
    assert.is(await codeOf(download(new HttpMount(srv.url))), 'ERR_HTTP_LENGTH_MISMATCH')
  })
})

test('lying Content-Length: body shorter than declared → retried, then ERR_HTTP_LENGTH_MISMATCH', async () => {
  await withServer((req, res) => {
    if (req.method === 'HEAD') { res.writeHead(200, { 'content-length': SIZE }); res.end(); return }
    raw(req.socket, `HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\nConnection: close`, sample.subarray(0, SIZE - 500), true)
  }, async (srv) => {
    assert.is(await codeOf(download(new HttpMount(srv.url, { retries: 2, backoffMs: 1 }))), 'ERR_HTTP_LENGTH_MISMATCH')
    assert.is(srv.log.filter((r) => r.method === 'GET').length, 3)
  })
})

test('shorter body once, then honest → resumed, byte-identical', async () => {
  let gets = 0
  await withServer((req, res, i) => {
    if (req.method === 'GET' && gets++ === 0) {
      raw(req.socket, `HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: ${SIZE}\r\nConnection: close`, sample.subarray(0, 7777), true)
      return
    }
    standard(sample)(req, res, i)
  }, async (srv) => {
    assert.ok((await download(new HttpMount(srv.url, { backoffMs: 1 }))).equals(sample))
    assert.is(srv.log.at(-1)?.range, 'bytes=7777-')
  })
})

test('custom headers reach the server (HEAD, GET, resume) and are never serialized', async () => {
  await withServer(standard(sample), async (srv) => {
    const mount = new HttpMount(srv.url, { headers: { authorization: 'Bearer s3cret', 'x-extra': 'yes' } })
    assert.ok((await download(mount, 100)).equals(sample.subarray(100)))
    assert.ok(srv.log.length >= 2)
    for (const r of srv.log) {
      assert.is(r.headers.authorization, 'Bearer s3cret')
      assert.is(r.headers['x-extra'], 'yes')
    }
    const url = mount.serialize().href
    assert.not.match(url, 's3cret')
    assert.not.match(JSON.stringify(mount), 's3cret')
    assert.is(url, srv.url)
  })
})

test('a registry factory can supply headers to restored mounts', async () => {
  await withServer(standard(sample), async (srv) => {
    const reg = new MountRegistry({ builtins: false })
    reg.register('file', (u) => FileMount.fromURL(u))
    reg.register('http', (u) => new HttpMount(u, { headers: { authorization: 'Bearer t' } }))
    const m = reg.instantiate(srv.url)
    assert.equal(await m.stat(), { exists: true, size: SIZE, ready: true })
    assert.is(at(srv.log, 0).headers.authorization, 'Bearer t')
  })
})

test('abort mid-stream rejects promptly; closing the reader ends its streams', async () => {
  await withServer((req, res) => {
    if (req.method === 'HEAD') { standard(sample)(req, res, 0); return }
    res.writeHead(200, { 'content-length': SIZE })
    res.write(sample.subarray(0, 1000)) // then trickles nothing
  }, async (srv) => {
    const ac = new AbortController()
    const reader = await new HttpMount(srv.url, { timeoutMs: 60_000 }).fetch(ac.signal)
    const it = reader.stream()[Symbol.asyncIterator]()
    const pending = (async () => { for (;;) { const r = await it.next(); if (r.done === true) return } })()
    setTimeout(() => ac.abort(), 30)
    const t = Date.now()
    try {
      await pending
      assert.unreachable('should abort')
    } catch (err) {
      assert.ok(isAbortError(err), String(err))
    }
    assert.ok(Date.now() - t < 1000, `abort took ${Date.now() - t} ms`)
    await reader.close()

    const reader2 = await new HttpMount(srv.url, { timeoutMs: 60_000 }).fetch()
    const p2 = collect(reader2)
    setTimeout(() => { void reader2.close() }, 30)
    const t2 = Date.now()
    assert.ok(await p2.then(() => false, () => true), 'close rejects the stream')
    assert.ok(Date.now() - t2 < 1000)

    const pre = new AbortController()
    pre.abort()
    assert.ok(await new HttpMount(srv.url).stat(pre.signal).then(() => false, isAbortError))
  })
})

test('connection refused → retried, then ERR_HTTP_NETWORK', async () => {
  const srv = await serve(standard(sample))
  const url = srv.url
  await srv.close()
  assert.is(await codeOf(new HttpMount(url, { retries: 1, backoffMs: 1 }).stat()), 'ERR_HTTP_NETWORK')
})

test.run()

// ---------------------------------------------------------------------------------------------

const store = dirSuite('HttpMount in a DAGStore')

store('eager HTTP shard → available; every block byte-identical; survives a restart via the default registry', async (ctx) => {
  await withServer(standard(sample), async (srv) => {
    const expected = await CarReader.fromBytes(sample)
    const check = async (s: Awaited<ReturnType<typeof openStore>>['store']): Promise<number> => {
      const acc = await s.acquire('remote')
      const bs = acc.blockstore()
      let n = 0
      for await (const block of expected.blocks()) {
        assert.ok(await bs.has(block.cid))
        assert.equal(new Uint8Array(await bs.get(block.cid)), new Uint8Array(block.bytes), `bytes of ${block.cid}`)
        n++
      }
      await acc.close()
      return n
    }
    const first = await openStore(ctx.dir, { indexRepo: ctx.indexRepo })
    await first.store.register('remote', new HttpMount(srv.url))
    assert.is(first.store.getShardInfo('remote').state, 'available')
    assert.ok(await check(first.store) > 1000)
    await first.store.close()

    const second = await openStore(ctx.dir, { indexRepo: ctx.indexRepo, mounts: new MountRegistry() })
    assert.is(second.store.getShardInfo('remote').state, 'available')
    assert.ok(await check(second.store) > 1000)
    await second.store.close()
    assert.equal(first.reported.concat(second.reported), [])
  })
})

store.run()
