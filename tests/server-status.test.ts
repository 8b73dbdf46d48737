// The status page's server side: the public shell and its static files (/, /ui/…) with their
// headers, the token-guarded GET /status (counts, transients against the budget, sampled rates),
// and the package shipping the files. Real store, real server on 127.0.0.1.
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startServer, type DagstoreServer, type ServeOptions } from '../src/app/server/index.js'
import type { DAGStore } from '../src/engine/store.js'
import type { DAGStoreOptions } from '../src/engine/options.js'
import { FileMount } from '../src/storage/mount/file.js'
import { RATE_POINTS, type StatusJson } from '../src/app/server/status.js'
import { StreamMount } from './helpers/stream-mount.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, type DirContext } from './helpers/store.js'

const test = dirSuite('server status')
const TOKEN = 'status-token_0123456789'
const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const UI_FILES = (await readdir(new URL('ui/', `file://${ROOT}`))).sort()

interface Ctx { store: DAGStore, server: DagstoreServer }

async function withServer (
  ctx: DirContext, options: { serve?: ServeOptions, store?: Partial<DAGStoreOptions> }, fn: (c: Ctx) => Promise<void>
): Promise<void> {
  const { store } = await openStore(ctx.dir, options.store)
  const errors: unknown[] = []
  let server: DagstoreServer | undefined
  try {
    server = await startServer(store, { port: 0, token: TOKEN, onError: (err) => { errors.push(err) }, ...options.serve })
    await fn({ store, server })
    assert.equal(errors, [], 'no errors reported')
  } finally {
    await server?.close()
    await store.close()
  }
}

async function get (server: DagstoreServer, path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers)
  if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`)
  return await fetch(server.url + path, { ...init, headers })
}

/** Asks GET /status until `done` holds for its answer; fails after `timeoutMs` with `what`. */
async function statusUntil (server: DagstoreServer, done: (s: StatusJson) => boolean, what: string, timeoutMs = 20_000): Promise<StatusJson> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const s = await status(server)
    if (done(s)) return s
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
}

async function status (server: DagstoreServer): Promise<StatusJson> {
  const res = await get(server, '/status', { token: TOKEN })
  assert.is(res.status, 200)
  return await res.json() as StatusJson
}

test('GET /: the public HTML shell, its files, the security headers; no admin data in it', async (ctx) => {
  await withServer(ctx, {}, async ({ store, server }) => {
    await store.register('private-shard-key', new FileMount(SAMPLE))
    const res = await get(server, '/')
    assert.is(res.status, 200)
    assert.is(res.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.is(res.headers.get('x-content-type-options'), 'nosniff')
    assert.is(res.headers.get('cache-control'), 'no-cache')
    assert.is(res.headers.get('x-frame-options'), 'DENY')
    assert.is(res.headers.get('access-control-allow-origin'), null, 'no CORS on the page')
    const csp = res.headers.get('content-security-policy') ?? ''
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "form-action 'none'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(directive), directive)
    }
    const html = await res.text()
    assert.not.match(html, /private-shard-key/)
    // CSP-friendly: no inline script or handler the policy would block.
    assert.not.match(html, /<script>|<script [^>]*>[^<]|\son[a-z]+=|style=/)

    // Every file the shell references is served, with its type; and every ui/ file is referenced or reachable.
    const referenced = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1] ?? '')
    assert.ok(referenced.includes('/ui/app.js') && referenced.includes('/ui/style.css'))
    for (const file of UI_FILES.filter((f) => f !== 'index.html')) {
      const asset = await get(server, `/ui/${file}`)
      assert.is(asset.status, 200, file)
      const type = asset.headers.get('content-type') ?? ''
      const expected = { js: 'text/javascript', css: 'text/css', svg: 'image/svg+xml' }[file.split('.').pop() ?? ''] ?? 'none'
      assert.ok(type.startsWith(expected), `${file}: ${type}`)
      assert.is(asset.headers.get('x-content-type-options'), 'nosniff')
      assert.equal(Buffer.from(await asset.arrayBuffer()), await readFile(`${ROOT}ui/${file}`), file)
    }

    const etag = res.headers.get('etag') ?? ''
    assert.match(etag, /^"[\w-]+"$/)
    const again = await get(server, '/', { headers: { 'if-none-match': etag } })
    assert.is(again.status, 304)
    const head = await get(server, '/', { method: 'HEAD' })
    assert.equal([head.status, head.headers.get('content-length'), await head.text()], [200, String(Buffer.byteLength(html)), ''])
    const post = await get(server, '/', { method: 'POST' })
    assert.equal([post.status, post.headers.get('allow')], [405, 'GET, HEAD'])
    const missing = await get(server, '/ui/nope.js')
    assert.is(missing.status, 404)
    const escape = await get(server, '/ui/..%2Fpackage.json')
    assert.is(escape.status, 404)
  })
})

test('GET /status: 401 without the token; counts by state as the store keeps them; no CORS', async (ctx) => {
  await withServer(ctx, {}, async ({ store, server }) => {
    const refused = await get(server, '/status')
    assert.is(refused.status, 401)
    assert.is(((await refused.json()) as { error: { code: string } }).error.code, 'ERR_UNAUTHORIZED')
    assert.is((await get(server, '/status', { token: 'wrong-token' })).status, 401)

    await store.register('a', new FileMount(SAMPLE))
    await store.register('b', new FileMount(SAMPLE))
    await store.register('broken', new FileMount(fixture('junk.dat'))).catch(() => {})
    const acc = await store.acquire('a')
    try {
      const res = await get(server, '/status', { token: TOKEN })
      assert.is(res.status, 200)
      assert.is(res.headers.get('access-control-allow-origin'), null)
      assert.is(res.headers.get('cache-control'), 'no-store')
      const body = await res.json() as StatusJson
      assert.equal(body.counts, store.stats())
      assert.equal([body.counts.serving, body.counts.available, body.counts.errored, body.shards], [1, 1, 1, 3])
      assert.is(body.transients, null, 'no budget, nothing counted')
      assert.ok(body.totals.ops >= 4, 'three registrations and an acquire at least')
      assert.is(body.rates.intervalMs, 2000)
    } finally {
      await acc.close()
    }
    assert.is((await get(server, '/status', { method: 'POST', token: TOKEN })).status, 405)
  })
})

test('GET /status: transients against gc.maxTransientsBytes', async (ctx) => {
  const limit = 10 * sampleBytes.byteLength
  await withServer(ctx, { store: { gc: { maxTransientsBytes: limit } } }, async ({ store, server }) => {
    assert.equal((await status(server)).transients, { bytes: 0, reservedBytes: 0, limitBytes: limit })
    // A stream: mount has no random access: the store downloads it into a transient.
    await store.register('remote', new StreamMount(SAMPLE))
    assert.equal((await status(server)).transients, { bytes: sampleBytes.byteLength, reservedBytes: 0, limitBytes: limit })
  })
})

test('GET /status: rates of ops, requests and bytes sent, sampled by the server and bounded', async (ctx) => {
  await withServer(ctx, { serve: { rateSampleMs: 5 } }, async ({ store, server }) => {
    await store.register('a', new FileMount(SAMPLE))
    let seen: StatusJson | undefined
    const busy = async (): Promise<boolean> => {
      const acc = await store.acquire('a')
      await acc.close()
      await (await get(server, '/healthz')).arrayBuffer()
      seen = await status(server)
      return seen.rates.points.some((p) => p.ops > 0) && seen.rates.points.some((p) => p.requests > 0 && p.bytes > 0)
    }
    // Each round adds ops, requests and bytes until a sample has seen them.
    const deadline = Date.now() + 20_000
    while (!await busy()) if (Date.now() > deadline) throw new Error('timed out waiting for nonzero rates')
    const last = seen as StatusJson
    assert.is(last.rates.intervalMs, 5)
    assert.ok(last.totals.requests >= 2 && last.totals.bytesSent > 0)
    const times = last.rates.points.map((p) => p.t)
    assert.equal(times, [...times].sort((a, b) => a - b), 'oldest first')

    // The series keeps the last RATE_POINTS samples: once full, the oldest ones leave.
    const full = await statusUntil(server, (s) => s.rates.points.length === RATE_POINTS, 'a full series')
    const oldest = full.rates.points[0]?.t ?? 0
    const later = await statusUntil(server, (s) => (s.rates.points[0]?.t ?? 0) > oldest, 'the oldest sample dropped')
    assert.is(later.rates.points.length, RATE_POINTS)
  })
})

test('startServer: rateSampleMs must be a positive integer', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    for (const bad of [0, -1, 1.5]) {
      await startServer(store, { port: 0, token: TOKEN, rateSampleMs: bad }).then(
        async (s) => { await s.close(); assert.unreachable(`accepted ${bad}`) },
        (err: unknown) => { assert.instance(err, RangeError) })
    }
  } finally {
    await store.close()
  }
})

test('the package ships ui/ (npm pack), where the server resolves it', async () => {
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT })
  const [pack] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>
  const packed = new Set(pack?.files.map((f) => f.path))
  for (const file of UI_FILES) assert.ok(packed.has(`ui/${file}`), `ui/${file} is packed`)
  assert.ok(packed.has('dist/src/app/server/status-page.js'))
})

test.run()
