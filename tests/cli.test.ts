// The `dagstore` CLI end to end: direct mode (no server), exit codes and error lines, import,
// serve with other commands going through its admin API, the serve.json lock (second serve,
// stale files). Commands run in this process (tests/helpers/cli.ts); the bin is spawned where
// only a process will do: SIGTERM during an in-flight block download, a terminal for the
// progress bar, `npm start`.
import * as assert from 'uvu/assert'
import { get as httpGet, createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { spawn } from 'node:child_process'
import { copyFile, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { DAGStore } from '../src/engine/store.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, until } from './helpers/store.js'
import {
  CLI, cli, cliEnv, hasStack, readServeJson, spawnCli, spawnServe, startCli, startServe, type CliResult, type InProcess, type Running
} from './helpers/cli.js'
import { serve as serveHttp, standard } from './helpers/http-server.js'
import { at } from './helpers/assert.js'

const test = dirSuite('cli')
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const sample = await readFile(fixture('sample-v1.car'))
const blocks = await carBlocks('sample-v1.car')
const first = at(blocks, 0)
const last = at(blocks, blocks.length - 1)

/** Copies fixtures into `<dir>/cars` (so they are below an allow-root there). */
async function cars (dir: string, files: Record<string, string>): Promise<string> {
  const root = join(dir, 'cars')
  for (const [to, from] of Object.entries(files)) {
    await mkdir(join(root, to, '..'), { recursive: true })
    await copyFile(fixture(from), join(root, to))
  }
  return root
}

function ok (r: CliResult, what: string): void {
  assert.is(r.code, 0, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
}

/** Exactly one error line, `dagstore: CODE: ...`, and no stack. */
function errorLine (r: CliResult, exitCode: number, code: string): string {
  assert.is(r.code, exitCode, `exit ${String(r.code)}, stderr: ${r.stderr}`)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  assert.is(lines.length, 1, `one line on stderr: ${r.stderr}`)
  const line = at(lines, 0)
  assert.ok(line.startsWith(`dagstore: ${code}: `), line)
  assert.not.ok(hasStack(r.stderr))
  return line
}

/** GET like curl (Accept: *\/*); body bytes and status. */
async function fetchBytes (url: string, headers: Record<string, string> = { accept: '*/*' }): Promise<{ status: number, body: Buffer }> {
  return await new Promise((resolve, reject) => {
    httpGet(url, { headers }, (res: IncomingMessage) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    }).on('error', reject)
  })
}

async function deadPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((resolve) => child.once('exit', resolve))
  return child.pid as number
}

test('direct mode: register, ls, info, find, get, gc, recover, destroy, as tables and --json', async ({ dir }) => {
  const repo = join(dir, 'repo')
  const root = await cars(dir, { 'sample-v1.car': 'sample-v1.car', 'junk.dat': 'junk.dat' })
  const d = ['--dir', repo]

  let r = await cli(['register', join(root, 'sample-v1.car'), ...d])
  ok(r, 'register')
  assert.match(r.stdout, /^registered sample-v1 \(available, \d+ blocks, 468\.7 KiB\)\n$/)
  r = await cli(['register', join(root, 'sample-v1.car'), ...d])
  errorLine(r, 1, 'ERR_SHARD_EXISTS')
  r = await cli(['register', join(root, 'junk.dat'), '--key', 'junk', '--json', ...d])
  assert.is(r.code, 1)
  const reg = JSON.parse(r.stdout)
  assert.equal(reg.shards, [])
  assert.equal([reg.errors[0].key, reg.errors[0].error.code], ['junk', 'ERR_SHARD_INITIALIZATION_FAILED'])

  r = await cli(['ls', ...d])
  ok(r, 'ls')
  const rows = r.stdout.trimEnd().split('\n').map((l) => l.split(/\s{2,}/))
  assert.equal(rows[0], ['KEY', 'STATE', 'REFS', 'SIZE', 'ERROR'])
  assert.equal(at(rows, 1).slice(0, 4), ['junk', 'errored', '0', '1.0 KiB'])
  assert.match(at(at(rows, 1), 4), /^ERR_INVALID_CAR: /)
  assert.equal(rows[2], ['sample-v1', 'available', '0', '468.7 KiB'])
  r = await cli(['ls', '--json', ...d])
  ok(r, 'ls --json')
  const { shards } = JSON.parse(r.stdout)
  assert.equal(shards.map((s: { key: string }) => s.key), ['junk', 'sample-v1'])
  assert.is(shards[0].error.code, 'ERR_INVALID_CAR')
  const url = pathToFileURL(join(root, 'sample-v1.car')).href
  assert.equal(shards[1], {
    key: 'sample-v1', state: 'available', refs: 0, url, size: sample.byteLength, blocks: shards[1].blocks, placement: 'local'
  })
  assert.ok(shards[1].blocks > 1000)

  r = await cli(['info', 'sample-v1', '--json', ...d])
  ok(r, 'info --json')
  assert.equal(JSON.parse(r.stdout), shards[1])
  r = await cli(['info', 'sample-v1', ...d])
  ok(r, 'info')
  assert.match(r.stdout, new RegExp(`^key +sample-v1\nstate +available\nrefs +0\nurl +file://.+\nsize +468\\.7 KiB \\(${sample.byteLength} bytes\\)\nblocks +${String(shards[1].blocks)}\nread +local\n$`))

  r = await cli(['find', first.cid.toString(), '--json', ...d])
  assert.equal(JSON.parse(r.stdout), { cid: first.cid.toString(), shards: ['sample-v1'] })
  r = await cli(['find', last.cid.toString(), ...d])
  assert.equal([r.code, r.stdout], [0, 'sample-v1\n'])

  r = await cli(['get', last.cid.toString(), ...d])
  ok(r, 'get')
  assert.ok(r.stdoutBytes.equals(last.bytes), 'block bytes on stdout')
  const out = join(dir, 'block.bin')
  r = await cli(['get', first.cid.toString(), '-o', out, ...d])
  ok(r, 'get -o')
  assert.ok((await readFile(out)).equals(first.bytes))
  r = await cli(['get', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', ...d])
  errorLine(r, 1, 'ERR_NOT_FOUND')

  r = await cli(['gc', '--json', ...d])
  ok(r, 'gc --json')
  assert.equal(JSON.parse(r.stdout), { reclaimedBytes: 0, shards: { junk: null, 'sample-v1': null } })

  r = await cli(['recover', 'junk', ...d])
  errorLine(r, 1, 'ERR_SHARD_INITIALIZATION_FAILED')
  r = await cli(['recover', '--all-errored', '--json', ...d])
  assert.is(r.code, 1)
  assert.equal(JSON.parse(r.stdout).errors.map((e: { key: string }) => e.key), ['junk'])

  r = await cli(['destroy', 'junk', ...d])
  assert.equal([r.code, r.stdout], [0, 'destroyed junk\n'])
  r = await cli(['recover', '--all-errored', ...d])
  assert.equal([r.code, r.stdout], [0, 'no errored shards\n'])
  // The user's file is never touched by destroy.
  assert.ok((await stat(join(root, 'junk.dat'))).isFile())
})

test('exit codes: 2 for usage, 1 for failures; one error line, a stack only with --verbose', async ({ dir }) => {
  const d = ['--dir', join(dir, 'repo')]
  // None of these opens the repo, so they may run at once.
  const usage = await Promise.all([
    cli(['bogus', ...d]),
    cli(['ls', '--bogus', ...d]),
    cli(['info', ...d]),
    cli(['recover', ...d]),
    cli(['recover', 'k', '--all-errored', ...d]),
    cli(['register', 'a.car', 'b.car', '--key', 'k', ...d]),
    cli(['serve', '--listen', 'nowhere', ...d]),
    cli(['serve', '--listen', '0.0.0.0:0', '--no-auth', ...d]),
    cli(['import', 'x', '--concurrency', '0', ...d]),
    cli(['serve', '--listen', '127.0.0.1:0', '--allow-root', join(dir, 'nowhere'), ...d]),
    // The only one of these that opens the repo (the token is checked by the server).
    cli(['serve', '--listen', '127.0.0.1:0', '--token', 'not a token', ...d])
  ])
  for (const r of usage) errorLine(r, 2, 'ERR_USAGE')
  assert.match(usage[0].stderr, /unknown command 'bogus'/)
  errorLine(await cli(['find', 'not-a-cid', ...d]), 2, 'ERR_INVALID_CID')
  const help = await cli(['--help'])
  assert.is(help.code, 0)
  assert.match(help.stdout, /Usage: dagstore/)
  assert.match(help.stdout, /\(default: "\.dagstore", env:\s+DAGSTORE_DIR\)/)
  assert.is((await cli(['--version'])).code, 0)

  const line = errorLine(await cli(['info', 'nope', ...d]), 1, 'ERR_SHARD_UNKNOWN')
  assert.is(line, 'dagstore: ERR_SHARD_UNKNOWN: shard "nope" not found')
  const verbose = await cli(['info', 'nope', '--verbose', ...d])
  assert.is(verbose.code, 1)
  assert.match(verbose.stderr, /^dagstore: ERR_SHARD_UNKNOWN: /m)
  assert.ok(hasStack(verbose.stderr), verbose.stderr)
  errorLine(await cli(['register', join(dir, 'missing.car'), ...d]), 1, 'ERR_FILE_NOT_FOUND')
  errorLine(await cli(['import', join(dir, 'missing'), ...d]), 1, 'ERR_FILE_NOT_FOUND')

  // A repo held open by another (non-serve) process: a clear line, not LevelDB's.
  const store = new DAGStore({ dir: join(dir, 'repo') })
  await store.start()
  try {
    const locked = errorLine(await cli(['ls', ...d]), 1, 'ERR_REPO_LOCKED')
    assert.match(locked, /is locked/)
  } finally {
    await store.close()
  }
})

test('relative paths are the run\'s cwd\'s, DAGSTORE_DIR comes from its environment, --dir wins over it', async ({ dir }) => {
  await cars(dir, { 'sample-v1.car': 'sample-v1.car' })
  const at = { cwd: dir }
  let r = await cli(['register', join('cars', 'sample-v1.car'), '--dir', 'repo'], at)
  ok(r, 'register with relative paths')
  r = await cli(['info', 'sample-v1', '--json'], { ...at, env: { DAGSTORE_DIR: 'repo' } })
  ok(r, 'info in DAGSTORE_DIR')
  assert.is(JSON.parse(r.stdout).url, pathToFileURL(join(dir, 'cars', 'sample-v1.car')).href)
  r = await cli(['get', first.cid.toString(), '-o', 'block.bin', '--dir', 'repo'], { ...at, env: { DAGSTORE_DIR: 'elsewhere' } })
  assert.equal([r.code, r.stdout], [0, `wrote ${first.bytes.byteLength} bytes to block.bin\n`])
  assert.ok((await readFile(join(dir, 'block.bin'))).equals(first.bytes))
})

test('import on a TTY draws a progress bar (under script(1), which gives the command a pseudo-terminal)', async ({ dir }) => {
  const hasScript = await new Promise<boolean>((resolve) => {
    spawn('script', ['--version'], { stdio: 'ignore' }).once('error', () => { resolve(false) }).once('close', (c) => { resolve(c === 0) })
  })
  if (!hasScript) {
    console.log('SKIPPING the TTY progress-bar test: script(1) (util-linux) is not installed')
    return
  }
  const repo = join(dir, 'repo')
  const root = await cars(dir, { 'a.car': 'sample-v1.car', 'b.car': 'sample-wrapped-v2.car' })
  const quote = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`
  const command = [process.execPath, CLI, 'import', root, '--dir', repo].map(quote).join(' ')
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString('utf8') })
  const code = await new Promise<number | null>((resolve) => { child.once('close', resolve) })
  assert.is(code, 0, out)
  // The bar takes the terminal (hides the cursor) and is cleared when done; a quick import may
  // finish before its first frame, so the frame itself is not required.
  assert.ok(out.includes('\x1b[?25l'), 'the progress bar hid the cursor')
  assert.ok(out.includes('\x1b[?25h'), 'and gave it back')
  assert.match(out, /imported 2, skipped 0 \(already registered\), failed 0 of 2/)
})

test('import: plain lines without a TTY, keys from paths below the folder, existing shards skipped', async ({ dir }) => {
  const repo = join(dir, 'repo')
  const root = await cars(dir, { 'a.car': 'sample-v1.car', 'sub/b.car': 'sample-wrapped-v2.car', 'bad.car': 'junk.dat', 'notes.dat': 'junk.dat' })
  let r = await cli(['import', root, '--dir', repo])
  assert.is(r.code, 1, r.stderr)
  assert.not.match(r.stdout + r.stderr, '\x1b[', 'no progress bar escapes')
  const lines = r.stdout.trimEnd().split('\n')
  assert.equal(lines.slice(0, -1).map((l) => l.split(' ').slice(0, 2).join(' ')).sort(), ['failed bad:', 'registered a', 'registered sub/b'])
  assert.match(r.stdout, /^failed bad: ERR_SHARD_INITIALIZATION_FAILED: /m)
  assert.match(r.stdout, /^registered sub\/b \(available, \d+ blocks, /m)
  assert.is(lines.at(-1), `imported 2, skipped 0 (already registered), failed 1 of 3 .car files below ${root}`)

  r = await cli(['import', root, '--dir', repo])
  ok(r, 'second import')
  assert.match(r.stdout, /^skipped a: already registered$/m)
  assert.match(r.stdout, /imported 0, skipped 3 \(already registered\), failed 0 of 3/)

  r = await cli(['import', root, '--lazy', '--prefix', 'p/', '--json', '--dir', repo])
  ok(r, 'import --lazy --json')
  const res = JSON.parse(r.stdout)
  assert.equal(res.imported.map((s: { key: string, state: string }) => `${s.key}:${s.state}`), ['p/a:new', 'p/bad:new', 'p/sub/b:new'])
  assert.equal([res.skipped, res.failed], [[], []])

  // The repo's own folder (transients are *.car) is never imported.
  r = await cli(['import', dir, '--prefix', 'all/', '--lazy', '--json', '--dir', repo])
  ok(r, 'import of the repo parent')
  assert.ok(JSON.parse(r.stdout).imported.every((s: { key: string }) => s.key.startsWith('all/cars/')))
})

test('serve: serve.json and token, other commands go through the admin API, a second serve is refused, SIGTERM cleans up', async ({ dir }) => {
  const repo = join(dir, 'repo')
  const root = await cars(dir, { 'sample-v1.car': 'sample-v1.car', 'other/w.car': 'sample-wrapped-v2.car', 'sample-v1-copy.car': 'sample-v1.car' })
  const d = ['--dir', repo]
  const { serve, url } = await startServe(repo, ['--allow-root', root])
  try {
    const published = await readServeJson(repo)
    assert.equal(published, { pid: serve.pid, url, auth: 'file', startedAt: published?.startedAt })
    assert.is((await stat(join(repo, 'token'))).mode & 0o777, 0o600)
    // The server holds LevelDB: a command that opened it itself would fail.
    const intruder = new DAGStore({ dir: repo })
    let lockedOut = false
    await intruder.start().catch(() => { lockedOut = true })
    if (!lockedOut) await intruder.close()
    assert.ok(lockedOut, 'serve holds the repo')

    let r = await cli(['register', join(root, 'sample-v1.car'), '--verbose', ...d])
    ok(r, 'register through serve')
    assert.match(r.stderr, new RegExp(`using the server at ${url}`))
    assert.match(r.stdout, /^registered sample-v1 \(available, /)
    // A serve on loopback takes files from anywhere from holders of the repo's token (the CLI
    // reads it from the repo): --allow-root governs servers reachable from elsewhere.
    r = await cli(['register', fixture('sample-v1.car'), '--key', 'outside', ...d])
    ok(r, 'register of a file outside the allow-roots through a loopback serve')
    ok(await cli(['destroy', 'outside', ...d]), 'destroy outside')
    r = await cli(['import', root, '--json', ...d])
    ok(r, 'import through serve')
    assert.equal(JSON.parse(r.stdout).imported.map((s: { key: string }) => s.key), ['other/w', 'sample-v1-copy'])
    // Before any get: the gateway keeps the shards it reads open for a while (in use).
    r = await cli(['destroy', 'sample-v1-copy', ...d])
    assert.equal([r.code, r.stdout], [0, 'destroyed sample-v1-copy\n'])

    // Concurrent commands are fine: none of them opens the repo.
    const [ls, info, found, block, gc] = await Promise.all([
      cli(['ls', '--json', ...d]),
      cli(['info', 'sample-v1', '--json', ...d]),
      cli(['find', last.cid.toString(), '--json', ...d]),
      cli(['get', last.cid.toString(), ...d]),
      cli(['gc', '--json', ...d])
    ])
    for (const r of [ls, info, found, block, gc]) ok(r, 'command through serve')
    assert.equal(JSON.parse(ls.stdout).shards.map((s: { key: string }) => s.key), ['other/w', 'sample-v1'])
    assert.is(JSON.parse(info.stdout).url, pathToFileURL(join(root, 'sample-v1.car')).href)
    assert.equal(JSON.parse(found.stdout).shards, ['other/w', 'sample-v1'])
    assert.ok(block.stdoutBytes.equals(last.bytes))
    assert.type(JSON.parse(gc.stdout).reclaimedBytes, 'number')
    errorLine(await cli(['info', 'nope', ...d]), 1, 'ERR_SHARD_UNKNOWN')
    errorLine(await cli(['get', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', ...d]), 1, 'ERR_NOT_FOUND')
    // The admin API wants the token the CLI read from <repo>/token.
    const noToken = await fetchBytes(`${url}/shards`, {})
    assert.is(noToken.status, 401)

    const second = await cli(['serve', '--listen', '127.0.0.1:0', ...d])
    const refused = errorLine(second, 1, 'ERR_REPO_SERVED')
    assert.match(refused, new RegExp(`pid ${String(serve.pid)} at ${url}`))
    // The whole file: in this process the refused serve would write the same pid.
    assert.equal(await readServeJson(repo), published, 'the refused serve left serve.json alone')

    const exit = await serve.stop('SIGTERM')
    assert.equal(exit, { code: 0, signal: null })
    assert.is(await readServeJson(repo), undefined, 'serve.json removed')
    r = await cli(['ls', '--json', '--verbose', ...d])
    ok(r, 'direct ls after serve')
    assert.match(r.stderr, /directly/)
    assert.equal(JSON.parse(r.stdout).shards.map((s: { key: string }) => s.key), ['other/w', 'sample-v1'])
  } finally {
    await serve.kill()
  }
})

test('destroy --drain: through serve while the gateway keeps reading the shard, and in direct mode', async ({ dir }) => {
  const repo = join(dir, 'repo')
  const root = await cars(dir, { 'sample-v1.car': 'sample-v1.car' })
  const d = ['--dir', repo]
  const { serve, url } = await startServe(repo, ['--allow-root', root])
  try {
    ok(await cli(['register', join(root, 'sample-v1.car'), ...d]), 'register through serve')
    const stopped = new AbortController()
    const statuses = new Set<number>()
    let served = 0
    const readers = [1, 2, 3].map(async (w) => {
      for (let i = w; !stopped.signal.aborted; i += 3) {
        const r = await fetchBytes(`${url}/ipfs/${at(blocks, i % blocks.length).cid.toString()}?format=raw`)
        statuses.add(r.status)
        if (r.status === 200) served++
      }
    })
    try {
      await until(() => served >= 10, 'the gateway to serve the shard')
      const r = await cli(['destroy', 'sample-v1', '--drain', '--json', ...d])
      ok(r, 'destroy --drain through serve')
      assert.equal(JSON.parse(r.stdout), { key: 'sample-v1', destroyed: true })
    } finally {
      stopped.abort()
      await Promise.all(readers)
    }
    assert.equal([...statuses].filter((s) => s !== 200 && s !== 404), [], 'blocks were served, then not found')
    assert.is((await fetchBytes(`${url}/ipfs/${first.cid.toString()}?format=raw`)).status, 404)
    errorLine(await cli(['info', 'sample-v1', ...d]), 1, 'ERR_SHARD_UNKNOWN')
    assert.equal(await serve.stop('SIGTERM'), { code: 0, signal: null })
  } finally {
    await serve.kill()
  }
  ok(await cli(['register', join(root, 'sample-v1.car'), ...d]), 'register directly')
  const r = await cli(['destroy', 'sample-v1', '--drain', ...d])
  assert.equal([r.code, r.stdout], [0, 'destroyed sample-v1\n'])
})

test('a stale serve.json is ignored by commands and replaced by serve; --token and --no-auth', async ({ dir }) => {
  const repo = join(dir, 'repo')
  const d = ['--dir', repo]
  await mkdir(repo, { recursive: true })
  // A server that died without cleaning up.
  await writeFile(join(repo, 'serve.json'), JSON.stringify({ pid: await deadPid(), url: 'http://127.0.0.1:9', auth: 'file' }))
  let r = await cli(['ls', '--verbose', ...d])
  ok(r, 'ls with a dead server file')
  assert.match(r.stderr, /directly/)

  let running: InProcess | undefined
  try {
    let started = await startServe(repo, ['--token', 'custom-token_1'])
    running = started.serve
    const serveJson = await readServeJson(repo)
    assert.equal(serveJson, { pid: running.pid, url: started.url, auth: 'token', startedAt: serveJson?.startedAt })
    // The token was given to serve, not written to the repo: clients need it too.
    errorLine(await cli(['ls', ...d]), 1, 'ERR_UNAUTHORIZED')
    ok(await cli(['ls', ...d], { env: { DAGSTORE_TOKEN: 'custom-token_1' } }), 'ls with DAGSTORE_TOKEN')
    errorLine(await cli(['ls', ...d], { env: { DAGSTORE_TOKEN: 'wrong' } }), 1, 'ERR_UNAUTHORIZED')
    assert.equal(await running.stop(), { code: 0, signal: null })

    // A live process that does not answer at the recorded address (pid reused, or hung but
    // no longer holding LevelDB): also stale.
    await writeFile(join(repo, 'serve.json'), JSON.stringify({ pid: process.pid, url: 'http://127.0.0.1:9', auth: 'file' }))
    r = await cli(['ls', '--verbose', ...d])
    ok(r, 'ls with an unanswering server file')
    assert.match(r.stderr, /directly/)
    started = await startServe(repo, ['--no-auth'])
    running = started.serve
    // pid and url: in this process the stale file's pid is the new server's too.
    assert.equal([(await readServeJson(repo))?.pid, (await readServeJson(repo))?.url], [running.pid, started.url])
    assert.is((await readServeJson(repo))?.auth, 'none')
    r = await cli(['ls', '--verbose', ...d])
    ok(r, 'ls through a --no-auth server')
    assert.match(r.stderr, /using the server/)
    assert.equal(await running.stop('SIGINT'), { code: 0, signal: null })
    assert.is(await readServeJson(repo), undefined)
  } finally {
    await running?.kill()
  }
})

test('serve on a busy port fails with a clear line', async ({ dir }) => {
  const busy = createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  try {
    const { port } = busy.address() as AddressInfo
    const r = await cli(['serve', '--dir', join(dir, 'repo')], { env: { DAGSTORE_LISTEN: `127.0.0.1:${port}` } })
    const line = errorLine(r, 1, 'ERR_ADDRESS_IN_USE')
    assert.match(line, /DAGSTORE_LISTEN/)
    assert.is(await readServeJson(join(dir, 'repo')), undefined)
  } finally {
    await new Promise((resolve) => busy.close(resolve))
  }
})

test('SIGTERM during an in-flight block download: serve exits 0, serve.json removed, the repo consistent', async ({ dir }) => {
  const repo = join(dir, 'repo')
  const d = ['--dir', repo]
  let stall = false
  const stalled: ServerResponse[] = []
  // No Range: the shard is copied (an origin honouring Range would be read in place), and the test is about a download.
  const fast = standard(sample, { ranges: false })
  const origin = await serveHttp((req, res, n) => {
    if (!stall || req.method !== 'GET') {
      fast(req, res, n)
      return
    }
    // Half the CAR, then nothing: the last block never arrives while `stall` holds.
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': sample.byteLength })
    res.write(sample.subarray(0, sample.byteLength >> 1))
    stalled.push(res)
  })
  let serve: Running | undefined
  let getter: InProcess | undefined
  try {
    const started = await spawnServe(repo, ['--shutdown-grace', '300'])
    serve = started.serve
    ok(await cli(['register', origin.url, '--key', 'remote', ...d]), 'register remote')
    // Drop the local copy so the next get has to download it again.
    const gc = JSON.parse((await cli(['gc', '--json', ...d])).stdout)
    assert.is(gc.reclaimedBytes, sample.byteLength)
    stall = true
    getter = startCli(['get', last.cid.toString(), ...d])
    const deadline = Date.now() + 10_000
    while (stalled.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.is(stalled.length, 1, 'the download started and stalled')
    assert.ok(getter.alive, 'the get is in flight')

    assert.equal(await serve.stop('SIGTERM'), { code: 0, signal: null })
    assert.is(await readServeJson(repo), undefined)
    const got = await getter.exited
    assert.is(got.code, 1, `the interrupted get fails: ${getter.stderr}`)
    assert.not.ok(hasStack(getter.stderr))

    stall = false
    let r = await cli(['ls', '--json', ...d])
    ok(r, 'direct ls after SIGTERM')
    const shard = JSON.parse(r.stdout).shards[0]
    assert.equal([shard.key, shard.state, shard.refs], ['remote', 'available', 0])
    r = await cli(['get', last.cid.toString(), ...d])
    ok(r, 'direct get after SIGTERM')
    assert.ok(r.stdoutBytes.equals(last.bytes))
    const leftovers = (await readdir(join(repo, 'transients'))).filter((f) => f.endsWith('.partial'))
    assert.equal(leftovers, [])
  } finally {
    await getter?.kill()
    await serve?.kill()
    await origin.close()
  }
})

test('npm start: serves, imports the sample (idempotently), prints a curl-able block URL', async ({ dir }) => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }
  // The script's node part (the build before it has run already).
  const m = /^npm run build && node dist\/src\/app\/cli\/main\.js (.+)$/.exec(pkg.scripts.start)
  assert.ok(m !== null, pkg.scripts.start)
  const args = at(m as RegExpExecArray, 1).split(/\s+/)
  const env = { DAGSTORE_DIR: join(dir, 'repo'), DAGSTORE_LISTEN: '127.0.0.1:0' }
  for (const action of ['registered', 'present']) {
    const start = spawnCli(args, { cwd: ROOT, env })
    try {
      await start.waitFor(new RegExp(`sample shard "sample-v1" ${action}`))
      const printed = await start.waitFor(/^(http:\/\/127\.0\.0\.1:\d+\/ipfs\/(\S+))$/m)
      const [url, cid] = [at(printed, 1), at(printed, 2)]
      assert.is(cid, first.cid.toString())
      const res = await fetchBytes(url)
      assert.is(res.status, 200)
      assert.ok(res.body.equals(first.bytes), 'the block bytes')
      // The status page is where it says.
      const page = await fetchBytes(at(await start.waitFor(/^status page: (http:\/\/127\.0\.0\.1:\d+\/)$/m), 1))
      assert.is(page.status, 200)
      assert.match(page.body.toString('utf8'), /<title>dagstore status<\/title>/)
      assert.equal(await start.stop('SIGTERM'), { code: 0, signal: null })
    } finally {
      await start.kill()
    }
  }
})

test.run()
