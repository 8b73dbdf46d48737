// GET/HEAD /car/{key}: whole shards with Range, ETag and CORS, against startServer on 127.0.0.1
// with a real store and real CAR files; the shard is released when a client gives up.
import * as assert from 'uvu/assert'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { startServer, type DagstoreServer } from '../src/app/server/index.js'
import type { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, until } from './helpers/store.js'
import { encodeCar, makeBlock, patterned } from './helpers/car-gen.js'

const test = dirSuite('server /car/{key}')
const TOKEN = 'test-token_0123456789'
const V1 = await readFile(fixture('sample-v1.car'))
const V2 = await readFile(fixture('sample-wrapped-v2.car'))

async function withServer (dir: string, fn: (store: DAGStore, server: DagstoreServer) => Promise<void>): Promise<void> {
  const { store } = await openStore(join(dir, 'store'))
  const errors: unknown[] = []
  let server: DagstoreServer | undefined
  try {
    server = await startServer(store, { port: 0, token: TOKEN, onError: (err) => { errors.push(err) } })
    await fn(store, server)
    assert.equal(errors, [], 'no errors reported')
  } finally {
    await server?.close()
    await store.close()
  }
}

interface Got { status: number, headers: Headers, body: Buffer }

async function get (server: DagstoreServer, path: string, init: RequestInit = {}): Promise<Got> {
  const res = await fetch(new URL(path, server.url), init)
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) }
}

const errorCode = (r: Got): string | undefined => (JSON.parse(r.body.toString('utf8')) as { error?: { code?: string } }).error?.code

test('the whole CAR, v1 and v2, with its type, length, validators and CORS; HEAD has the headers alone; no token needed', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    await store.register('v1 ✓/deal', new FileMount(fixture('sample-v1.car')))
    await store.register('v2', new FileMount(fixture('sample-wrapped-v2.car')), { lazy: true })
    const one = await get(server, `/car/${encodeURIComponent('v1 ✓/deal')}`)
    assert.is(one.status, 200)
    assert.ok(one.body.equals(V1), 'the file\'s bytes')
    assert.is(one.headers.get('content-type'), 'application/vnd.ipld.car; version=1')
    assert.is(one.headers.get('content-length'), String(V1.byteLength))
    assert.is(one.headers.get('accept-ranges'), 'bytes')
    assert.is(one.headers.get('access-control-allow-origin'), '*')
    assert.match(one.headers.get('access-control-expose-headers') ?? '', /Content-Range/)
    assert.match(one.headers.get('etag') ?? '', /^"[A-Za-z0-9_-]{32}"$/)
    assert.is(one.headers.get('content-disposition'), 'attachment; filename="v1 __deal.car"; filename*=UTF-8\'\'v1%20%E2%9C%93%2Fdeal.car')
    assert.ok(one.headers.get('last-modified') !== null)
    // A lazy shard is initialized by the acquire the download makes.
    const two = await get(server, '/car/v2')
    assert.equal([two.status, two.headers.get('content-type')], [200, 'application/vnd.ipld.car; version=2'])
    assert.ok(two.body.equals(V2))
    const head = await get(server, '/car/v2', { method: 'HEAD' })
    assert.equal([head.status, head.body.byteLength, head.headers.get('content-length'), head.headers.get('etag')],
      [200, 0, String(V2.byteLength), two.headers.get('etag')])
    assert.is(store.getShardInfo('v2').refs, 0)
    const preflight = await get(server, '/car/v2', { method: 'OPTIONS', headers: { origin: 'http://example.test', 'access-control-request-headers': 'range' } })
    assert.equal([preflight.status, preflight.headers.get('access-control-allow-origin')], [204, '*'])
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Range/)
  })
})

test('Range: one range → 206 and exactly those bytes; outside → 416 with bytes */size; several or malformed → 200 whole', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    await store.register('k', new FileMount(fixture('sample-v1.car')))
    const size = V1.byteLength
    const position = fc.oneof(fc.integer({ min: 0, max: size + 10 }), fc.constantFrom(0, 1, size - 1, size, size + 1, 2 ** 60))
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        fc.tuple(position, position).map(([a, b]) => ({ header: `bytes=${a}-${b}`, a, b: b as number | undefined, suffix: false })),
        position.map((a) => ({ header: `bytes=${a}-`, a, b: undefined, suffix: false })),
        position.map((n) => ({ header: `bytes=-${n}`, a: n, b: undefined, suffix: true }))
      ),
      async ({ header, a, b, suffix }) => {
        const r = await get(server, '/car/k', { headers: { range: header } })
        let start: number
        let end: number
        if (suffix) {
          if (a === 0) {
            return assert.equal([r.status, r.headers.get('content-range'), errorCode(r)], [416, `bytes */${size}`, 'ERR_RANGE_NOT_SATISFIABLE'])
          }
          start = Math.max(0, size - a)
          end = size - 1
        } else {
          if (b !== undefined && b < a) return assert.equal([r.status, r.body.byteLength], [200, size], 'an invalid range is ignored')
          if (a >= size) return assert.equal([r.status, r.headers.get('content-range')], [416, `bytes */${size}`])
          start = a
          end = b === undefined ? size - 1 : Math.min(b, size - 1)
        }
        assert.is(r.status, 206, header)
        assert.is(r.headers.get('content-range'), `bytes ${start}-${end}/${size}`)
        assert.is(r.headers.get('content-length'), String(end - start + 1))
        assert.ok(r.body.equals(V1.subarray(start, end + 1)), header)
      }
    ), { numRuns: 80 })
    for (const header of ['bytes=0-1,5-9', 'bytes=abc', 'items=0-5', 'bytes=-']) {
      const r = await get(server, '/car/k', { headers: { range: header } })
      assert.equal([r.status, r.headers.get('content-range'), r.body.byteLength], [200, null, size], header)
    }
  })
})

test('If-None-Match → 304; If-Range holds a range only for the same representation; the ETag changes with the bytes', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    const path = join(ctx.dir, 'x.car')
    await copyFile(fixture('sample-v1.car'), path)
    await store.register('x', new FileMount(path))
    const first = await get(server, '/car/x')
    const etag = first.headers.get('etag') as string
    const lastModified = first.headers.get('last-modified') as string
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const r = await get(server, '/car/x', { headers: { 'if-none-match': inm } })
      assert.equal([r.status, r.body.byteLength, r.headers.get('etag')], [304, 0, etag], inm)
    }
    assert.is((await get(server, '/car/x', { headers: { 'if-none-match': '"other"' } })).status, 200)
    assert.is((await get(server, '/car/x', { headers: { range: 'bytes=0-9', 'if-range': etag } })).status, 206)
    assert.is((await get(server, '/car/x', { headers: { range: 'bytes=0-9', 'if-range': lastModified } })).status, 206)
    assert.is((await get(server, '/car/x', { headers: { range: 'bytes=0-9', 'if-range': '"stale"' } })).status, 200)
    assert.is((await get(server, '/car/x', { headers: { range: 'bytes=0-9', 'if-range': `W/${etag}` } })).status, 200, 'If-Range compares strongly')
    // Same key, other bytes: a new shard behind the key.
    await store.destroy('x')
    await writeFile(path, V2)
    await store.register('x', new FileMount(path))
    const second = await get(server, '/car/x')
    assert.ok(second.body.equals(V2))
    assert.is.not(second.headers.get('etag'), etag)
    assert.is((await get(server, '/car/x', { headers: { 'if-none-match': etag } })).status, 200)
  })
})

test('errors: unknown 404, bad key 400, errored shard 409 with its cause, other methods 405, /car alone 404', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    await store.register('junk', new FileMount(fixture('junk.dat'))).catch(() => {})
    const cases: Array<[string, string, number, string]> = [
      ['GET', '/car/nope', 404, 'ERR_SHARD_UNKNOWN'],
      ['GET', '/car/%E0%A4%A', 400, 'ERR_INVALID_REQUEST'],
      ['GET', '/car/a%00b', 400, 'ERR_INVALID_SHARD_KEY'],
      ['GET', '/car/junk', 409, 'ERR_SHARD_ERRORED'],
      ['POST', '/car/junk', 405, 'ERR_METHOD_NOT_ALLOWED'],
      ['GET', '/car', 404, 'ERR_NOT_FOUND_ROUTE'],
      ['GET', '/car/a/b', 404, 'ERR_NOT_FOUND_ROUTE']
    ]
    for (const [method, path, status, code] of cases) {
      const r = await get(server, path, { method })
      assert.equal([r.status, errorCode(r), r.headers.get('access-control-allow-origin')], [status, code, '*'], `${method} ${path}`)
    }
    const errored = await get(server, '/car/junk')
    assert.is((JSON.parse(errored.body.toString()) as { error: { cause?: { code?: string } } }).error.cause?.code, 'ERR_INVALID_CAR')
  })
})

test('a client that goes away mid-download releases the shard; back pressure holds the rest meanwhile', async (ctx) => {
  await withServer(ctx.dir, async (store, server) => {
    // 32 MiB: far more than socket buffers hold, so the server is still sending when the client leaves.
    const blocks = Array.from({ length: 128 }, (_, i) => makeBlock('raw', patterned(256 * 1024, i + 1)))
    const path = join(ctx.dir, 'big.car')
    await writeFile(path, encodeCar(blocks).bytes)
    await store.register('big', new FileMount(path))
    const req = httpRequest({ host: server.host, port: server.port, path: '/car/big', agent: false })
    const res = await new Promise<IncomingMessage>((resolve, reject) => { req.once('response', resolve).once('error', reject).end() })
    assert.is(res.statusCode, 200)
    await new Promise((resolve) => res.once('data', resolve))
    res.pause()
    assert.is(store.getShardInfo('big').refs, 1, 'held while the response is under way')
    req.destroy()
    await until(() => store.getShardInfo('big').refs === 0, 'the release after the client left')
    assert.is(store.getShardInfo('big').state, 'available')
  })
})

test.run()
