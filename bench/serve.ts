/**
 * The HTTP server's gateway over loopback: block requests per second and p50/p99 latency next
 * to peers serving the same blocks in the same run, and a whole DAG as one CAR next to a
 * client walking it one block request at a time.
 *
 * Bar (docs/PERFORMANCE.md): raw-block requests/s ≥ 0.5× a bare node:http server that answers
 * the same bytes from memory, on the same keep-alive connections, in the same run (the Node
 * ceiling). The other figures have no bar.
 *
 * Data: a generated CARv1 of SERVE_BLOCKS raw blocks of SERVE_BLOCK_SIZE random bytes (sha2-256)
 * plus the 1,043 non-identity blocks of tests/fixtures/sample-v1.car.
 *
 * Ours: a DAGStore in a temp dir with both CARs registered (FileMount), and the trustless
 * gateway (src/app/server/gateway.ts, all-shards blockstore with its accessor cache) behind a plain
 * node:http server. Requests: GET /ipfs/{cid}?format=raw (Accept: application/vnd.ipld.raw), and
 * GET /ipfs/{cid}?format=car&dag-scope=block (Accept: application/vnd.ipld.car).
 *
 * Peers: a plain node:http file server (fs.readFile per request, no cache of its own: the honest
 * floor of "serve small files") over a folder holding, for every block, `{cid}.raw` (the block)
 * and `{cid}.car` (byte-identical to our CAR response); and the bare node:http server, the same
 * files read into a Map once at start and answered from it. Same URLs; they answer the same
 * bytes with Content-Type and Content-Length. Every response of every server is checked
 * byte-equal on a sample before timing.
 *
 * Whole DAG: sample-v1.car's root (dag-cbor, blake2b-256, subtrees shared many times over) as
 * one `GET /ipfs/{root}?format=car&dag-scope=all` (request → last byte), against a client that
 * walks the DAG itself: raw block requests, DAG_IN_FLIGHT at a time, each block decoded for its
 * links (@ipld/dag-cbor, @ipld/dag-pb), a visited set so shared subtrees are fetched once. Both
 * must end with the same set of blocks. Time and body bytes of each, best of DAG_ROUNDS
 * alternating rounds.
 *
 * Both servers run in child processes (this file, forked): a worker thread would share the
 * load generator's libuv threadpool. The load generator is this process: an undici Pool of
 * SERVE_CONNECTIONS keep-alive connections, one request in flight per connection, each loop
 * picking CIDs uniformly at random from its own seeded xorshift stream (SERVE_SEED), for
 * SERVE_MS per run after a SERVE_WARMUP_MS warm-up. Latency is request start → last body byte,
 * measured in this process. Each pairing runs twice, alternating (ours, peer, ours, peer); each
 * side reports its better run (by requests/s) with that run's percentiles. On this 2-core
 * machine kind the load generator shares the CPUs with the server: both sides pay it alike.
 *
 * Env: SERVE_MS (4000), SERVE_WARMUP_MS (800), SERVE_CONNECTIONS (32), SERVE_BLOCKS (10000),
 * SERVE_BLOCK_SIZE (1024), SERVE_SEED (1), DAG_IN_FLIGHT (16), DAG_ROUNDS (5).
 * Run: `npm run build && node dist/bench/serve.js`
 */
import { fork } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CarReader } from '@ipld/car/reader'
import { CarBlockIterator } from '@ipld/car/iterator'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { Pool } from 'undici'
import { DAGStore, FileMount } from '../src/index.js'
import { createGateway } from '../src/app/server/gateway.js'
import { encodeBlockCar } from '../src/app/server/car-block.js'
import { writeCarV1 } from './car-file.js'
import { envInt, fixture, fmt, header, note, now, report, tempDir } from './util.js'

const RUN_MS = envInt('SERVE_MS', 4000)
const WARMUP_MS = envInt('SERVE_WARMUP_MS', 800)
const CONNECTIONS = envInt('SERVE_CONNECTIONS', 32)
const GEN_BLOCKS = envInt('SERVE_BLOCKS', 10_000)
const GEN_BLOCK_SIZE = envInt('SERVE_BLOCK_SIZE', 1024)
const SEED = envInt('SERVE_SEED', 1)
const VERIFY_SAMPLE = 300
const DAG_IN_FLIGHT = envInt('DAG_IN_FLIGHT', 16)
const DAG_ROUNDS = envInt('DAG_ROUNDS', 5)
/** The bar: raw-block requests/s at least this share of the bare node:http server's. */
const RAW_VS_BARE = 0.5

/** argv[2] of a server process: this same file, forked. */
const CHILD_FLAG = '--serve-child'

// ---------------------------------------------------------------- servers (child processes)

async function listenAndReport (server: Server, onExit: () => Promise<void>): Promise<void> {
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  process.send?.({ port: (server.address() as AddressInfo).port })
  // Ends with the bench (disconnect) or when killed.
  process.once('disconnect', () => {
    server.close()
    onExit().finally(() => process.exit(0))
  })
}

async function gatewayChild (storeDir: string, cars: string[]): Promise<void> {
  const store = new DAGStore({ dir: storeDir })
  await store.start()
  for (const [i, car] of cars.entries()) await store.register(`car-${i}`, new FileMount(car))
  const gateway = createGateway(store)
  const server = createServer((req, res) => {
    gateway.handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end()
    }, (err: unknown) => { res.destroy(err as Error) })
  })
  await listenAndReport(server, async () => {
    await gateway.close()
    await store.close()
  })
}

/** The peers: every file of `dir` read per request (static), or once into memory at start (bare). */
async function peerChild (dir: string, fromMemory: boolean): Promise<void> {
  const memory = new Map<string, Buffer>()
  if (fromMemory) for (const name of await readdir(dir)) memory.set(name, await readFile(join(dir, name)))
  const read = fromMemory
    ? async (name: string): Promise<Buffer> => {
      const bytes = memory.get(name)
      if (bytes === undefined) throw new Error(`no ${name}`)
      return bytes
    }
    : async (name: string): Promise<Buffer> => await readFile(join(dir, name))
  const server = createServer((req, res) => {
    const m = /^\/ipfs\/([A-Za-z0-9]+)(?:\?(.*))?$/.exec(req.url ?? '')
    if (m === null || req.method !== 'GET') {
      res.writeHead(400).end()
      return
    }
    const car = m[2]?.includes('format=car') === true
    read(`${m[1]}.${car ? 'car' : 'raw'}`).then((bytes) => {
      res.writeHead(200, {
        'content-type': car ? 'application/vnd.ipld.car; version=1; order=dfs; dups=n' : 'application/vnd.ipld.raw',
        'content-length': String(bytes.byteLength)
      })
      res.end(bytes)
    }, () => { res.writeHead(404).end() })
  })
  await listenAndReport(server, async () => {})
}

async function startChild (args: string[]): Promise<{ base: string, stop: () => Promise<void> }> {
  const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => { resolve(m.port) })
    child.once('error', reject)
    child.once('exit', (code) => { reject(new Error(`server process exited with code ${String(code)}`)) })
  })
  return {
    base: `http://127.0.0.1:${port}`,
    stop: async () => {
      const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
      child.disconnect()
      await exited
    }
  }
}

// ---------------------------------------------------------------- load generator

interface Run { rps: number, p50: number, p99: number, requests: number, failures: number }

interface Target { name: string, pool: Pool }

type Kind = 'raw' | 'car'

function pathOf (cid: string, kind: Kind): string {
  return kind === 'raw' ? `/ipfs/${cid}?format=raw` : `/ipfs/${cid}?format=car&dag-scope=block`
}

const ACCEPT: Record<Kind, string> = { raw: 'application/vnd.ipld.raw', car: 'application/vnd.ipld.car' }

function percentile (sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))] ?? NaN
}

/** CONNECTIONS loops, one request each in flight, for `ms`; latencies in ms. */
async function load (target: Target, cids: string[], kind: Kind, ms: number, seed: number): Promise<Run> {
  const paths = cids.map((c) => pathOf(c, kind))
  let latencies = new Float64Array(1 << 16)
  let n = 0
  let failures = 0
  const started = now()
  const deadline = started + ms
  const loop = async (worker: number): Promise<void> => {
    // xorshift32, one stream per loop: the same seed asks for the same CIDs on both servers.
    let x = ((seed * 0x9e3779b1) ^ (worker + 1) * 0x85ebca6b) >>> 0 || 1
    while (now() < deadline) {
      x = (x ^ (x << 13)) >>> 0
      x = (x ^ (x >>> 17)) >>> 0
      x = (x ^ (x << 5)) >>> 0
      const t0 = now()
      const path = paths[x % paths.length]! // an index below paths.length
      const { statusCode, body } = await target.pool.request({ path, method: 'GET', headers: { accept: ACCEPT[kind] } })
      await body.arrayBuffer()
      const t = now() - t0
      if (statusCode !== 200) failures++
      if (n === latencies.length) {
        const grown = new Float64Array(latencies.length * 2)
        grown.set(latencies)
        latencies = grown
      }
      latencies[n++] = t
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, async (_, i) => { await loop(i) }))
  const elapsed = now() - started
  const sorted = latencies.subarray(0, n).sort()
  return { rps: n / (elapsed / 1000), p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), requests: n, failures }
}

/** Every target in turn, twice each, after a warm-up of each; the better run (by rps) of each, in order. */
async function contest (targets: Target[], cids: string[], kind: Kind): Promise<Run[]> {
  for (const t of targets) await load(t, cids, kind, WARMUP_MS, SEED + 100)
  const best: Array<Run | undefined> = targets.map(() => undefined)
  for (let round = 0; round < 2; round++) {
    for (const [i, t] of targets.entries()) {
      const r = await load(t, cids, kind, RUN_MS, SEED + round)
      if (best[i] === undefined || r.rps > (best[i]?.rps ?? 0)) best[i] = r
    }
  }
  return best as Run[]
}

async function fetchBytes (pool: Pool, path: string, accept: string): Promise<{ status: number, bytes: Buffer, type: string }> {
  const { statusCode, headers, body } = await pool.request({ path, method: 'GET', headers: { accept } })
  return { status: statusCode, bytes: Buffer.from(await body.arrayBuffer()), type: String(headers['content-type']) }
}

// ---------------------------------------------------------------- whole DAG

/** CIDs anywhere in a decoded dag-cbor value. */
function collectLinks (value: unknown, out: CID[]): void {
  const cid = CID.asCID(value)
  if (cid !== null) {
    out.push(cid)
    return
  }
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return
  for (const v of Array.isArray(value) ? value : Object.values(value)) collectLinks(v, out)
}

/** The links of a block, as a client walking the DAG finds them. */
function linksOf (cid: CID, bytes: Uint8Array): CID[] {
  if (cid.code === dagPb.code) return dagPb.decode(bytes).Links.map((l) => l.Hash)
  if (cid.code !== dagCbor.code) return []
  const out: CID[] = []
  collectLinks(dagCbor.decode(bytes), out)
  return out
}

interface Fetched { ms: number, bytes: number, requests: number, blocks: Set<string> }

/** The DAG under `root` as one CAR: request → last body byte; its blocks read back after. */
async function wholeCar (pool: Pool, root: CID): Promise<Fetched> {
  const t0 = now()
  const { statusCode, body } = await pool.request({
    path: `/ipfs/${root.toString()}?format=car&dag-scope=all`, method: 'GET', headers: { accept: ACCEPT.car }
  })
  const bytes = new Uint8Array(await body.arrayBuffer())
  const ms = now() - t0
  if (statusCode !== 200) throw new Error(`dag-scope=all CAR: status ${statusCode}`)
  const blocks = new Set<string>()
  for await (const b of await CarBlockIterator.fromBytes(bytes)) blocks.add(b.cid.toString())
  return { ms, bytes: bytes.byteLength, requests: 1, blocks }
}

/** The DAG under `root` walked by the client: one raw request per block, `inFlight` at a time. */
async function walkBlocks (pool: Pool, root: CID, inFlight: number): Promise<Fetched> {
  const blocks = new Set<string>()
  const seen = new Set<string>()
  const queue: CID[] = []
  const waiting: Array<() => void> = []
  let active = 0
  let failed = false
  let bytes = 0
  let requests = 0
  const enqueue = (cid: CID): void => {
    const s = cid.toString()
    if (seen.has(s)) return
    seen.add(s)
    // Identity blocks carry their bytes in the CID: nothing to ask for.
    if (cid.multihash.code === 0) for (const l of linksOf(cid, cid.multihash.digest)) enqueue(l)
    else queue.push(cid)
  }
  const wakeAll = (): void => { for (const wake of waiting.splice(0)) wake() }
  const fetchOne = async (cid: CID): Promise<void> => {
    const { statusCode, body } = await pool.request({ path: `/ipfs/${cid.toString()}?format=raw`, method: 'GET', headers: { accept: ACCEPT.raw } })
    const data = new Uint8Array(await body.arrayBuffer())
    if (statusCode !== 200) throw new Error(`raw ${cid.toString()}: status ${statusCode}`)
    requests++
    bytes += data.byteLength
    blocks.add(cid.toString())
    for (const l of linksOf(cid, data)) enqueue(l)
  }
  const worker = async (): Promise<void> => {
    while (!failed) {
      const cid = queue.shift()
      if (cid === undefined) {
        if (active === 0) return
        // Others are fetching: wait for the links they find.
        await new Promise<void>((resolve) => { waiting.push(resolve) })
        continue
      }
      active++
      try {
        await fetchOne(cid)
      } catch (err) {
        failed = true
        throw err
      } finally {
        active--
        wakeAll()
      }
    }
  }
  const t0 = now()
  enqueue(root)
  await Promise.all(Array.from({ length: inFlight }, worker))
  return { ms: now() - t0, bytes, requests, blocks }
}

function sameSet (a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false
  for (const x of a) if (!b.has(x)) return false
  return true
}

/** A DAG from the gateway as one CAR and as a client walk, alternating after a warm-up of each; the best of each. */
async function wholeDag (base: string, root: CID): Promise<void> {
  const carPool = new Pool(base, { connections: 1 })
  const walkPool = new Pool(base, { connections: DAG_IN_FLIGHT, pipelining: 1 })
  try {
    let car: Fetched | undefined
    let walk: Fetched | undefined
    for (let round = 0; round <= DAG_ROUNDS; round++) {
      const c = await wholeCar(carPool, root)
      const w = await walkBlocks(walkPool, root, DAG_IN_FLIGHT)
      if (!sameSet(c.blocks, w.blocks)) throw new Error(`the CAR holds ${c.blocks.size} blocks, the walk found ${w.blocks.size}: not the same set`)
      if (round === 0) continue
      if (car === undefined || c.ms < car.ms) car = c
      if (walk === undefined || w.ms < walk.ms) walk = w
    }
    if (car === undefined || walk === undefined) throw new Error('DAG_ROUNDS must be at least 1')
    report('whole DAG (sample-v1.car root): time', car.ms, 'ms', `client walk, ${DAG_IN_FLIGHT} raw requests in flight`, walk.ms)
    report('whole DAG: body bytes', car.bytes, 'B', 'client walk, raw bodies summed', walk.bytes)
    note('', `${fmt(car.blocks.size)} blocks, the same set both ways: 1 CAR request vs ${fmt(walk.requests)} block requests; best of ${DAG_ROUNDS} alternating rounds after a warm-up`)
  } finally {
    await carPool.close()
    await walkPool.close()
  }
}

// ---------------------------------------------------------------- main

interface Block { cid: string, bytes: Uint8Array, car: Uint8Array }

function loadNote (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

/** Ours against each peer; `bare` (the from-memory server) carries the bar when given. */
function lines (kind: Kind, ours: Run, peers: Array<{ name: string, run: Run, bar?: number }>): void {
  const what = kind === 'raw' ? 'raw block' : 'CAR (dag-scope=block)'
  for (const p of peers) {
    report(`serve ${what}: requests/s`, ours.rps, 'req/s', p.name, p.run.rps, p.bar === undefined ? undefined : { atLeast: p.bar * p.run.rps })
    report(`serve ${what}: p50 latency`, ours.p50, 'ms', p.name, p.run.p50)
    report(`serve ${what}: p99 latency`, ours.p99, 'ms', p.name, p.run.p99)
  }
  note('', `ours ${fmt(ours.requests)} requests (${ours.failures} not 200); ${peers.map((p) => `${p.name} ${fmt(p.run.requests)} (${p.run.failures} not 200)`).join('; ')}`)
  if (ours.failures > 0 || peers.some((p) => p.run.failures > 0)) process.exitCode = 1
}

async function main (): Promise<void> {
  header('bench/serve: trustless-gateway block requests vs bare node:http and a static file server; a whole DAG as one CAR')
  note('parameters', `${fmt(RUN_MS)} ms per run (best of 2, alternating), ${fmt(WARMUP_MS)} ms warm-up, ${CONNECTIONS} keep-alive connections (undici Pool), seed ${SEED}`)
  note('load average (1/5/15 min)', loadNote())
  const { dir, cleanup } = await tempDir('dagstore-bench-serve-')
  const stops: Array<() => Promise<void>> = []
  try {
    let t0 = now()
    const genPath = join(dir, 'generated.car')
    const blocks: Block[] = []
    writeCarV1(genPath, GEN_BLOCKS, () => GEN_BLOCK_SIZE, (_i, cidBytes, data) => {
      const cid = CID.decode(cidBytes.slice())
      const bytes = Uint8Array.prototype.slice.call(data) // a copy: Buffer#slice is a view of a reused buffer
      blocks.push({ cid: cid.toString(), bytes, car: encodeBlockCar(cid, bytes) })
    })
    const reader = await CarReader.fromBytes(await readFile(fixture('sample-v1.car')))
    for await (const b of reader.blocks()) {
      // Identity CIDs are not reads on either side.
      if (b.cid.multihash.code !== 0) blocks.push({ cid: b.cid.toString(), bytes: b.bytes, car: encodeBlockCar(b.cid, b.bytes) })
    }
    const files = join(dir, 'files')
    await mkdir(files)
    // 64 writes in flight: one by one, 22,000 small files take several seconds of the minute.
    for (let i = 0; i < blocks.length; i += 32) {
      await Promise.all(blocks.slice(i, i + 32).flatMap((b) => [
        writeFile(join(files, `${b.cid}.raw`), b.bytes),
        writeFile(join(files, `${b.cid}.car`), b.car)
      ]))
    }
    const total = blocks.reduce((n, b) => n + b.bytes.length, 0)
    note('data', `${fmt(blocks.length)} blocks (${fmt(GEN_BLOCKS)} × ${fmt(GEN_BLOCK_SIZE)} B generated + sample-v1.car), avg ${fmt(total / blocks.length)} B; written as ${fmt(blocks.length * 2)} files in ${fmt(now() - t0)} ms`)

    t0 = now()
    const gw = await startChild(['gateway', join(dir, 'store'), genPath, fixture('sample-v1.car')])
    stops.push(gw.stop)
    const st = await startChild(['static', files])
    stops.push(st.stop)
    const mem = await startChild(['memory', files])
    stops.push(mem.stop)
    note('servers', `gateway ${gw.base} (store + 2 shards registered), static ${st.base}, bare (from memory) ${mem.base}; all up in ${fmt(now() - t0)} ms`)
    const pool = (base: string): Pool => new Pool(base, { connections: CONNECTIONS, pipelining: 1 })
    const ours: Target = { name: 'gateway', pool: pool(gw.base) }
    const peer: Target = { name: 'static files', pool: pool(st.base) }
    const bare: Target = { name: 'bare node:http from memory', pool: pool(mem.base) }
    stops.unshift(async () => { await ours.pool.close(); await peer.pool.close(); await bare.pool.close() })

    // Same bytes from both, for both formats, on a sample spread over the whole set.
    const step = Math.max(1, Math.floor(blocks.length / VERIFY_SAMPLE))
    for (let i = 0; i < blocks.length; i += step) {
      const b = blocks[i]! // i < blocks.length
      for (const kind of ['raw', 'car'] as const) {
        const expected = kind === 'raw' ? b.bytes : b.car
        for (const t of [ours, peer, bare]) {
          const r = await fetchBytes(t.pool, pathOf(b.cid, kind), ACCEPT[kind])
          if (r.status !== 200 || !r.bytes.equals(expected)) throw new Error(`${t.name} ${kind} ${b.cid}: status ${r.status}, ${r.bytes.length} B, differs from the block`)
        }
      }
    }
    note('verified', `${fmt(Math.ceil(blocks.length / step))} CIDs × raw and CAR byte-equal from all three servers`)

    const cids = blocks.map((b) => b.cid)
    const [rawOurs, rawBare, rawStatic] = await contest([ours, bare, peer], cids, 'raw')
    if (rawOurs === undefined || rawBare === undefined || rawStatic === undefined) throw new Error('a raw run is missing')
    lines('raw', rawOurs, [{ name: bare.name, run: rawBare, bar: RAW_VS_BARE }, { name: peer.name, run: rawStatic }])
    const [carOurs, carStatic] = await contest([ours, peer], cids, 'car')
    if (carOurs === undefined || carStatic === undefined) throw new Error('a CAR run is missing')
    lines('car', carOurs, [{ name: peer.name, run: carStatic }])
    note('', `(latency ratios: lower is better; latency = request start → last body byte, ${CONNECTIONS} in flight)`)

    const sampleRoot = (await reader.getRoots())[0]
    if (sampleRoot === undefined) throw new Error('sample-v1.car has no root')
    await wholeDag(gw.base, sampleRoot)
  } finally {
    for (const stop of stops) await stop().catch(() => {})
    await cleanup()
  }
  note('load average at end', loadNote())
}

if (process.argv[2] === CHILD_FLAG) {
  const [mode, ...args] = process.argv.slice(3)
  const [dir = ''] = args
  const run = mode === 'gateway' ? gatewayChild(dir, args.slice(1)) : peerChild(dir, mode === 'memory')
  run.catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
