// The HTTP server's request limits (body size, URL length, slow clients, connections) and its
// graceful close: real sockets against startServer on 127.0.0.1 with a real store.
import * as assert from 'uvu/assert'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { startServer, type DagstoreServer, type ServeOptions } from '../src/app/server/index.js'
import type { DAGStore } from '../src/engine/store.js'
import type { DAGStoreOptions } from '../src/engine/options.js'
import { FileMount } from '../src/storage/mount/file.js'
import { fixture } from './helpers/fixtures.js'
import { Gate, dirSuite, gatedIndexer, openStore, until, type DirContext } from './helpers/store.js'

const test = dirSuite('server limits')
const TOKEN = 'limits-token'
const SAMPLE = fixture('sample-v1.car')
const SAMPLE_URL = pathToFileURL(SAMPLE).href
const ROOT = fixture('.')

interface Reply { status: number, headers: IncomingHttpHeaders, json: any } // eslint-disable-line @typescript-eslint/no-explicit-any

/** A request on its own connection; resolves with the answer (the request body may still be unsent). */
async function call (
  server: DagstoreServer, method: string, path: string, opts: { body?: unknown, headers?: Record<string, string> } = {}
): Promise<Reply> {
  const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}`, ...opts.headers }
  let payload: string | undefined
  if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body)
    headers['content-type'] = 'application/json'
  }
  return await new Promise<Reply>((resolve, reject) => {
    const req = httpRequest({ host: server.host, port: server.port, method, path, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        let json: unknown
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** A raw connection: what it received, and when (ms after connecting) the server closed it. */
interface Raw { socket: Socket, received: () => string, closedAfter: Promise<number> }

async function rawConnect (server: DagstoreServer): Promise<Raw> {
  const socket = connect(server.port, server.host)
  const started = Date.now()
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (c: string) => { received += c })
  socket.on('error', () => {})
  const closedAfter = new Promise<number>((resolve) => { socket.once('close', () => { resolve(Date.now() - started) }) })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return { socket, received: () => received, closedAfter }
}

async function withServer (
  ctx: DirContext, options: { serve?: ServeOptions, store?: Partial<DAGStoreOptions> }, fn: (store: DAGStore, server: DagstoreServer) => Promise<void>
): Promise<void> {
  const { store } = await openStore(ctx.dir, options.store)
  let server: DagstoreServer | undefined
  try {
    server = await startServer(store, { port: 0, token: TOKEN, allowRoots: [ROOT], onError: () => {}, ...options.serve })
    await fn(store, server)
  } finally {
    await server?.close()
    await store.close()
  }
}

test('413: a declared body over the limit is refused unread; a streamed one as soon as it passes the limit', async (ctx) => {
  await withServer(ctx, { serve: { limits: { maxBodyBytes: 1024 } } }, async (_store, server) => {
    const declared = await call(server, 'POST', '/shards', { body: { key: 'k', url: SAMPLE_URL, pad: 'x'.repeat(2000) } })
    assert.equal([declared.status, declared.json.error.code], [413, 'ERR_PAYLOAD_TOO_LARGE'])

    // Chunked, never finished: the answer comes once 1024 bytes are passed, then the connection goes.
    const streamed = await new Promise<{ status: number, code: string, closed: Promise<void> }>((resolve, reject) => {
      const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
      const req = httpRequest({ host: server.host, port: server.port, method: 'POST', path: '/shards', agent: false, headers }, (res) => {
        let text = ''
        res.on('data', (c: Buffer) => { text += c.toString() })
        res.on('end', () => {
          const closed = new Promise<void>((resolve) => {
            if (req.socket?.destroyed === true) resolve()
            else req.socket?.once('close', () => { resolve() })
          })
          resolve({ status: res.statusCode ?? 0, code: JSON.parse(text).error.code, closed })
        })
      })
      req.on('error', reject)
      req.write('{"pad":"' + 'x'.repeat(700))
      setTimeout(() => { req.write('x'.repeat(700)) }, 20)
    })
    assert.equal([streamed.status, streamed.code], [413, 'ERR_PAYLOAD_TOO_LARGE'])
    await streamed.closed

    const small = await call(server, 'POST', '/shards', { body: { key: 'k', url: SAMPLE_URL, lazy: true } })
    assert.is(small.status, 201)
  })
})

test('414 for a request target over maxUrlLength (even past node\'s header limit), and a custom limit', async (ctx) => {
  await withServer(ctx, {}, async (_store, server) => {
    for (const n of [9000, 20_000]) {
      const r = await call(server, 'GET', '/shards/' + 'a'.repeat(n))
      assert.equal([r.status, r.json.error.code], [414, 'ERR_URL_TOO_LONG'], String(n))
    }
    const within = await call(server, 'GET', '/shards/' + 'a'.repeat(1000))
    assert.is(within.status, 404)
  })
  await withServer(ctx, { serve: { limits: { maxUrlLength: 64 } } }, async (_store, server) => {
    assert.is((await call(server, 'GET', '/healthz?' + 'x'.repeat(64))).status, 414)
    assert.is((await call(server, 'GET', '/healthz')).status, 200)
  })
})

test('slow clients: headers trickling in and an unfinished body are cut off by the timeouts', async (ctx) => {
  await withServer(ctx, { serve: { limits: { headersTimeoutMs: 200, requestTimeoutMs: 400 } } }, async (_store, server) => {
    // Slowloris: a header line every 50 ms, never the blank line that ends them.
    const slow = await rawConnect(server)
    slow.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n')
    const drip = setInterval(() => { if (!slow.socket.destroyed) slow.socket.write('X-Slow: 1\r\n') }, 50)
    const headersCut = await slow.closedAfter
    clearInterval(drip)
    assert.ok(headersCut < 2000, `headers cut after ${headersCut} ms`)
    assert.match(slow.received(), /^HTTP\/1\.1 408/)

    // Headers done, body promised but never sent in full.
    const partial = await rawConnect(server)
    partial.socket.write(`POST /shards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"key":`)
    const bodyCut = await partial.closedAfter
    assert.ok(bodyCut < 2000, `body cut after ${bodyCut} ms`)

    // A connection that never says anything is not kept either.
    const silent = await rawConnect(server)
    const silentCut = await silent.closedAfter
    assert.ok(silentCut < 2000, `silent connection cut after ${silentCut} ms`)

    assert.is((await call(server, 'GET', '/healthz')).status, 200, 'others are served meanwhile')
  })
})

test('idle timeout: a connection without progress is dropped; /events outlives it through heartbeats', async (ctx) => {
  const openEvents = async (server: DagstoreServer): Promise<Raw> => {
    const sse = await rawConnect(server)
    sse.socket.write(`GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`)
    return sse
  }
  await withServer(ctx, { serve: { limits: { idleTimeoutMs: 300 }, sseHeartbeatMs: 5000 } }, async (_store, server) => {
    const quiet = await openEvents(server)
    const cut = await Promise.race([quiet.closedAfter, sleep(2000).then(() => -1)])
    assert.ok(cut >= 250, `cut after ${cut} ms`)
    assert.match(quiet.received(), /^HTTP\/1\.1 200/)
  })
  await withServer(ctx, { serve: { limits: { idleTimeoutMs: 300 } } }, async (_store, server) => {
    const sse = await openEvents(server)
    const result = await Promise.race([sse.closedAfter, sleep(900).then(() => 'open')])
    assert.is(result, 'open')
    assert.match(sse.received(), /^HTTP\/1\.1 200[^]*: ping/, 'default heartbeat within the idle timeout')
    sse.socket.destroy()
  })
})

test('maxConnections: connections beyond the limit are refused until one closes', async (ctx) => {
  await withServer(ctx, { serve: { limits: { maxConnections: 2 } } }, async (_store, server) => {
    const a = await rawConnect(server)
    const b = await rawConnect(server)
    await sleep(20)
    const c = await rawConnect(server)
    const cut = await Promise.race([c.closedAfter, sleep(1000).then(() => -1)])
    assert.ok(cut >= 0, 'third connection closed')
    assert.is(c.received(), '')
    a.socket.destroy()
    await a.closedAfter
    await sleep(20)
    assert.is((await call(server, 'GET', '/healthz')).status, 200)
    b.socket.destroy()
  })
})

test('graceful close: /events ends, an in-flight registration finishes, new connections are refused, the store stays open', async (ctx) => {
  const gate = new Gate()
  await withServer(ctx, { store: { shardIndexer: gatedIndexer(gate) } }, async (store, server) => {
    gate.close()
    const registering = call(server, 'POST', '/shards', { body: { key: 'slow', url: SAMPLE_URL } })
    await until(() => gate.waiting === 1, 'indexing held')
    const sse = await rawConnect(server)
    sse.socket.write(`GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`)
    await until(() => sse.received().includes(': subscribed'), 'subscribed')

    let closed = false
    const closing = server.close().then(() => { closed = true })
    await sse.closedAfter
    assert.match(sse.received(), /0\r\n\r\n$/, 'the event stream was ended, not cut')
    await sleep(100)
    assert.is(closed, false, 'close waits for the in-flight response')
    let refused: unknown
    try { await call(server, 'GET', '/healthz') } catch (err) { refused = err }
    assert.is((refused as { code?: string } | undefined)?.code, 'ECONNREFUSED')

    gate.open()
    const reply = await registering
    assert.equal([reply.status, reply.json.state, reply.headers.connection], [201, 'available', 'close'])
    await closing
    assert.is(store.getShardInfo('slow').state, 'available')
    await store.register('after', new FileMount(SAMPLE))
    const acc = await store.acquire('after')
    await acc.close()
  })
})

test('close drops responses that outlast shutdownTimeoutMs; close is idempotent; the store keeps working', async (ctx) => {
  const gate = new Gate()
  await withServer(ctx, { store: { shardIndexer: gatedIndexer(gate) }, serve: { shutdownTimeoutMs: 200 } }, async (store, server) => {
    gate.close()
    const registering = call(server, 'POST', '/shards', { body: { key: 'stuck', url: SAMPLE_URL } })
      .then(() => 'answered', (err: { code?: string }) => err.code)
    await until(() => gate.waiting === 1, 'indexing held')
    const started = Date.now()
    await Promise.all([server.close(), server.close()])
    const took = Date.now() - started
    assert.ok(took >= 150 && took < 2000, `close took ${took} ms`)
    assert.is(await registering, 'ECONNRESET')
    gate.open()
    await until(() => store.getShardInfo('stuck').state === 'available', 'registration completes without the client')
    await server.close()
  })
})

test.run()
