// The HTTP server's admin JSON API, auth, allow-roots, /events, /find, /gc, /metrics, /healthz:
// real requests against startServer on 127.0.0.1 with a real store.
import * as assert from 'uvu/assert'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { copyFile, mkdir, readFile, stat, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { base16 } from 'multiformats/bases/base16'
import { startServer, type DagstoreServer, type ServeOptions } from '../src/app/server/index.js'
import type { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import type { DAGStoreOptions } from '../src/engine/options.js'
import { carBlocks, fixture, unknownCid } from './helpers/fixtures.js'
import { dirSuite, openStore, until, type DirContext } from './helpers/store.js'
import { serve, standard } from './helpers/http-server.js'
import { at } from './helpers/assert.js'

const test = dirSuite('server admin')
const TOKEN = 'test-token_0123456789'
const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)
const blocks = await carBlocks('sample-v1.car')

interface Reply { status: number, headers: IncomingHttpHeaders, text: string, json: any } // eslint-disable-line @typescript-eslint/no-explicit-any

interface RequestOptions {
  token?: string | null
  body?: unknown
  raw?: string
  headers?: Record<string, string>
}

/** One request on its own connection; `path` goes out exactly as given (no URL normalisation). */
async function call (server: DagstoreServer, method: string, path: string, opts: RequestOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers }
  const token = opts.token === undefined ? TOKEN : opts.token
  if (token !== null) headers.authorization = `Bearer ${token}`
  let payload: string | undefined = opts.raw
  if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body)
    headers['content-type'] ??= 'application/json'
  }
  return await new Promise<Reply>((resolve, reject) => {
    const req = httpRequest({ host: server.host, port: server.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

const enc = encodeURIComponent

interface Ctx { store: DAGStore, server: DagstoreServer, root: string }

/** A store in ctx.dir, an allowed folder holding sample.car (and junk.car), and a server. */
async function withServer (
  ctx: DirContext, options: { serve?: ServeOptions, store?: Partial<DAGStoreOptions> }, fn: (c: Ctx) => Promise<void>
): Promise<void> {
  const root = join(ctx.dir, 'cars')
  await mkdir(root)
  await copyFile(SAMPLE, join(root, 'sample.car'))
  await copyFile(fixture('junk.dat'), join(root, 'junk.car'))
  const { store } = await openStore(join(ctx.dir, 'store'), options.store)
  const errors: unknown[] = []
  let server: DagstoreServer | undefined
  try {
    server = await startServer(store, { port: 0, token: TOKEN, allowRoots: [root], onError: (err) => { errors.push(err) }, ...options.serve })
    await fn({ store, server, root })
    assert.equal(errors, [], 'no errors reported')
  } finally {
    await server?.close()
    await store.close()
  }
}

const fileUrl = (path: string): string => pathToFileURL(path).href

test('healthz, metrics without auth; unknown routes 404; wrong methods 405 with Allow', async (ctx) => {
  await withServer(ctx, {}, async ({ server }) => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    const health = await call(server, 'GET', '/healthz', { token: null })
    assert.equal([health.status, health.json], [200, { ok: true }])
    assert.match(String(health.headers['content-type']), /^application\/json/)
    const metrics = await call(server, 'GET', '/metrics', { token: null })
    assert.is(metrics.status, 200)
    assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    assert.match(metrics.text, /dagstore_shards\{state="available"\} 0/)
    const missing = await call(server, 'GET', '/nope', { token: null })
    assert.equal([missing.status, missing.json.error.code], [404, 'ERR_NOT_FOUND_ROUTE'])
    const put = await call(server, 'PUT', '/shards')
    assert.equal([put.status, put.json.error.code, put.headers.allow], [405, 'ERR_METHOD_NOT_ALLOWED', 'GET, POST, HEAD'])
    const delGc = await call(server, 'GET', '/gc')
    assert.equal([delGc.status, delGc.headers.allow], [405, 'POST'])
    const postHealth = await call(server, 'POST', '/healthz')
    assert.is(postHealth.status, 405)
  })
})

test('auth: 401 with a challenge without or with a wrong token; the right token passes', async (ctx) => {
  await withServer(ctx, {}, async ({ server }) => {
    assert.is(server.token, TOKEN)
    for (const path of ['/shards', '/shards/x', '/events', '/find/x']) {
      const none = await call(server, 'GET', path, { token: null })
      assert.equal([none.status, none.json.error.code], [401, 'ERR_UNAUTHORIZED'], path)
      assert.match(String(none.headers['www-authenticate']), /^Bearer realm="dagstore"/)
    }
    const wrong = await call(server, 'GET', '/shards', { token: TOKEN + 'x' })
    assert.equal([wrong.status, wrong.json.error.code], [401, 'ERR_UNAUTHORIZED'])
    // Admin routes never answer a browser's cross-origin read (CORS is for gateway routes only).
    const listed = await call(server, 'GET', '/shards')
    assert.is(listed.status, 200)
    assert.is(listed.headers['access-control-allow-origin'], undefined)
    assert.match(String(wrong.headers['www-authenticate']), /invalid_token/)
    const basic = await call(server, 'GET', '/shards', { token: null, headers: { authorization: `Basic ${TOKEN}` } })
    assert.is(basic.status, 401)
    // Before the 405: an unauthenticated caller learns nothing about the admin routes.
    assert.is((await call(server, 'PUT', '/gc', { token: null })).status, 401)
    const ok = await call(server, 'GET', '/shards')
    assert.equal([ok.status, ok.json], [200, { shards: [] }])
  })
})

test('auth: no token only on loopback; without one, foreign Host and cross-origin requests are refused', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    for (const host of ['0.0.0.0', '::', '192.0.2.1']) {
      let err: unknown
      try { await startServer(store, { host, port: 0, token: null }) } catch (e) { err = e }
      assert.instance(err, TypeError, host)
    }
    for (const token of ['', 'has space', 'new\nline']) {
      let err: unknown
      try { await startServer(store, { port: 0, token }) } catch (e) { err = e }
      assert.instance(err, TypeError, JSON.stringify(token))
    }
    const server = await startServer(store, { port: 0, token: null })
    try {
      assert.is(server.token, null)
      const ok = await call(server, 'GET', '/shards', { token: null })
      assert.is(ok.status, 200)
      const local = await call(server, 'GET', '/shards', { token: null, headers: { host: `localhost:${server.port}`, origin: `http://localhost:${server.port}` } })
      assert.is(local.status, 200)
      const rebound = await call(server, 'GET', '/shards', { token: null, headers: { host: `evil.example:${server.port}` } })
      assert.equal([rebound.status, rebound.json.error.code], [403, 'ERR_FORBIDDEN_HOST'])
      const cross = await call(server, 'POST', '/gc', { token: null, headers: { origin: 'http://evil.example' } })
      assert.equal([cross.status, cross.json.error.code], [403, 'ERR_FORBIDDEN_ORIGIN'])
    } finally {
      await server.close()
    }
    // Left out, a token is generated: the admin API is never open by accident.
    const generated = await startServer(store, { port: 0 })
    try {
      assert.ok(typeof generated.token === 'string' && generated.token.length >= 32)
      assert.is((await call(generated, 'GET', '/shards', { token: null })).status, 401)
      assert.is((await call(generated, 'GET', '/shards', { token: generated.token })).status, 200)
    } finally {
      await generated.close()
    }
  } finally {
    await store.close()
  }
})

test('POST /shards (file:, eager and lazy), GET /shards sorted, GET /shards/{key} with odd keys', async (ctx) => {
  await withServer(ctx, {}, async ({ server, root }) => {
    const url = fileUrl(join(root, 'sample.car'))
    const created = await call(server, 'POST', '/shards', { body: { key: 'b/deal', url } })
    assert.is(created.status, 201)
    assert.equal(created.json, { key: 'b/deal', state: 'available', refs: 0, url, size: sampleBytes.byteLength, blocks: blocks.length - 6, placement: 'local' })
    const lazy = await call(server, 'POST', '/shards', { body: { key: 'a lazy ✓', url, lazy: true } })
    assert.equal([lazy.status, lazy.json.state, lazy.json.blocks], [201, 'new', undefined])
    const list = await call(server, 'GET', '/shards')
    assert.equal(list.json.shards.map((s: { key: string }) => s.key), ['a lazy ✓', 'b/deal'])
    const one = await call(server, 'GET', `/shards/${enc('b/deal')}`)
    assert.equal(one.json, created.json)
    const odd = await call(server, 'GET', `/shards/${enc('a lazy ✓')}`)
    assert.is(odd.json.key, 'a lazy ✓')
    const head = await call(server, 'HEAD', `/shards/${enc('b/deal')}`)
    assert.equal([head.status, head.text], [200, ''])
    // A '/' that is not encoded is another path, not a key.
    assert.is((await call(server, 'GET', '/shards/b/deal')).status, 404)
    const unknown = await call(server, 'GET', '/shards/nope')
    assert.equal([unknown.status, unknown.json.error.code], [404, 'ERR_SHARD_UNKNOWN'])
    const nul = await call(server, 'GET', '/shards/a%00b')
    assert.equal([nul.status, nul.json.error.code], [400, 'ERR_INVALID_SHARD_KEY'])
    const badEscape = await call(server, 'GET', '/shards/%E0%A4%A')
    assert.equal([badEscape.status, badEscape.json.error.code], [400, 'ERR_INVALID_REQUEST'])
  })
})

test('POST /shards: request errors and their codes', async (ctx) => {
  await withServer(ctx, {}, async ({ server, root }) => {
    const url = fileUrl(join(root, 'sample.car'))
    const cases: Array<[RequestOptions, number, string]> = [
      [{ raw: '{"key":', headers: { 'content-type': 'application/json' } }, 400, 'ERR_INVALID_REQUEST'],
      [{ body: ['key', 'url'] }, 400, 'ERR_INVALID_REQUEST'],
      [{ body: { key: 'k' } }, 400, 'ERR_INVALID_REQUEST'],
      [{ body: { key: 1, url } }, 400, 'ERR_INVALID_REQUEST'],
      [{ body: { key: 'k', url, lazy: 'yes' } }, 400, 'ERR_INVALID_REQUEST'],
      [{ body: { key: 'k', url, Lazy: true } }, 400, 'ERR_INVALID_REQUEST'],
      [{ raw: JSON.stringify({ key: 'k', url }) }, 415, 'ERR_UNSUPPORTED_MEDIA_TYPE'],
      [{ raw: JSON.stringify({ key: 'k', url }), headers: { 'content-type': 'text/plain' } }, 415, 'ERR_UNSUPPORTED_MEDIA_TYPE'],
      [{ body: { key: '', url } }, 400, 'ERR_INVALID_SHARD_KEY'],
      [{ body: { key: 'x'.repeat(1025), url } }, 400, 'ERR_INVALID_SHARD_KEY'],
      [{ body: { key: 'k', url: 'not a url' } }, 400, 'ERR_INVALID_MOUNT'],
      [{ body: { key: 'k', url: 'gopher://x/y.car' } }, 400, 'ERR_UNKNOWN_MOUNT_SCHEME'],
      // bytes: URLs are never registered through the API, well-formed or not (cli-targets.test.ts).
      [{ body: { key: 'k', url: 'bytes:%%%' } }, 400, 'ERR_MOUNT_SCHEME_NOT_ALLOWED']
    ]
    for (const [opts, status, code] of cases) {
      const r = await call(server, 'POST', '/shards', opts)
      assert.equal([r.status, r.json?.error?.code], [status, code], JSON.stringify(opts))
      assert.type(r.json.error.message, 'string')
    }
    assert.is((await call(server, 'POST', '/shards', { body: { key: 'k', url } })).status, 201)
    const dup = await call(server, 'POST', '/shards', { body: { key: 'k', url } })
    assert.equal([dup.status, dup.json.error.code], [409, 'ERR_SHARD_EXISTS'])
    const list = await call(server, 'GET', '/shards')
    assert.equal(list.json.shards.map((s: { key: string }) => s.key), ['k'], 'refused requests registered nothing')
  })
})

test('allow roots (a server reachable from elsewhere): inside ok; outside, .., symlink escapes 403; missing file and folders 400; no roots: every file: URL 403', async (ctx) => {
  await withServer(ctx, { serve: { host: '0.0.0.0' } }, async ({ server, root }) => {
    const outside = join(ctx.dir, 'outside.car')
    await copyFile(SAMPLE, outside)
    await symlink(outside, join(root, 'escape.car'))
    await mkdir(join(root, 'sub'))
    await symlink(ctx.dir, join(root, 'sub', 'up'))
    await symlink(join(root, 'sample.car'), join(root, 'alias.car'))
    const forbidden = [
      fileUrl(outside),
      'file:///etc/passwd',
      `file://${root}/../outside.car`,
      `file://${root}/%2e%2e/outside.car`,
      `file://${root}/sub/.%2E/../outside.car`,
      fileUrl(join(root, 'escape.car')),
      fileUrl(join(root, 'sub', 'up', 'outside.car'))
    ]
    for (const url of forbidden) {
      const r = await call(server, 'POST', '/shards', { body: { key: 'x', url } })
      assert.equal([r.status, r.json.error.code], [403, 'ERR_FORBIDDEN_PATH'], url)
    }
    for (const url of [fileUrl(join(root, 'missing.car')), fileUrl(join(root, 'sub')), 'file://remote.example/x.car', `file://${root}/a%2Fb.car`]) {
      const r = await call(server, 'POST', '/shards', { body: { key: 'x', url } })
      assert.equal([r.status, r.json.error.code], [400, 'ERR_INVALID_MOUNT'], url)
    }
    // A symlink that stays inside is fine, and the shard is mounted by its real path.
    const alias = await call(server, 'POST', '/shards', { body: { key: 'alias', url: fileUrl(join(root, 'alias.car')) } })
    assert.equal([alias.status, alias.json.url], [201, fileUrl(join(root, 'sample.car'))])
    assert.equal((await call(server, 'GET', '/shards')).json.shards.map((s: { key: string }) => s.key), ['alias'])
  })
  const { store } = await openStore(join(ctx.dir, 'other'))
  const server = await startServer(store, { host: '0.0.0.0', port: 0, token: TOKEN })
  try {
    const r = await call(server, 'POST', '/shards', { body: { key: 'x', url: fileUrl(SAMPLE) } })
    assert.equal([r.status, r.json.error.code], [403, 'ERR_FORBIDDEN_PATH'])
    let err: unknown
    try { await startServer(store, { port: 0, token: TOKEN, allowRoots: [join(ctx.dir, 'no-such-dir')] }) } catch (e) { err = e }
    assert.ok(err !== undefined, 'a missing allow root fails startServer')
  } finally {
    await server.close()
    await store.close()
  }
})

test('a loopback server with a token registers file: URLs from anywhere; without a token (--no-auth) the allow-roots still govern', async (ctx) => {
  const outside = join(ctx.dir, 'elsewhere', 'x.car')
  await mkdir(join(ctx.dir, 'elsewhere'))
  await copyFile(SAMPLE, outside)
  await withServer(ctx, {}, async ({ server }) => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:/)
    const r = await call(server, 'POST', '/shards', { body: { key: 'x', url: fileUrl(outside) } })
    assert.equal([r.status, r.json.key, r.json.state], [201, 'x', 'available'])
    // Still a real file: a folder or a missing file is a bad mount, and bytes: stays refused.
    const missing = await call(server, 'POST', '/shards', { body: { key: 'y', url: fileUrl(join(ctx.dir, 'nope.car')) } })
    assert.is(missing.status, 400)
  })
  const { store } = await openStore(join(ctx.dir, 'open'))
  const open = await startServer(store, { port: 0, token: null })
  try {
    const r = await call(open, 'POST', '/shards', { body: { key: 'x', url: fileUrl(outside) }, token: null })
    assert.equal([r.status, r.json.error.code], [403, 'ERR_FORBIDDEN_PATH'])
  } finally {
    await open.close()
    await store.close()
  }
})

test('failed initialization: 422 with the cause; recover: 422, 409 when healthy, 200 once the data is good', async (ctx) => {
  await withServer(ctx, {}, async ({ server, root }) => {
    const url = fileUrl(join(root, 'junk.car'))
    const failed = await call(server, 'POST', '/shards', { body: { key: 'junk', url } })
    assert.equal([failed.status, failed.json.error.code, failed.json.error.cause?.code], [422, 'ERR_SHARD_INITIALIZATION_FAILED', 'ERR_INVALID_CAR'])
    const desc = await call(server, 'GET', '/shards/junk')
    assert.equal([desc.json.state, desc.json.error.code], ['errored', 'ERR_INVALID_CAR'])
    const again = await call(server, 'POST', '/shards/junk/recover')
    assert.equal([again.status, again.json.error.code], [422, 'ERR_SHARD_INITIALIZATION_FAILED'])
    await copyFile(SAMPLE, join(root, 'junk.car'))
    const healed = await call(server, 'POST', '/shards/junk/recover')
    assert.equal([healed.status, healed.json.state, healed.json.error, healed.json.blocks], [200, 'available', undefined, blocks.length - 6])
    const healthy = await call(server, 'POST', '/shards/junk/recover')
    assert.equal([healthy.status, healthy.json.error.code], [409, 'ERR_SHARD_NOT_ERRORED'])
    const unknown = await call(server, 'POST', '/shards/nope/recover')
    assert.equal([unknown.status, unknown.json.error.code], [404, 'ERR_SHARD_UNKNOWN'])
    assert.is((await call(server, 'GET', '/shards/junk/recover')).status, 405)
  })
})

test('DELETE /shards/{key}: destroyed, 404 unknown, 409 in use', async (ctx) => {
  await withServer(ctx, {}, async ({ server, store, root }) => {
    await call(server, 'POST', '/shards', { body: { key: 'a/b', url: fileUrl(join(root, 'sample.car')) } })
    const acc = await store.acquire('a/b')
    const busy = await call(server, 'DELETE', `/shards/${enc('a/b')}`)
    assert.equal([busy.status, busy.json.error.code], [409, 'ERR_SHARD_IN_USE'])
    assert.equal((await call(server, 'GET', `/shards/${enc('a/b')}`)).json.refs, 1)
    await acc.close()
    const gone = await call(server, 'DELETE', `/shards/${enc('a/b')}`)
    assert.equal([gone.status, gone.json], [200, { key: 'a/b', destroyed: true }])
    const again = await call(server, 'DELETE', `/shards/${enc('a/b')}`)
    assert.equal([again.status, again.json.error.code], [404, 'ERR_SHARD_UNKNOWN'])
    assert.equal((await call(server, 'GET', '/shards')).json, { shards: [] })
  })
})

test('DELETE /shards/{key} right after the gateway served one of its blocks: the gateway lets go of it', async (ctx) => {
  await withServer(ctx, {}, async ({ server, store, root }) => {
    await call(server, 'POST', '/shards', { body: { key: 's', url: fileUrl(join(root, 'sample.car')) } })
    const got = await call(server, 'GET', `/ipfs/${at(blocks, 1).cid.toString()}?format=raw`, { token: null, headers: { accept: 'application/vnd.ipld.raw' } })
    assert.is(got.status, 200)
    assert.is(store.getShardInfo('s').refs, 1, 'the gateway caches the acquired shard')
    const gone = await call(server, 'DELETE', '/shards/s')
    assert.equal([gone.status, gone.json], [200, { key: 's', destroyed: true }])
    const after = await call(server, 'GET', `/ipfs/${at(blocks, 1).cid.toString()}?format=raw`, { token: null, headers: { accept: 'application/vnd.ipld.raw' } })
    assert.is(after.status, 404)
  })
})

test('POST /gc reclaims an idle http: shard\'s transient; GET /find/{cid}', async (ctx) => {
  const origin = await serve(standard(sampleBytes))
  try {
    await withServer(ctx, {}, async ({ server, root }) => {
      const remote = await call(server, 'POST', '/shards', { body: { key: 'remote', url: origin.url } })
      assert.equal([remote.status, remote.json.state, remote.json.size], [201, 'available', sampleBytes.byteLength])
      assert.type(remote.json.transient, 'string')
      assert.is((await stat(remote.json.transient)).size, sampleBytes.byteLength)
      await call(server, 'POST', '/shards', { body: { key: 'local', url: fileUrl(join(root, 'sample.car')) } })
      const gc = await call(server, 'POST', '/gc')
      assert.equal([gc.status, gc.json], [200, { reclaimedBytes: sampleBytes.byteLength, shards: { remote: null, local: null } }])
      const after = await call(server, 'GET', '/shards/remote')
      assert.equal([after.json.transient, after.json.size], [undefined, undefined])
      assert.equal((await call(server, 'POST', '/gc')).json, { reclaimedBytes: 0, shards: { remote: null, local: null } })

      const cid = at(blocks, 1).cid
      const found = await call(server, 'GET', `/find/${cid.toString()}`)
      assert.equal([found.status, found.json.cid, [...found.json.shards].sort()], [200, cid.toString(), ['local', 'remote']])
      // Any multibase; the answer names the CID in its canonical form.
      const hex = await call(server, 'GET', `/find/${cid.toString(base16)}`)
      assert.equal([hex.json.cid, [...hex.json.shards].sort()], [cid.toString(), ['local', 'remote']])
      const none = await call(server, 'GET', `/find/${unknownCid.toString()}`)
      assert.equal(none.json, { cid: unknownCid.toString(), shards: [] })
      const bad = await call(server, 'GET', '/find/not-a-cid')
      assert.equal([bad.status, bad.json.error.code], [400, 'ERR_INVALID_CID'])
    })
  } finally {
    await origin.close()
  }
})

/** A GET /events subscription: frames parsed as they arrive. */
class Events {
  readonly frames: Array<{ event: string, data: any }> = [] // eslint-disable-line @typescript-eslint/no-explicit-any
  comments = 0
  ended = false
  status = 0
  private buffer = ''
  private readonly done: Promise<void>
  private destroy: () => void = () => {}

  private constructor (server: DagstoreServer, ready: (e: Events) => void, fail: (err: unknown) => void) {
    this.done = new Promise<void>((resolve) => {
      const options = { host: server.host, port: server.port, path: '/events', headers: { authorization: `Bearer ${TOKEN}` }, agent: false }
      const req = httpRequest(options, (res) => {
        this.status = res.statusCode ?? 0
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { this.parse(chunk) })
        res.on('end', () => { this.ended = true; resolve() })
        res.on('error', () => { this.ended = true; resolve() })
        // Headers arrive after the subscription exists: nothing published from now on is missed.
        ready(this)
      })
      this.destroy = () => { req.destroy() }
      req.on('error', (err) => { this.ended = true; fail(err); resolve() })
      req.end()
    })
  }

  static async open (server: DagstoreServer): Promise<Events> {
    return await new Promise<Events>((resolve, reject) => { new Events(server, resolve, reject) }) // eslint-disable-line no-new
  }

  private parse (chunk: string): void {
    this.buffer += chunk
    let end: number
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      if (block.startsWith(':')) { this.comments++; continue }
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message'
      const data = /^data: (.*)$/m.exec(block)?.[1]
      this.frames.push({ event, data: data === undefined ? undefined : JSON.parse(data) })
    }
  }

  ops (key?: string): string[] {
    return this.frames
      .filter((f) => f.event === 'trace' && (key === undefined || f.data.key === key))
      .map((f) => `${f.data.op as string}:${f.data.after.state as string}`)
  }

  async end (): Promise<void> { await this.done }
  close (): void { this.destroy() }
}

test('GET /events: traces of register and acquire, in order; heartbeats; ends when the server closes', async (ctx) => {
  await withServer(ctx, { serve: { sseHeartbeatMs: 20 } }, async ({ server, store, root }) => {
    const events = await Events.open(server)
    assert.is(events.status, 200)
    const url = fileUrl(join(root, 'sample.car'))
    await call(server, 'POST', '/shards', { body: { key: 's', url } })
    const acc = await store.acquire('s')
    await acc.close()
    await call(server, 'POST', '/shards', { body: { key: 'bad', url: fileUrl(join(root, 'junk.car')) } })
    await until(() => events.ops().length >= 8, 'eight traces')
    assert.equal(events.ops('s'), ['register:new', 'initialize:initializing', 'makeAvailable:available', 'acquire:serving', 'release:available'])
    assert.equal(events.ops('bad'), ['register:new', 'initialize:initializing', 'fail:errored'])
    const fail = events.frames.find((f) => f.data.op === 'fail')
    assert.equal(fail?.data.after, { state: 'errored', refs: 0, error: fail?.data.after.error })
    assert.is(fail?.data.after.error.code, 'ERR_INVALID_CAR')
    await until(() => events.comments >= 3, 'heartbeats')
    const second = await Events.open(server)
    await server.close()
    await events.end()
    await second.end()
    assert.ok(events.ended && second.ended)
  })
})

test('GET /events: a subscriber that lags gets event: lagged and the end of the stream', async (ctx) => {
  await withServer(ctx, { store: { eventBufferSize: 2 } }, async ({ server, store, root }) => {
    const events = await Events.open(server)
    const url = fileUrl(join(root, 'sample.car'))
    // Lazy registrations submitted in one tick are processed and published in one burst,
    // faster than any reader: more than the buffer holds.
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map(async (k) => { await store.register(k, FileMount.fromURL(url), { lazy: true }) }))
    await events.end()
    const last = events.frames.at(-1)
    assert.is(last?.event, 'lagged')
    assert.is(last?.data.code, 'ERR_SUBSCRIPTION_LAGGED')
    // A new subscription starts afresh.
    const next = await Events.open(server)
    await call(server, 'DELETE', '/shards/a')
    await until(() => next.ops().length === 1, 'destroy trace')
    assert.equal(next.ops(), ['destroy:new'])
    next.close()
  })
})

test('GET /metrics: store and gateway series in one registry after a gateway request', async (ctx) => {
  await withServer(ctx, {}, async ({ server, root }) => {
    await call(server, 'POST', '/shards', { body: { key: 's', url: fileUrl(join(root, 'sample.car')) } })
    const cid = at(blocks, 1).cid
    const block = await call(server, 'GET', `/ipfs/${cid.toString()}?format=raw`, { token: null, headers: { accept: 'application/vnd.ipld.raw' } })
    assert.is(block.status, 200)
    const missing = await call(server, 'GET', `/ipfs/${unknownCid.toString()}?format=raw`, { token: null, headers: { accept: 'application/vnd.ipld.raw' } })
    assert.is(missing.status, 404)
    const metrics = await call(server, 'GET', '/metrics', { token: null })
    assert.match(metrics.text, /dagstore_ops_total\{op="register",outcome="applied"\} 1/)
    // The gateway keeps the shard acquired in its accessor cache.
    assert.match(metrics.text, /dagstore_shards\{state="serving"\} 1/)
    assert.match(metrics.text, /dagstore_block_requests_total\{[^}]*\} 1/)
  })
})

test.run()
