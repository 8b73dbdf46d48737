// Store-level faults for remote (HTTP) shards: a full or read-only transientsDir (a real tmpfs,
// root only) and hostile or broken servers (real node:http on 127.0.0.1). Whatever goes wrong:
// the shard fails with a clear error, the other shards keep serving, nothing crashes, no file
// descriptor leaks, and transientsDir never keeps a .partial or a transient with wrong bytes.
import * as assert from 'uvu/assert'
import { readFile, readdir, readlink } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { DAGStore } from '../src/engine/store.js'
import { HttpMount, type HttpMountOptions } from '../src/storage/mount/http.js'
import { FileMount } from '../src/storage/mount/file.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, until, type Reported } from './helpers/store.js'
import { paced, serve, standard, type Handler, type TestServer } from './helpers/http-server.js'
import { canMountTmpfs, mountTmpfs, tmpfsUnavailableReason, type Tmpfs } from './helpers/tmpfs.js'
import { at } from './helpers/assert.js'

const sample = await readFile(fixture('sample-v1.car'))
const SIZE = sample.byteLength
const sampleBlocks = await carBlocks('sample-v1.car')
// The healthy local shard that must keep serving through every fault: another CAR, read in place.
const LOCAL_CAR = 'sample-wrapped-v2.car'
const localBlocks = await carBlocks(LOCAL_CAR)

const TMPFS_SIZE = 64 * 1024 // far smaller than sample-v1.car
assert.ok(SIZE > 4 * TMPFS_SIZE, 'the served CAR must not fit the tiny tmpfs')

const tmpfsOk = await canMountTmpfs()
const isRoot = process.getuid?.() === 0
if (!tmpfsOk) {
  console.log(isRoot
    ? `\n  remote-faults: the tmpfs tests (disk full, read-only transientsDir) must run as root and will FAIL: ${tmpfsUnavailableReason() ?? 'tmpfs unavailable'}\n`
    : `\n  remote-faults: SKIPPING the tmpfs tests (disk full, read-only transientsDir): ${tmpfsUnavailableReason() ?? 'tmpfs unavailable'}\n`)
}

// ---- harness -------------------------------------------------------------------------------------

type Fds = Map<string, string>

/** Every open fd of this process → what it points at. */
async function openFds (): Promise<Fds> {
  const fds: Fds = new Map()
  for (const fd of await readdir('/proc/self/fd')) {
    try {
      fds.set(fd, await readlink(join('/proc/self/fd', fd)))
    } catch {
      // closed between readdir and readlink (e.g. readdir's own fd)
    }
  }
  return fds
}

/** Fds open now that were not open (to the same thing) in `before`. */
async function newFds (before: Fds): Promise<string[]> {
  const out: string[] = []
  for (const [fd, target] of await openFds()) if (before.get(fd) !== target) out.push(`${fd} -> ${target}`)
  return out
}

/** No fd opened since `before` is still open: polls up to ~1 s for closes in flight. */
async function assertNoFdLeak (before: Fds): Promise<void> {
  const deadline = Date.now() + 1000
  let leaked = await newFds(before)
  while (leaked.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    leaked = await newFds(before)
  }
  assert.equal(leaked, [], `leaked file descriptors: ${leaked.join(', ')}`)
}

/** Records unhandled rejections while a test runs (the default would crash the whole run). */
function trapUnhandled (): { check: () => Promise<void>, dispose: () => void } {
  const seen: unknown[] = []
  const onRejection = (reason: unknown): void => { seen.push(reason) }
  process.on('unhandledRejection', onRejection)
  return {
    dispose: () => { process.removeListener('unhandledRejection', onRejection) },
    check: async () => {
      // Let a late rejection surface first.
      try {
        await new Promise((resolve) => setImmediate(resolve))
        await new Promise((resolve) => setTimeout(resolve, 20))
      } finally {
        process.removeListener('unhandledRejection', onRejection)
      }
      assert.equal(seen.map(String), [], 'unhandled rejections')
    }
  }
}

interface ErrorLink { name: string, code: string | undefined, message: string }

/** `err`, its cause, the cause's cause, ... */
function chainOf (err: unknown): ErrorLink[] {
  const out: ErrorLink[] = []
  for (let e = err; e !== undefined && e !== null && out.length < 10; e = (e as { cause?: unknown }).cause) {
    const x = e as { name?: string, code?: string, message?: string }
    out.push({ name: String(x.name), code: x.code, message: String(x.message ?? e) })
  }
  return out
}

const describe = (chain: ErrorLink[]): string => chain.map((l) => `${l.name}[${String(l.code)}]: ${l.message}`).join(' <- ')

/** A shard failure: ERR_SHARD_INITIALIZATION_FAILED whose cause chain holds `code`, named in the message. */
function assertInitFailure (err: unknown, code: string): void {
  assert.ok(err !== undefined, 'register should reject')
  const chain = chainOf(err)
  assert.is(at(chain, 0).code, 'ERR_SHARD_INITIALIZATION_FAILED', describe(chain))
  assert.ok(chain.slice(1).some((l) => l.code === code), `expected ${code} in the cause chain: ${describe(chain)}`)
  // What went wrong is readable from the top-level message alone.
  const root = chain.find((l) => l.code === code) as ErrorLink
  assert.ok(at(chain, 0).message.includes(root.message), `message ${JSON.stringify(at(chain, 0).message)} hides ${JSON.stringify(root.message)}`)
}

/**
 * transientsDir holds no .partial, and any other file in it is a byte-exact copy of the CAR
 * (a failed download must never leave a complete-looking transient with wrong bytes).
 */
async function assertCleanTransients (dir: string, opts: { allowComplete?: boolean } = {}): Promise<string[]> {
  const files = await readdir(dir)
  assert.equal(files.filter((f) => f.endsWith('.partial')), [], `.partial left in ${dir}`)
  for (const f of files) {
    const bytes = await readFile(join(dir, f))
    assert.ok(Buffer.compare(bytes, sample) === 0, `${f} in transientsDir has wrong bytes (${bytes.byteLength} of ${SIZE})`)
  }
  if (opts.allowComplete !== true) assert.equal(files, [], `files left in ${dir}`)
  return files
}

function assertSameBytes (actual: Uint8Array, expected: Uint8Array, what: string): void {
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength)
  const e = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)
  assert.ok(a.equals(e), `${what}: ${a.byteLength} bytes differ from the expected ${e.byteLength}`)
}

/** A healthy local shard: registered, one accessor held; `check()` reads blocks through it and through a fresh acquire. */
async function localShard (store: DAGStore): Promise<{ check: () => Promise<void>, close: () => Promise<void> }> {
  await store.register('local', new FileMount(fixture(LOCAL_CAR)))
  const held = await store.acquire('local')
  let round = 0
  return {
    check: async () => {
      const b = at(localBlocks, (round++ * 7) % localBlocks.length)
      assertSameBytes(await held.blockstore().get(b.cid), b.bytes, 'held accessor serves')
      const fresh = await store.acquire('local')
      try {
        const last = at(localBlocks, localBlocks.length - 1)
        assertSameBytes(await fresh.blockstore().get(last.cid), last.bytes, 'fresh acquire serves')
      } finally {
        await fresh.close()
      }
      assert.is(store.getShardInfo('local').state, 'serving')
    },
    close: async () => { await held.close() }
  }
}

/**
 * The remote shard, read through a new accessor, equals the source: its whole reader() and
 * every block (or, with `sampled`, its first, middle and last blocks: the recover loops).
 */
async function assertServesSample (store: DAGStore, key: string, opts: { sampled?: boolean } = {}): Promise<void> {
  const blocks = opts.sampled === true
    ? [at(sampleBlocks, 0), at(sampleBlocks, sampleBlocks.length >> 1), at(sampleBlocks, sampleBlocks.length - 1)]
    : sampleBlocks
  const acc = await store.acquire(key)
  try {
    for (const b of blocks) assertSameBytes(await acc.blockstore().get(b.cid), b.bytes, `block ${b.cid.toString()}`)
    const chunks: Uint8Array[] = []
    for await (const c of acc.reader()) chunks.push(c)
    assert.ok(Buffer.compare(Buffer.concat(chunks), sample) === 0, 'reader() bytes equal the source')
  } finally {
    await acc.close()
  }
}

/** Reports the store could not hand to a caller: none expected from a plain shard failure. */
function assertNothingReported (reported: Reported[]): void {
  assert.equal(reported.map((r) => `${r.context}: ${String(r.err)}`), [], 'errors reported to onError')
}

/**
 * Runs `body` with fd and unhandled-rejection accounting around it: the server and the store
 * are opened inside, closed after, and then nothing may be left open.
 */
async function guarded (body: () => Promise<void>): Promise<void> {
  const before = await openFds()
  const trap = trapUnhandled()
  try {
    await body()
  } catch (err) {
    trap.dispose() // the test's own failure is the one to report
    throw err
  }
  await trap.check()
  await assertNoFdLeak(before)
}

// ---- hostile servers --------------------------------------------------------------------------------

function head (res: ServerResponse, headers: Record<string, string | number>): void {
  res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', ...headers })
  res.end()
}

/** Writes a raw response (head + bytes) straight onto the socket; `end` closes it cleanly after. */
function raw (req: IncomingMessage, headLines: string[], body: Uint8Array, end: boolean): void {
  req.socket.write(['HTTP/1.1 200 OK', ...headLines, 'Connection: close'].join('\r\n') + '\r\n\r\n')
  req.socket.write(body)
  if (end) req.socket.end()
}

/** Keeps writing `chunk` to the socket until it closes. */
function endless (req: IncomingMessage, write: () => void): void {
  const timer = setInterval(() => {
    if (req.socket.destroyed || req.socket.writableEnded) { clearInterval(timer); return }
    write()
  }, 2)
  req.socket.on('close', () => { clearInterval(timer) })
}

const garbage = Buffer.alloc(16 * 1024, 0x5a)

/** Sends the requested part of the sample (honouring `Range: bytes=N-`), but resets the connection after `n` bytes. */
function resetAfter (n: number, opts: { ranges: boolean }): Handler {
  return (req, res) => {
    const headers: Record<string, string | number> = opts.ranges ? { 'accept-ranges': 'bytes' } : {}
    if (req.method === 'HEAD') { head(res, { ...headers, 'content-length': SIZE }); return }
    const m = opts.ranges ? /^bytes=(\d+)-$/.exec(req.headers.range ?? '') : null
    const start = m === null ? 0 : Number(m[1])
    if (m !== null) res.writeHead(206, { ...headers, 'content-length': SIZE - start, 'content-range': `bytes ${start}-${SIZE - 1}/${SIZE}` })
    else res.writeHead(200, { ...headers, 'content-length': SIZE })
    res.write(sample.subarray(start, Math.min(SIZE, start + n)), () => { setTimeout(() => req.socket.destroy(), 5) })
  }
}

interface Hostile {
  name: string
  handler: () => Handler
  mount?: HttpMountOptions
  /** The code the failure's cause chain must hold. */
  code: string
  /**
   * The declared body itself is exact and only bytes *after* it are hostile: an HTTP client
   * that is done with the response may never read them, so the shard may also succeed — but
   * then only with a byte-exact transient.
   */
  exactPrefix?: true
}

const fast: HttpMountOptions = { retries: 2, backoffMs: 1, maxBackoffMs: 5, timeoutMs: 2000 }

const HOSTILE: Hostile[] = [
  {
    name: '500 on every request (HEAD included)',
    handler: () => (_req, res) => { res.writeHead(500); res.end() },
    code: 'ERR_HTTP_STATUS'
  },
  {
    name: 'HEAD fine, 503 on every GET',
    handler: () => (req, res, n) => {
      if (req.method === 'HEAD') { standard(sample)(req, res, n); return }
      res.writeHead(503); res.end()
    },
    code: 'ERR_HTTP_STATUS'
  },
  {
    name: 'connection reset mid-body on every GET (Range resumes are reset too)',
    handler: () => resetAfter(50_000, { ranges: true }),
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'connection reset mid-body on every GET, server without Range',
    handler: () => resetAfter(50_000, { ranges: false }),
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'stall: headers and part of the body, then nothing',
    handler: () => (req, res, n) => {
      if (req.method === 'HEAD') { standard(sample)(req, res, n); return }
      res.writeHead(200, { 'content-length': SIZE })
      res.write(sample.subarray(0, 10_000)) // then nothing, ever
    },
    mount: { ...fast, retries: 1, timeoutMs: 60 },
    code: 'ERR_HTTP_TIMEOUT'
  },
  {
    name: 'stall: GET never answered',
    handler: () => (req, res, n) => {
      if (req.method === 'HEAD') standard(sample)(req, res, n)
    },
    mount: { ...fast, retries: 1, timeoutMs: 60 },
    code: 'ERR_HTTP_TIMEOUT'
  },
  {
    name: 'lying Content-Length: declares more than it sends, then closes cleanly',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE }); return }
      raw(req, [`Content-Length: ${SIZE}`], sample.subarray(0, SIZE - 500), true)
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'lying Content-Length: HEAD and GET declare less than the body sent',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE - 1000 }); return }
      raw(req, [`Content-Length: ${SIZE - 1000}`], sample, true)
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'lying Content-Length: GET declares (and sends) more than HEAD said',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE - 1000 }); return }
      res.writeHead(200, { 'content-length': SIZE })
      res.end(sample)
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'chunked body shorter than the size HEAD declared',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE }); return }
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.end(sample.subarray(0, SIZE - 300))
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'a reset mid-body, then 206 with the wrong Content-Range to every resume',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'accept-ranges': 'bytes', 'content-length': SIZE }); return }
      if (req.headers.range !== undefined) {
        res.writeHead(206, { 'content-range': `bytes 0-${SIZE - 1}/${SIZE}`, 'content-length': SIZE })
        res.end(sample)
        return
      }
      res.writeHead(200, { 'accept-ranges': 'bytes', 'content-length': SIZE })
      res.write(sample.subarray(0, 40_000), () => { setTimeout(() => req.socket.destroy(), 5) })
    },
    code: 'ERR_HTTP_RANGE'
  },
  {
    name: 'HEAD without a size; chunked GET sends the whole CAR, then resets instead of ending, every time',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, {}); return }
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.write(sample, () => { setTimeout(() => req.socket.destroy(), 5) })
    },
    code: 'ERR_HTTP_NETWORK'
  },
  {
    name: 'chunked GET sends exactly the size HEAD declared, then resets instead of ending, every time',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE }); return }
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.write(sample, () => { setTimeout(() => req.socket.destroy(), 5) })
    },
    code: 'ERR_HTTP_NETWORK',
    exactPrefix: true
  },
  {
    name: 'ignored Range: 200 with the full body to every resume, and every GET reset mid-body',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'accept-ranges': 'bytes', 'content-length': SIZE }); return }
      res.writeHead(200, { 'accept-ranges': 'bytes', 'content-length': SIZE })
      res.write(sample.subarray(0, 40_000), () => { setTimeout(() => req.socket.destroy(), 5) })
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'endless chunked body beyond the size HEAD declared (no Content-Length on GET)',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE }); return }
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.write(sample)
      endless(req, () => { res.write(garbage) })
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH'
  },
  {
    name: 'endless body beyond its Content-Length (raw bytes keep coming after the declared end)',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE }); return }
      raw(req, [`Content-Length: ${SIZE}`], Buffer.concat([sample, garbage]), false)
      endless(req, () => { req.socket.write(garbage) })
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH',
    exactPrefix: true
  },
  {
    name: 'endless body beyond its Content-Length, the surplus starting only after the declared body arrived',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, { 'content-length': SIZE }); return }
      raw(req, [`Content-Length: ${SIZE}`], sample, false)
      endless(req, () => { req.socket.write(garbage) })
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH',
    exactPrefix: true
  },
  {
    name: 'endless body beyond its Content-Length, HEAD without a size',
    handler: () => (req, res) => {
      if (req.method === 'HEAD') { head(res, {}); return }
      raw(req, [`Content-Length: ${SIZE}`], Buffer.concat([sample, garbage]), false)
      endless(req, () => { req.socket.write(garbage) })
    },
    code: 'ERR_HTTP_LENGTH_MISMATCH',
    exactPrefix: true
  },
  {
    name: 'slow origin: 1 byte every 50 ms, below minBytesPerSecond (every attempt)',
    handler: () => paced(sample, 1, 50),
    mount: { ...fast, minBytesPerSecond: 1000, rateWindowMs: 300 },
    code: 'ERR_HTTP_TIMEOUT'
  },
  {
    name: 'slow origin: above the minimum rate, but past the download deadline',
    handler: () => paced(sample, 4096, 25),
    mount: { ...fast, deadlineMs: 1000 },
    code: 'ERR_HTTP_TIMEOUT'
  }
]

/** `h` until `honest.on`, then a well-behaved server for the same bytes. */
function switchable (h: Handler, honest: { on: boolean }): Handler {
  const good = standard(sample)
  return (req, res, n) => { (honest.on ? good : h)(req, res, n) }
}

const test = dirSuite('remote faults')

// The first store, HTTP exchange and LevelDB open of the process may set up long-lived fds
// (thread pool, epoll): do that once here so every test measures only its own.
test.before(async () => {
  const { tempDir } = await import('./helpers/fixtures.js')
  const t = await tempDir()
  const srv = await serve(standard(sample))
  try {
    const { store } = await openStore(t.dir)
    try {
      await store.register('warm', new HttpMount(srv.url))
      await store.register('local', new FileMount(fixture(LOCAL_CAR)))
      const acc = await store.acquire('warm')
      await acc.close()
    } finally {
      await store.close()
    }
  } finally {
    await srv.close()
    await t.cleanup()
  }
})

test('control: an honest server through the same harness registers, serves exact bytes, leaves only the exact transient, no fd leak', async (ctx) => {
  await guarded(async () => {
    const srv = await serve(standard(sample))
    const { store, reported } = await openStore(ctx.dir)
    try {
      const local = await localShard(store)
      await store.register('remote', new HttpMount(srv.url, fast))
      await assertServesSample(store, 'remote')
      assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, 1)
      await local.check()
      await local.close()
      assertNothingReported(reported)
    } finally {
      await store.close()
      await srv.close()
    }
  })
})

for (const h of HOSTILE) {
  test(`hostile server: ${h.name} → shard errored (${h.code}), nothing left in transientsDir, other shard serves, no crash, no fd leak`, async (ctx) => {
    await guarded(async () => {
      const srv = await serve(h.handler())
      const { store, reported } = await openStore(ctx.dir)
      try {
        const local = await localShard(store)
        const mount = new HttpMount(srv.url, h.mount ?? fast)
        // A lazy acquirer parked on the download fails too.
        const [reg, acq] = await Promise.allSettled([store.register('remote', mount), store.acquire('remote')])
        await local.check()
        if (h.exactPrefix === true && reg.status === 'fulfilled') {
          // Only acceptable with the exact bytes.
          assert.is(acq.status, 'fulfilled')
          await (acq as PromiseFulfilledResult<Awaited<ReturnType<DAGStore['acquire']>>>).value.close()
          assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, 1)
          await assertServesSample(store, 'remote')
          await local.check()
          await local.close()
          assertNothingReported(reported)
          return
        }
        assert.is(reg.status, 'rejected', 'register rejects')
        assertInitFailure((reg as PromiseRejectedResult).reason, h.code)
        assert.is(acq.status, 'rejected', 'acquire rejects')
        assert.is(((acq as PromiseRejectedResult).reason as { code?: string }).code, 'ERR_SHARD_ERRORED')
        const info = store.getShardInfo('remote')
        assert.is(info.state, 'errored')
        assert.ok(chainOf(info.error).some((l) => l.code === h.code), describe(chainOf(info.error)))
        await assertCleanTransients(join(ctx.dir, 'transients'))
        // The failure stays contained: acquiring the errored shard fails cleanly, the other one serves.
        assert.is(await store.acquire('remote').then(() => 'resolved', (e: { code?: string }) => e.code), 'ERR_SHARD_ERRORED')
        await local.check()
        await local.close()
        assertNothingReported(reported)
      } finally {
        await store.close()
        await srv.close()
      }
    })
  })
}

test('reset mid-body once, then the server ignores Range (200, full body) → restart and skip: the transient is byte-identical', async (ctx) => {
  await guarded(async () => {
    let gets = 0
    const srv = await serve((req, res) => {
      if (req.method === 'HEAD') { head(res, { 'accept-ranges': 'bytes', 'content-length': SIZE }); return }
      res.writeHead(200, { 'accept-ranges': 'bytes', 'content-length': SIZE })
      if (gets++ === 0) {
        res.write(sample.subarray(0, 40_000), () => { setTimeout(() => req.socket.destroy(), 5) })
        return
      }
      res.end(sample) // whatever Range said
    })
    const { store, reported } = await openStore(ctx.dir)
    try {
      const local = await localShard(store)
      await store.register('remote', new HttpMount(srv.url, fast))
      assert.ok(srv.log.some((r) => r.method === 'GET' && r.range !== undefined), 'a Range resume was asked for')
      await assertServesSample(store, 'remote')
      assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, 1)
      await local.check()
      await local.close()
      assertNothingReported(reported)
    } finally {
      await store.close()
      await srv.close()
    }
  })
})

test('every fault in turn against one store: each remote shard fails alone while the local shard keeps serving; the store stays usable and every shard recovers once its server is honest', async (ctx) => {
  await guarded(async () => {
    const servers: TestServer[] = []
    const honest = { on: false }
    const { store, reported } = await openStore(ctx.dir)
    try {
      const local = await localShard(store)
      let succeeded = 0 // exactPrefix faults the client legitimately never saw
      for (const [i, h] of HOSTILE.entries()) {
        const srv = await serve(switchable(h.handler(), honest))
        servers.push(srv)
        const err = await store.register(`remote-${i}`, new HttpMount(srv.url, h.mount ?? fast)).then(() => undefined, (e: unknown) => e)
        if (h.exactPrefix === true && err === undefined) {
          await assertServesSample(store, `remote-${i}`, { sampled: true })
          succeeded++
        } else {
          assertInitFailure(err, h.code)
          assert.is(store.getShardInfo(`remote-${i}`).state, 'errored', h.name)
        }
        await local.check()
      }
      assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, succeeded)
      // A good remote shard still registers and serves next to all the failed ones.
      const good = await serve(standard(sample))
      servers.push(good)
      await store.register('remote-good', new HttpMount(good.url, fast))
      await assertServesSample(store, 'remote-good')
      assert.is(store.stats().errored, HOSTILE.length - succeeded)
      await local.check()
      // Once the servers behave, every failed shard recovers with exact bytes.
      honest.on = true
      for (const i of HOSTILE.keys()) {
        if (store.getShardInfo(`remote-${i}`).state !== 'errored') continue
        await store.recover(`remote-${i}`)
        await assertServesSample(store, `remote-${i}`, { sampled: true })
      }
      assert.is(store.stats().errored, 0)
      assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, HOSTILE.length + 1)
      await local.check()
      await local.close()
      assertNothingReported(reported)
    } finally {
      await store.close()
      for (const s of servers) await s.close()
    }
  })
})

test('lazy shards: the acquirers that trigger each hostile download all fail with ERR_SHARD_ERRORED; nothing left; every shard recovers once its server is honest', async (ctx) => {
  await guarded(async () => {
    const servers: TestServer[] = []
    const honest = { on: false }
    const { store, reported } = await openStore(ctx.dir)
    try {
      const local = await localShard(store)
      let succeeded = 0
      for (const [i, h] of HOSTILE.entries()) {
        const srv = await serve(switchable(h.handler(), honest))
        servers.push(srv)
        const key = `lazy-${i}`
        await store.register(key, new HttpMount(srv.url, h.mount ?? fast), { lazy: true })
        assert.is(srv.log.length, 0, 'a lazy register fetches nothing')
        const results = await Promise.allSettled([store.acquire(key), store.acquire(key), store.acquire(key)])
        if (h.exactPrefix === true && results.every((r) => r.status === 'fulfilled')) {
          for (const r of results) await (r as PromiseFulfilledResult<Awaited<ReturnType<DAGStore['acquire']>>>).value.close()
          await assertServesSample(store, key, { sampled: true })
          succeeded++
        } else {
          for (const r of results) {
            assert.is(r.status, 'rejected', h.name)
            const chain = chainOf((r as PromiseRejectedResult).reason)
            assert.is(at(chain, 0).code, 'ERR_SHARD_ERRORED', describe(chain))
            assert.ok(chain.some((l) => l.code === h.code), `${h.name}: expected ${h.code} in ${describe(chain)}`)
          }
          assert.is(store.getShardInfo(key).state, 'errored', h.name)
        }
        await local.check()
      }
      assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, succeeded)
      honest.on = true
      for (const i of HOSTILE.keys()) {
        if (store.getShardInfo(`lazy-${i}`).state !== 'errored') continue
        await store.recover(`lazy-${i}`)
        await assertServesSample(store, `lazy-${i}`, { sampled: true })
      }
      assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, HOSTILE.length)
      await local.check()
      await local.close()
      assertNothingReported(reported)
    } finally {
      await store.close()
      for (const s of servers) await s.close()
    }
  })
})

/**
 * Acquires a shard whose transient is being fetched again from a server that turned hostile.
 * Either the acquire fails, or it hands out an accessor whose reads of the bytes that never
 * arrive fail; every block it does return is exact. Returns the error chains seen.
 */
async function acquireDuringFault (store: DAGStore, key: string): Promise<ErrorLink[][]> {
  const seen: ErrorLink[][] = []
  let acc: Awaited<ReturnType<DAGStore['acquire']>>
  try {
    acc = await store.acquire(key)
  } catch (err) {
    seen.push(chainOf(err))
    return seen
  }
  try {
    for (const b of sampleBlocks) {
      let got: Uint8Array
      try {
        got = await acc.blockstore().get(b.cid)
      } catch (err) {
        seen.push(chainOf(err))
        break
      }
      assertSameBytes(got, b.bytes, `block ${b.cid.toString()} read during a failing download`)
    }
  } finally {
    await acc.close()
  }
  return seen
}

test('a reclaimed transient fetched again from a server that turned hostile: the acquire (or the accessor\'s reads) fail with the fault, the shard errors, nothing left; it recovers once the server is honest', async (ctx) => {
  await guarded(async () => {
    const servers: TestServer[] = []
    const honest = { on: true }
    const transients = join(ctx.dir, 'transients')
    const { store, reported } = await openStore(ctx.dir)
    try {
      const local = await localShard(store)
      for (const [i, h] of HOSTILE.entries()) {
        const srv = await serve(switchable(h.handler(), honest))
        servers.push(srv)
        await store.register(`remote-${i}`, new HttpMount(srv.url, h.mount ?? fast))
      }
      const gc = await store.gc()
      for (const i of HOSTILE.keys()) assert.is(gc.shards.get(`remote-${i}`), null)
      await assertCleanTransients(transients)
      honest.on = false
      let succeeded = 0
      for (const [i, h] of HOSTILE.entries()) {
        const key = `remote-${i}`
        const seen = await acquireDuringFault(store, key)
        await local.check()
        if (h.exactPrefix === true && seen.length === 0) {
          succeeded++
          continue
        }
        assert.is(seen.length, 1, `${h.name}: the fault surfaced`)
        assert.ok(at(seen, 0).some((l) => l.code === h.code), `${h.name}: expected ${h.code} in ${describe(at(seen, 0))}`)
        await until(() => store.getShardInfo(key).state === 'errored', `${key} errored`, 5000)
        const info = store.getShardInfo(key)
        assert.ok(chainOf(info.error).some((l) => l.code === h.code), `${h.name}: shard error ${describe(chainOf(info.error))}`)
      }
      assert.is((await assertCleanTransients(transients, { allowComplete: true })).length, succeeded)
      assert.is(store.stats().errored, HOSTILE.length - succeeded)
      honest.on = true
      for (const i of HOSTILE.keys()) {
        if (store.getShardInfo(`remote-${i}`).state !== 'errored') continue
        await store.recover(`remote-${i}`)
        await assertServesSample(store, `remote-${i}`, { sampled: true })
      }
      await local.check()
      await local.close()
      assertNothingReported(reported)
    } finally {
      await store.close()
      for (const s of servers) await s.close()
    }
  })
})

test('gc() reclaiming several remote transients at once reports the bytes of every one (reclaimedBytes)', async (ctx) => {
  await guarded(async () => {
    const srv = await serve(standard(sample))
    const { store, reported } = await openStore(ctx.dir)
    try {
      for (let i = 0; i < 3; i++) await store.register(`remote-${i}`, new HttpMount(srv.url, fast))
      assert.is((await assertCleanTransients(join(ctx.dir, 'transients'), { allowComplete: true })).length, 3)
      const gc = await store.gc()
      assert.equal([...gc.shards.values()], [null, null, null])
      await assertCleanTransients(join(ctx.dir, 'transients')) // all three deleted...
      assert.is(gc.reclaimedBytes, 3 * SIZE, 'reclaimedBytes') // ...and all three counted
      assertNothingReported(reported)
    } finally {
      await store.close()
      await srv.close()
    }
  })
})

/** Closes a store while its download stalls, then restarts it against the (now honest) server. */
async function closeDuringStall (dir: string, srv: TestServer, transients: string, honest: { on: boolean }): Promise<void> {
  const first = await openStore(dir)
  let closed = false
  try {
    const local = await localShard(first.store)
    const pending = Promise.allSettled([
      first.store.register('remote', new HttpMount(srv.url, { ...fast, timeoutMs: 60_000 })),
      first.store.acquire('remote')
    ])
    // Wait until the download is under way and has written bytes.
    const deadline = Date.now() + 5000
    for (;;) {
      const partial = (await readdir(transients)).find((f) => f.endsWith('.partial'))
      if (partial !== undefined && (await readFile(join(transients, partial))).byteLength > 0) break
      if (Date.now() > deadline) assert.unreachable('the download never started writing')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await local.check()
    await local.close()
    await first.store.close()
    closed = true
    // close() waited for the download to stop and clean up: nothing left right now.
    await assertCleanTransients(transients)
    for (const r of await pending) {
      assert.is(r.status, 'rejected')
      assert.is(((r as PromiseRejectedResult).reason as { code?: string }).code, 'ERR_STORE_CLOSED')
    }
    assertNothingReported(first.reported)
  } finally {
    if (!closed) await first.store.close()
  }
  // The shard was initializing: the next start registers it again, this time successfully.
  honest.on = true
  const second = await openStore(dir)
  try {
    const acc = await second.store.acquire('remote')
    await acc.close()
    await assertServesSample(second.store, 'remote')
    assert.is((await assertCleanTransients(transients, { allowComplete: true })).length, 1)
    assertNothingReported(second.reported)
  } finally {
    await second.store.close()
  }
}

test('store.close() during a stalled download: waiters get ERR_STORE_CLOSED, no .partial and no fd left once close() resolves; the next start fetches it again', async (ctx) => {
  await guarded(async () => {
    const honest = { on: false }
    const srv = await serve(switchable((req, res, n) => {
      if (req.method === 'HEAD') { standard(sample)(req, res, n); return }
      res.writeHead(200, { 'content-length': SIZE })
      res.write(sample.subarray(0, 100_000)) // then nothing: only close() can end this
    }, honest))
    const transients = join(ctx.dir, 'transients')
    try {
      await closeDuringStall(ctx.dir, srv, transients, honest)
    } finally {
      await srv.close()
    }
  })
})

// ---- a full or read-only transientsDir (tmpfs) ----------------------------------------------------

// As root the tmpfs tests must run: a mount failure there is a failure, not a skip.
const tmpfsTest = tmpfsOk || isRoot ? test : test.skip

/** After recovery on a tmpfs: the remote shard serves the sample from one exact transient, the local one still serves, nothing went to onError. */
async function assertRecoveredOnTmpfs (
  store: DAGStore, dir: string, local: { check: () => Promise<void>, close: () => Promise<void> }, reported: Reported[]
): Promise<void> {
  await assertServesSample(store, 'remote')
  assert.is((await assertCleanTransients(dir, { allowComplete: true })).length, 1)
  await local.check()
  await local.close()
  assertNothingReported(reported)
}
async function withTmpfs (fn: (t: Tmpfs) => Promise<void>): Promise<void> {
  const t = await mountTmpfs(undefined, TMPFS_SIZE)
  try {
    await fn(t)
  } finally {
    await t.unmount()
  }
}

tmpfsTest('disk full: transientsDir on a 64 KiB tmpfs → register fails with ENOSPC, no .partial, other shard serves; recover once space is back', async (ctx) => {
  await withTmpfs(async (tmpfs) => {
    await guarded(async () => {
      const srv = await serve(standard(sample))
      const { store, reported } = await openStore(ctx.dir, { transientsDir: tmpfs.dir })
      try {
        const local = await localShard(store)
        const [reg, acq] = await Promise.allSettled([store.register('remote', new HttpMount(srv.url, fast)), store.acquire('remote')])
        await local.check()
        assert.is(reg.status, 'rejected', 'register rejects')
        const err = (reg as PromiseRejectedResult).reason
        assertInitFailure(err, 'ENOSPC')
        assert.match(String((err as Error).message), /no space left on device/i)
        assert.is(((acq as PromiseRejectedResult).reason as { code?: string }).code, 'ERR_SHARD_ERRORED')
        assert.is(store.getShardInfo('remote').state, 'errored')
        await assertCleanTransients(tmpfs.dir)
        // Not retried behind anyone's back while errored.
        const gets = srv.log.filter((r) => r.method === 'GET').length
        await local.check()
        assert.is(srv.log.filter((r) => r.method === 'GET').length, gets)

        await tmpfs.resize(4 * SIZE)
        await store.recover('remote')
        assert.is(store.getShardInfo('remote').state, 'available')
        await assertRecoveredOnTmpfs(store, tmpfs.dir, local, reported)
      } finally {
        await store.close()
        await srv.close()
      }
    })
  })
})

tmpfsTest('read-only transientsDir (remount,ro) → register fails with EROFS, other shard serves; recover after remount,rw', async (ctx) => {
  await withTmpfs(async (tmpfs) => {
    await tmpfs.resize(4 * SIZE)
    await guarded(async () => {
      const srv = await serve(standard(sample))
      const { store, reported } = await openStore(ctx.dir, { transientsDir: tmpfs.dir })
      try {
        const local = await localShard(store)
        await tmpfs.remountReadOnly()
        const [reg, acq] = await Promise.allSettled([store.register('remote', new HttpMount(srv.url, fast)), store.acquire('remote')])
        await local.check()
        assert.is(reg.status, 'rejected', 'register rejects')
        const err = (reg as PromiseRejectedResult).reason
        assertInitFailure(err, 'EROFS')
        assert.match(String((err as Error).message), /read-only file system/i)
        assert.is(((acq as PromiseRejectedResult).reason as { code?: string }).code, 'ERR_SHARD_ERRORED')
        assert.is(store.getShardInfo('remote').state, 'errored')
        await assertCleanTransients(tmpfs.dir)

        await tmpfs.remountReadWrite()
        await store.recover('remote')
        assert.is(store.getShardInfo('remote').state, 'available')
        await assertRecoveredOnTmpfs(store, tmpfs.dir, local, reported)
      } finally {
        await store.close()
        await srv.close()
      }
    })
  })
})

tmpfsTest('an endless body with no declared size fills transientsDir → ENOSPC, no .partial, other shard serves; recover once the server is honest and space is back', async (ctx) => {
  await withTmpfs(async (tmpfs) => {
    await guarded(async () => {
      let honest = false
      const good = standard(sample)
      const srv = await serve((req, res, n) => {
        if (honest) { good(req, res, n); return }
        if (req.method === 'HEAD') { head(res, {}); return } // no size, no ranges
        // A valid CAR first (whatever reads the bytes as they arrive finds nothing wrong), then more forever.
        res.writeHead(200, { 'transfer-encoding': 'chunked' })
        res.write(sample)
        endless(req, () => { res.write(garbage) })
      })
      const { store, reported } = await openStore(ctx.dir, { transientsDir: tmpfs.dir })
      try {
        const local = await localShard(store)
        const err = await store.register('remote', new HttpMount(srv.url, fast)).then(() => undefined, (e: unknown) => e)
        assertInitFailure(err, 'ENOSPC')
        assert.is(store.getShardInfo('remote').state, 'errored')
        await assertCleanTransients(tmpfs.dir)
        await local.check()

        honest = true
        await tmpfs.resize(4 * SIZE)
        await store.recover('remote')
        await assertRecoveredOnTmpfs(store, tmpfs.dir, local, reported)
      } finally {
        await store.close()
        await srv.close()
      }
    })
  })
})

tmpfsTest('disk full while a reclaimed transient is fetched again for an acquire: the acquire (or its reads) fail with ENOSPC, the shard errors, no .partial; recover once space is back', async (ctx) => {
  await withTmpfs(async (tmpfs) => {
    await tmpfs.resize(4 * SIZE)
    await guarded(async () => {
      const srv = await serve(standard(sample))
      const { store, reported } = await openStore(ctx.dir, { transientsDir: tmpfs.dir })
      try {
        const local = await localShard(store)
        await store.register('remote', new HttpMount(srv.url, fast))
        assert.is((await store.gc()).shards.get('remote'), null)
        await assertCleanTransients(tmpfs.dir)
        await tmpfs.resize(TMPFS_SIZE) // the disk is (nearly) full now
        const seen = await acquireDuringFault(store, 'remote')
        await local.check()
        assert.is(seen.length, 1, 'the fault surfaced')
        assert.ok(at(seen, 0).some((l) => l.code === 'ENOSPC'), describe(at(seen, 0)))
        await until(() => store.getShardInfo('remote').state === 'errored', 'remote errored', 5000)
        assert.ok(chainOf(store.getShardInfo('remote').error).some((l) => l.code === 'ENOSPC'))
        await assertCleanTransients(tmpfs.dir)

        await tmpfs.resize(4 * SIZE)
        await store.recover('remote')
        await assertRecoveredOnTmpfs(store, tmpfs.dir, local, reported)
      } finally {
        await store.close()
        await srv.close()
      }
    })
  })
})

test.run()
