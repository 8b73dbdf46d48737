/**
 * Remote shards read in place (DESIGN §11, issue 11): a CARv2 with an index served over HTTP,
 * read with ranged requests instead of being downloaded whole first. Each figure is printed next
 * to its same-run peer (bench/util.ts report()):
 *   (a) lazy register + acquire + first get, time and bytes, `copy: 'never'` (in place) against
 *       `copy: 'always'` (today's full download into a transient) — bars: ≥ 50× faster, ≤ 1% of
 *       the bytes (CARv2); the CARv1 (one streaming pass, no index to adopt) is printed too;
 *   (b) REMOTE_INPLACE_GETS (1,000) random gets, 16 in flight, from the in-place shard: gets/s
 *       against the same gets from a local copy (FileMount of the same file), and the bytes the
 *       server sent against the blocks' bytes — bar ≤ 2 × blocks' bytes + 16 KiB per get;
 *   (c) `accessor.reader()` of the whole in-place shard against one plain GET of the URL — bar
 *       ≥ 0.8× the plain GET's throughput.
 *
 * The files: in a temp dir (deleted at the end, and on SIGINT/SIGTERM), a CARv1 of 256 KiB
 * random raw blocks (sha2-256) and the same payload wrapped in a CARv2 whose index is the
 * project's own MultihashIndexSorted encoding. REMOTE_INPLACE_MB (default 1024) MiB each,
 * shrunk to fit when `statfs` says the disk has less than six times that free (two files, a
 * full-download transient per peer run, slack).
 *
 * The server: node:http in a child process (this file, forked), so it shares neither the event
 * loop nor the threadpool with the store. Every request waits REMOTE_INPLACE_LATENCY_MS
 * (default 10) before it is answered — a network round trip the loopback does not have. It
 * answers HEAD and GET with ETag, Last-Modified, Accept-Ranges and ranged 206s, and counts
 * requests and body bytes sent; `GET /_stats` reports them (and is neither delayed nor counted).
 *
 * The store is driven through the public API only. `RegisterOpts.copy` is the policy the
 * in-place work adds: on a build without it the store downloads the shard whatever `copy` says,
 * and the bench says so (the in-place figures then equal their peers).
 *
 * Run: npm run build && node dist/bench/remote-inplace.js
 * Env: REMOTE_INPLACE_MB (1024), REMOTE_INPLACE_LATENCY_MS (10), REMOTE_INPLACE_GETS (1000),
 *      REMOTE_INPLACE_IN_FLIGHT (16), REMOTE_INPLACE_ROUNDS (5: rounds of the first get and of
 *      reader() against the plain GET, medians).
 */
import { createReadStream, createWriteStream, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs'
import { createServer, get as httpGet, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import { DAGStore, FileMount, HttpMount, type RegisterOpts, type ShardAccessor } from '../src/index.js'
import { indexCar, encodeMultihashIndexSorted } from '../src/format/api.js'
import { writeCarV1 } from './car-file.js'
import { load } from './peers.js'
import { envInt, fmt, fmtAuto, fmtBytes, header, median, note, now, report, tempDir } from './util.js'

const BLOCK = 256 * 1024
const MIB = 1024 * 1024
/** The bars (DESIGN §11). */
const FIRST_GET_SPEEDUP = 50
const FIRST_GET_BYTES = 0.01
const GET_BYTES_FACTOR = 2
const GET_BYTES_SLACK = 16 * 1024
const READER_RATIO = 0.8

/**
 * The register policy the in-place work adds (DESIGN §11: `'auto' | 'always' | 'never'`). Declared
 * here until RegisterOpts has it; an options object that is not a fresh literal passes the
 * extra field through to the store either way.
 */
type RegisterWithCopy = RegisterOpts & { copy?: 'auto' | 'always' | 'never' }

// ---------------------------------------------------------------- server (child process)

const SERVE_FLAG = '--serve'

interface Stats { requests: number, bytes: number }

async function serveInChild (dir: string, latencyMs: number): Promise<void> {
  const files = new Map<string, { path: string, size: number, etag: string, modified: string }>()
  for (const name of ['v1.car', 'v2.car']) {
    const path = join(dir, name)
    const st = statSync(path)
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`
    files.set(`/${name}`, { path, size: st.size, etag, modified: st.mtime.toUTCString() })
  }
  const stats: Stats = { requests: 0, bytes: 0 }
  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const file = files.get(req.url ?? '')
    if (file === undefined) { res.writeHead(404).end(); return }
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { allow: 'GET, HEAD' }).end(); return }
    const { size } = file
    const headers = { 'content-type': 'application/vnd.ipld.car', 'accept-ranges': 'bytes', etag: file.etag, 'last-modified': file.modified }
    let start = 0
    let end = size - 1
    let status = 200
    const range = req.headers.range
    if (range !== undefined) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range.trim())
      const first = m === null ? NaN : Number(m[1])
      const last = m === null || m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
      if (!(first <= last)) { res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end(); return }
      start = first
      end = last
      status = 206
    }
    const ranged = status === 206 ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}
    res.writeHead(status, { ...headers, 'content-length': end - start + 1, ...ranged })
    if (req.method === 'HEAD') { res.end(); return }
    const body = createReadStream(file.path, { start, end, highWaterMark: 256 * 1024 })
    // Counted as handed to the socket: a request the client abandons counts what was sent.
    body.on('data', (chunk) => { stats.bytes += chunk.length })
    pipeline(body, res).catch(() => {})
  }
  const server: Server = createServer((req, res) => {
    if (req.url === '/_stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats))
      return
    }
    stats.requests++
    setTimeout(() => { answer(req, res) }, latencyMs)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  process.send?.({ port: (server.address() as AddressInfo).port })
  process.once('disconnect', () => { server.close(); process.exit(0) })
}

interface Origin { base: string, stats: () => Promise<Stats>, stop: () => Promise<void> }

async function getJson<T> (url: string): Promise<T> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => { httpGet(url, resolve).on('error', reject) })
  let text = ''
  for await (const chunk of res) text += String(chunk)
  return JSON.parse(text) as T
}

async function startOrigin (dir: string, latencyMs: number): Promise<Origin> {
  const child = fork(fileURLToPath(import.meta.url), [SERVE_FLAG, dir, String(latencyMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => { resolve(m.port) })
    child.once('error', reject)
    child.once('exit', (code) => { reject(new Error(`server process exited with code ${String(code)}`)) })
  })
  const base = `http://127.0.0.1:${port}`
  return {
    base,
    stats: async () => await getJson<Stats>(`${base}/_stats`),
    stop: async () => {
      const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
      child.kill()
      await exited
    }
  }
}

/** Requests and bytes the origin served while `fn` ran. */
async function measured<T> (origin: Origin, fn: () => Promise<T>): Promise<{ value: T, ms: number, requests: number, bytes: number }> {
  const before = await origin.stats()
  const t0 = now()
  const value = await fn()
  const ms = now() - t0
  const after = await origin.stats()
  return { value, ms, requests: after.requests - before.requests, bytes: after.bytes - before.bytes }
}

// ---------------------------------------------------------------- the CARs

interface Cars { v1: string, v2: string, v1Size: number, v2Size: number, cids: CID[], sizes: number[] }

async function generate (dir: string, blocks: number): Promise<Cars> {
  const v1 = join(dir, 'v1.car')
  const cids: CID[] = []
  const sizes: number[] = []
  const v1Size = writeCarV1(v1, blocks, () => BLOCK, (_i, cid, data) => {
    cids.push(CID.decode(cid.slice()))
    sizes.push(data.length)
  })
  // The project's own indexer and encoder: the same bytes go-car would embed.
  const { index } = await indexCar(createReadStream(v1, { highWaterMark: MIB }))
  const indexBytes = encodeMultihashIndexSorted(index)
  const head = new Uint8Array(51)
  head.set([0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02], 0)
  const view = new DataView(head.buffer)
  view.setBigUint64(27, 51n, true)
  view.setBigUint64(35, BigInt(v1Size), true)
  view.setBigUint64(43, BigInt(51 + v1Size), true)
  const v2 = join(dir, 'v2.car')
  writeFileSync(v2, head)
  await pipeline(createReadStream(v1, { highWaterMark: MIB }), createWriteStream(v2, { flags: 'a' }))
  writeFileSync(v2, indexBytes, { flag: 'a' })
  return { v1, v2, v1Size, v2Size: statSync(v2).size, cids, sizes }
}

// ---------------------------------------------------------------- contenders

class SanityError extends Error {}

function checkBlock (cid: CID, bytes: Uint8Array): void {
  const digest = createHash('sha256').update(bytes).digest()
  if (!digest.equals(cid.multihash.digest)) throw new SanityError(`block ${cid.toString()} read back does not hash to its CID`)
}

async function withStore<T> (dir: string, fn: (store: DAGStore) => Promise<T>): Promise<T> {
  const store = new DAGStore({ dir })
  await store.start()
  try {
    return await fn(store)
  } finally {
    await store.close()
  }
}

/** Lazy register, acquire, one get: the first block a retrieval waits for. */
interface Served { ms: number, requests: number, bytes: number }

async function firstGet (origin: Origin, dir: string, url: string, cid: CID, copy: 'never' | 'always'): Promise<Served> {
  return await withStore(dir, async (store) => {
    const opts: RegisterWithCopy = { lazy: true, copy }
    const r = await measured(origin, async () => {
      await store.register('shard', new HttpMount(url), opts)
      const accessor = await store.acquire('shard')
      try {
        return await accessor.blockstore().get(cid)
      } finally {
        await accessor.close()
      }
    })
    checkBlock(cid, r.value)
    return r
  })
}

/** The round with the median time. */
function medianRound (all: Served[]): Served {
  const sorted = all.slice().sort((a, b) => a.ms - b.ms)
  return sorted[(sorted.length - 1) >> 1] as Served
}

/** A deterministic pick of `n` block numbers below `count` (xorshift). */
function picks (n: number, count: number): number[] {
  let x = 0x9e3779b9
  return Array.from({ length: n }, () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x % count
  })
}

/** `order` gets through `accessor`, `inFlight` at a time; returns gets/s. */
async function randomGets (accessor: ShardAccessor, cids: CID[], order: number[], inFlight: number): Promise<number> {
  const bs = accessor.blockstore()
  let next = 0
  const t0 = now()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < order.length) {
      const cid = cids[order[next++] ?? 0]
      if (cid === undefined) throw new SanityError('no such block')
      await bs.get(cid)
    }
  }))
  return order.length / ((now() - t0) / 1000)
}

/** One plain GET of the URL, body discarded: bytes/s. */
async function plainGet (url: string, expect: number): Promise<number> {
  const t0 = now()
  const res = await new Promise<IncomingMessage>((resolve, reject) => { httpGet(url, { agent: false }, resolve).on('error', reject) })
  if (res.statusCode !== 200) { res.resume(); throw new Error(`plain GET: HTTP ${res.statusCode ?? '?'}`) }
  let n = 0
  for await (const chunk of res) n += (chunk as Buffer).length
  if (n !== expect) throw new SanityError(`plain GET read ${n} bytes, the file has ${expect}`)
  return n / ((now() - t0) / 1000)
}

async function readAll (accessor: ShardAccessor, expect: number): Promise<number> {
  const t0 = now()
  let n = 0
  for await (const chunk of accessor.reader()) n += chunk.length
  if (n !== expect) throw new SanityError(`reader() read ${n} bytes, the file has ${expect}`)
  return n / ((now() - t0) / 1000)
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const wantMib = envInt('REMOTE_INPLACE_MB', 1024)
  const latencyMs = envInt('REMOTE_INPLACE_LATENCY_MS', 10)
  const gets = envInt('REMOTE_INPLACE_GETS', 1000)
  const inFlight = envInt('REMOTE_INPLACE_IN_FLIGHT', 16)
  const rounds = Math.max(1, envInt('REMOTE_INPLACE_ROUNDS', 5))
  header('bench/remote-inplace: remote shards read in place over HTTP Range')
  note('load average (1/5/15 min) at start', load())
  const free = (() => { const s = statfsSync(tmpdir()); return s.bavail * s.bsize })()
  const mib = Math.max(16, Math.min(wantMib, Math.floor(free / 6 / MIB)))
  note('disk free in the temp dir', `${fmtBytes(free)}: CARs of ${fmt(mib)} MiB${mib < wantMib ? ` (shrunk from ${fmt(wantMib)} MiB to fit)` : ''}`)
  const { dir, cleanup } = await tempDir('dagstore-bench-inplace-')
  const onSignal = (signal: NodeJS.Signals): void => {
    rmSync(dir, { recursive: true, force: true })
    process.kill(process.pid, signal)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let origin: Origin | undefined
  try {
    const t = now()
    const cars = await generate(dir, Math.max(1, Math.floor(mib * MIB / (BLOCK + 40))))
    const count = cars.cids.length
    note('generated', `CARv1 ${fmtBytes(cars.v1Size)} and CARv2 ${fmtBytes(cars.v2Size)} (index ${fmtBytes(cars.v2Size - 51 - cars.v1Size)}), ` +
      `${fmt(count)} raw blocks of 256 KiB, sha2-256; ${fmtAuto(now() - t)} ms` +
      (cars.v2Size < 1024 * MIB ? ' (below the 1 GiB the issue asks for)' : ''))
    origin = await startOrigin(dir, latencyMs)
    const o = origin
    note('origin', `${o.base} (node:http in a child process, ${latencyMs} ms per request, Range, ETag)`)
    const v1Url = `${o.base}/v1.car`
    const v2Url = `${o.base}/v2.car`
    const target = cars.cids[Math.floor(count / 2)]
    if (target === undefined) throw new SanityError('no blocks')

    // (a) first get
    console.log()
    const stores = async <T>(name: string, fn: (storeDir: string) => Promise<T>): Promise<T> => {
      const storeDir = join(dir, name)
      try { return await fn(storeDir) } finally { rmSync(storeDir, { recursive: true, force: true }) }
    }
    // Rounds alternate the contenders; each reports its median round (the first round of each
    // also pays for compiling its code paths, which a running node has done long before). The
    // CARv2 in place never runs right after the full download: the download leaves up to 1 GiB
    // of dirty pages, whose writeback the in-place register's fsyncs would wait behind.
    const peers: Served[] = []
    const inPlaces: Served[] = []
    const v1InPlaces: Served[] = []
    for (let round = 0; round < rounds; round++) {
      peers.push(await stores('peer', async (d) => await firstGet(o, d, v2Url, target, 'always')))
      v1InPlaces.push(await stores('inplace-v1', async (d) => await firstGet(o, d, v1Url, target, 'never')))
      inPlaces.push(await stores('inplace', async (d) => await firstGet(o, d, v2Url, target, 'never')))
    }
    const peer = medianRound(peers)
    const inPlace = medianRound(inPlaces)
    const v1InPlace = medianRound(v1InPlaces)
    const rows = [['copy always (CARv2)', peers], ['copy never (CARv2)', inPlaces], ['copy never (CARv1, one streaming pass)', v1InPlaces]] as const
    for (const [name, all] of rows) {
      const m = medianRound(all)
      note(`first get, ${name}`, `median ${fmtAuto(m.ms)} ms, ${fmt(m.requests)} requests, ${fmtBytes(m.bytes)}; rounds: ${all.map((r) => `${fmtAuto(r.ms)} ms`).join(', ')}`)
    }
    if (inPlace.bytes >= cars.v2Size) {
      note('!! in place not active', 'the store downloaded the whole shard with copy: \'never\' (RegisterOpts.copy not implemented on this build)')
    }
    // The bar is on the speed-up, so it is given in ms: ≤ this run's full download / 50.
    report('first get in place: time', inPlace.ms, 'ms', 'full download', peer.ms, { atMost: peer.ms / FIRST_GET_SPEEDUP })
    report('first get in place: bytes', inPlace.bytes, 'B', 'full download', peer.bytes, { atMost: FIRST_GET_BYTES * peer.bytes })
    report('first get, CARv1 (stream pass): time', v1InPlace.ms, 'ms', 'full download', peer.ms)

    // (b) random gets, and (c) the whole shard through reader(), on one in-place shard
    const order = picks(gets, count)
    const blockBytes = order.reduce((sum, i) => sum + (cars.sizes[i] ?? 0), 0)
    await stores('gets', async (d) => {
      await withStore(d, async (store) => {
        const opts: RegisterWithCopy = { lazy: true, copy: 'never' }
        await store.register('remote', new HttpMount(v2Url), opts)
        await store.register('local', new FileMount(cars.v2))
        const remote = await store.acquire('remote')
        const local = await store.acquire('local')
        try {
          // Sanity first, untimed: a few blocks hash to their CIDs.
          for (const i of order.slice(0, 8)) {
            const cid = cars.cids[i]
            if (cid !== undefined) checkBlock(cid, await remote.blockstore().get(cid))
          }
          const localRate = await randomGets(local, cars.cids, order, inFlight)
          const r = await measured(o, async () => await randomGets(remote, cars.cids, order, inFlight))
          note(`${fmt(gets)} random gets, ${inFlight} in flight`, `${fmt(r.requests)} requests, ${fmtBytes(r.bytes)} for ${fmtBytes(blockBytes)} of blocks`)
          report('random gets in place', r.value, 'gets/s', 'local copy (FileMount)', localRate)
          const bar = GET_BYTES_FACTOR * blockBytes + GET_BYTES_SLACK * gets
          report('random gets in place: bytes', r.bytes, 'B', 'blocks\' bytes', blockBytes, { atMost: bar })

          // Rounds alternate the two, each reports its median (as for the first get: the first
          // round of the stream also compiles its code paths, and runs with the cache full of the
          // random gets' extents).
          const plains: number[] = []
          const wholes: number[] = []
          for (let round = 0; round < rounds; round++) {
            plains.push(await plainGet(v2Url, cars.v2Size))
            wholes.push(await readAll(remote, cars.v2Size))
          }
          note('reader() / plain GET per round', `${wholes.map((v) => fmt(v / 1e6)).join(', ')} / ${plains.map((v) => fmt(v / 1e6)).join(', ')} MB/s`)
          const plain = median(plains)
          const whole = median(wholes)
          report('reader() of the whole shard in place', whole / 1e6, 'MB/s', 'one plain GET', plain / 1e6, { atLeast: READER_RATIO * plain / 1e6 })
        } finally {
          await remote.close()
          await local.close()
        }
      })
    })
  } catch (err) {
    if (!(err instanceof SanityError)) throw err
    console.log(`\n!!!!!!!! ERROR: ${err.message} !!!!!!!!`)
    process.exitCode = 1
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await origin?.stop()
    await cleanup()
  }
  note('\nload average (1/5/15 min) at end', load())
}

if (process.argv[2] === SERVE_FLAG) await serveInChild(process.argv[3] ?? '', Number(process.argv[4] ?? 10))
else await main()
