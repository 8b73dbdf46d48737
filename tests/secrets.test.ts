// Credentials in mount URLs, end to end: an origin (real node:http on 127.0.0.1) that wants
// basic auth and a token in the query serves a shard registered with both in its URL. The
// download uses them, the stored URL keeps them (a later re-download still works), and no
// place that shows the URL shows them: the admin API, `dagstore ls`/`info`/`register`, the
// SSE event stream, /metrics, the serve process's output, and the error of a failing fetch.
import * as assert from 'uvu/assert'
import { request as httpRequest } from 'node:http'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, until } from './helpers/store.js'
import { cli, startServe, type CliResult } from './helpers/cli.js'
import { serve as serveHttp, standard, type TestServer } from './helpers/http-server.js'

const test = dirSuite('secrets')
const sample = await readFile(fixture('sample-v1.car'))
const blocks = await carBlocks('sample-v1.car')

const USER = 'alice'
const PASSWORD = 'pw-s3cret-9f2c'
const TOKEN = 'tok-abc-7d41'
const SECRETS = [PASSWORD, TOKEN, Buffer.from(`${USER}:${PASSWORD}`).toString('base64')]

/** The origin: the sample at /x.car, a 403 at /forbidden.car, 404 elsewhere; only with the right basic auth and ?token. */
async function origin (): Promise<TestServer & { authorized: () => number }> {
  let authorized = 0
  const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`
  const srv = await serveHttp((req, res, n) => {
    const url = new URL(req.url ?? '/', 'http://origin')
    if (req.headers.authorization !== expected || url.searchParams.get('token') !== TOKEN) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="cars"' })
      res.end()
      return
    }
    authorized++
    if (url.pathname === '/x.car') { standard(sample)(req, res, n); return }
    res.writeHead(url.pathname === '/forbidden.car' ? 403 : 404)
    res.end()
  })
  return { ...srv, authorized: () => authorized }
}

function secretUrl (srv: TestServer, path: string): string {
  const port = new URL(srv.url).port
  return `http://${USER}:${PASSWORD}@127.0.0.1:${port}${path}?token=${TOKEN}&x=1`
}

function shownUrl (srv: TestServer, path: string): string {
  return `http://***:***@127.0.0.1:${new URL(srv.url).port}${path}?token=***&x=1`
}

function assertNoSecrets (text: string, where: string): void {
  for (const s of SECRETS) assert.not.ok(text.includes(s), `${where} shows a secret: ${text}`)
}

function ok (r: CliResult, what: string): void {
  assert.is(r.code, 0, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
}

async function api (base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number, text: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` }
  const init: RequestInit = { method, headers }
  if (body !== undefined) {
    headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const res = await fetch(new URL(path, base), init)
  return { status: res.status, text: await res.text() }
}

/** GET /events, its raw text collected until close(). */
function events (base: string, token: string): { text: () => string, close: () => void, ready: Promise<void> } {
  let text = ''
  let ready!: () => void
  const opened = new Promise<void>((resolve) => { ready = resolve })
  const u = new URL('/events', base)
  const options = { host: u.hostname, port: u.port, path: u.pathname, headers: { authorization: `Bearer ${token}` }, agent: false }
  const req = httpRequest(options, (res) => {
    res.setEncoding('utf8')
    res.on('data', (s: string) => {
      text += s
      if (text.includes(': subscribed')) ready()
    })
    res.on('error', () => {})
  })
  req.on('error', () => {})
  req.end()
  return { text: () => text, close: () => { req.destroy() }, ready: opened }
}

async function throughServe (srv: Awaited<ReturnType<typeof origin>>, repo: string): Promise<void> {
  const d = ['--dir', repo]
  const { serve, url: base } = await startServe(repo)
  let stream: ReturnType<typeof events> | undefined
  try {
    const token = (await readFile(join(repo, 'token'), 'utf8')).trim()
    stream = events(base, token)
    await stream.ready

    // Registered through the CLI (which goes through the running serve's admin API).
    let r = await cli(['register', secretUrl(srv, '/x.car'), '--key', 'x', '--json', ...d])
    ok(r, 'register')
    assertNoSecrets(r.stdout + r.stderr, 'register --json')
    assert.is(JSON.parse(r.stdout).shards[0].url, shownUrl(srv, '/x.car'))
    assert.is(JSON.parse(r.stdout).shards[0].state, 'available')
    assert.ok(srv.authorized() >= 2, 'HEAD and GET went out with the credentials')

    // Failing fetches behind the same credentials: a 404 (the shard's data does not exist) and
    // a 403 (an HTTP error naming the URL), as error lines and as --json output.
    r = await cli(['register', secretUrl(srv, '/missing.car'), '--key', 'missing', ...d])
    assert.is(r.code, 1, r.stderr)
    assertNoSecrets(r.stderr, 'the failed register\'s error line (404)')
    r = await cli(['register', secretUrl(srv, '/forbidden.car'), '--key', 'forbidden', ...d])
    assert.is(r.code, 1, r.stderr)
    assert.ok(r.stderr.includes(`HTTP 403 from ${shownUrl(srv, '/forbidden.car')}`), r.stderr)
    assertNoSecrets(r.stderr, 'the failed register\'s error line (403)')
    r = await cli(['register', secretUrl(srv, '/missing.car'), secretUrl(srv, '/forbidden.car'), '--json', ...d])
    assert.is(r.code, 1, r.stderr)
    const failed = JSON.parse(r.stdout) as { errors: Array<{ target: string, error: { code: string, message: string } }> }
    assert.equal(failed.errors.map((e) => [e.target, e.error.code]), [
      [shownUrl(srv, '/missing.car'), 'ERR_SHARD_EXISTS'],
      [shownUrl(srv, '/forbidden.car'), 'ERR_SHARD_EXISTS']
    ])
    assertNoSecrets(r.stdout + r.stderr, 'register --json of failing targets')

    // The admin API itself: a failing register's answer, the listing, one shard, an errored one.
    const refused = await api(base, token, 'POST', '/shards', { key: 'forbidden-api', url: secretUrl(srv, '/forbidden.car') })
    assert.is(refused.status, 422, refused.text)
    assert.ok(refused.text.includes(shownUrl(srv, '/forbidden.car')), refused.text)
    assertNoSecrets(refused.text, 'POST /shards (422)')
    const list = await api(base, token, 'GET', '/shards')
    assert.is(list.status, 200)
    assertNoSecrets(list.text, 'GET /shards')
    const listed = (JSON.parse(list.text) as { shards: Array<{ key: string, url: string }> }).shards
    assert.equal(listed.map((s) => [s.key, s.url]), [
      ['forbidden', shownUrl(srv, '/forbidden.car')],
      ['forbidden-api', shownUrl(srv, '/forbidden.car')],
      ['missing', shownUrl(srv, '/missing.car')],
      ['x', shownUrl(srv, '/x.car')]
    ])
    for (const key of ['x', 'missing', 'forbidden']) {
      const one = await api(base, token, 'GET', `/shards/${key}`)
      assert.is(one.status, 200)
      assertNoSecrets(one.text, `GET /shards/${key}`)
    }

    // The CLI's listings, human and JSON.
    for (const args of [['ls'], ['ls', '--json'], ['info', 'x'], ['info', 'x', '--json'], ['info', 'forbidden'], ['info', 'forbidden', '--json']]) {
      r = await cli([...args, ...d])
      ok(r, args.join(' '))
      assertNoSecrets(r.stdout + r.stderr, args.join(' '))
    }
    assert.ok(r.stdout.includes(shownUrl(srv, '/forbidden.car')) && r.stdout.includes('HTTP 403'), `the errored shard shows its error: ${r.stdout}`)

    // Metrics, the event stream (it carried the failure), the server's own output.
    const metrics = await fetch(new URL('/metrics', base))
    assertNoSecrets(await metrics.text(), '/metrics')
    await until(() => (stream?.text().match(/"op":"fail"/g) ?? []).length >= 3, 'three fail events')
    assert.ok(stream.text().includes('***'), 'the events carry the failures\' (redacted) messages')
    assertNoSecrets(stream.text(), 'GET /events')
    stream.close()
    assertNoSecrets(serve.stdout + serve.stderr, 'serve\'s output')
  } finally {
    stream?.close()
    await serve.kill()
  }
}

/**
 * Direct mode reads the same records: still redacted when shown, still complete when used (the
 * copy reclaimed, a block read fetches it again with the stored credentials).
 */
async function direct (srv: Awaited<ReturnType<typeof origin>>, repo: string): Promise<void> {
  const d = ['--dir', repo]
  let r = await cli(['ls', '--json', ...d])
  ok(r, 'direct ls')
  assertNoSecrets(r.stdout + r.stderr, 'direct ls --json')
  assert.ok(r.stdout.includes(shownUrl(srv, '/x.car')), r.stdout)
  ok(await cli(['gc', ...d]), 'gc')
  const before = srv.authorized()
  const block = blocks[blocks.length - 1]
  r = await cli(['get', block?.cid.toString() ?? '', ...d])
  ok(r, 'get after gc')
  assert.ok(r.stdoutBytes.equals(block?.bytes ?? new Uint8Array()), 'the block, fetched again')
  assert.ok(srv.authorized() > before, 'fetched again from the origin, with the credentials')
}

test('credentials in a mount URL: used for the download, kept in the store, shown nowhere', async ({ dir }) => {
  const srv = await origin()
  const repo = join(dir, 'repo')
  try {
    await throughServe(srv, repo)
    await direct(srv, repo)
  } finally {
    await srv.close()
  }
})

test.run()
