/**
 * The HTTP server's block route (issue 5): "block requests per second and p50/p99 latency over
 * loopback, next to a static file server serving the same blocks as files in the same run".
 * No bar: figures are printed without a target.
 *
 * Data: a generated CARv1 of SERVE_BLOCKS raw blocks of SERVE_BLOCK_SIZE random bytes (sha2-256)
 * plus the 1,043 non-identity blocks of tests/fixtures/sample-v1.car.
 *
 * Ours: a DAGStore in a temp dir with both CARs registered (FileMount), and the trustless
 * gateway (src/app/server/gateway.ts, all-shards blockstore with its accessor cache) behind a plain
 * node:http server. Requests: GET /ipfs/{cid}?format=raw (Accept: application/vnd.ipld.raw), and
 * GET /ipfs/{cid}?format=car&dag-scope=block (Accept: application/vnd.ipld.car).
 *
 * Peer: a plain node:http file server (fs.readFile per request, no cache of its own: the honest
 * floor of "serve small files") over a folder holding, for every block, `{cid}.raw` (the block)
 * and `{cid}.car` (byte-identical to our CAR response). Same URLs; it answers the same bytes
 * with Content-Type and Content-Length. Every response of both servers is checked byte-equal on
 * a sample before timing.
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
 * SERVE_BLOCK_SIZE (1024), SERVE_SEED (1).
 * Run: `npm run build && node dist/bench/serve.js`
 */
import { fork } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CarReader } from '@ipld/car/reader'
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

async function staticChild (dir: string): Promise<void> {
  const server = createServer((req, res) => {
    const m = /^\/ipfs\/([A-Za-z0-9]+)(?:\?(.*))?$/.exec(req.url ?? '')
    if (m === null || req.method !== 'GET') {
      res.writeHead(400).end()
      return
    }
    const car = m[2]?.includes('format=car') === true
    readFile(join(dir, `${m[1]}.${car ? 'car' : 'raw'}`)).then((bytes) => {
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

/** Ours and the peer alternately, twice each, after a warm-up of each; the better run (by rps) of each side. */
async function duel (ours: Target, peer: Target, cids: string[], kind: Kind): Promise<{ ours: Run, peer: Run }> {
  await load(ours, cids, kind, WARMUP_MS, SEED + 100)
  await load(peer, cids, kind, WARMUP_MS, SEED + 100)
  const best: { ours?: Run, peer?: Run } = {}
  for (let round = 0; round < 2; round++) {
    const o = await load(ours, cids, kind, RUN_MS, SEED + round)
    const p = await load(peer, cids, kind, RUN_MS, SEED + round)
    if (best.ours === undefined || o.rps > best.ours.rps) best.ours = o
    if (best.peer === undefined || p.rps > best.peer.rps) best.peer = p
  }
  return best as { ours: Run, peer: Run }
}

async function fetchBytes (pool: Pool, path: string, accept: string): Promise<{ status: number, bytes: Buffer, type: string }> {
  const { statusCode, headers, body } = await pool.request({ path, method: 'GET', headers: { accept } })
  return { status: statusCode, bytes: Buffer.from(await body.arrayBuffer()), type: String(headers['content-type']) }
}

// ---------------------------------------------------------------- main

interface Block { cid: string, bytes: Uint8Array, car: Uint8Array }

function loadNote (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

function lines (kind: Kind, r: { ours: Run, peer: Run }): void {
  const what = kind === 'raw' ? 'raw block' : 'CAR (dag-scope=block)'
  report(`serve ${what}: requests/s`, r.ours.rps, 'req/s', 'static files', r.peer.rps)
  report(`serve ${what}: p50 latency`, r.ours.p50, 'ms', 'static files', r.peer.p50)
  report(`serve ${what}: p99 latency`, r.ours.p99, 'ms', 'static files', r.peer.p99)
  note('', `ours ${fmt(r.ours.requests)} requests (${r.ours.failures} not 200); static ${fmt(r.peer.requests)} (${r.peer.failures} not 200)`)
  if (r.ours.failures > 0 || r.peer.failures > 0) process.exitCode = 1
}

async function main (): Promise<void> {
  header('bench/serve: trustless-gateway block requests vs a static file server')
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
    note('servers', `gateway ${gw.base} (store + 2 shards registered), static ${st.base}; both up in ${fmt(now() - t0)} ms`)
    const ours: Target = { name: 'gateway', pool: new Pool(gw.base, { connections: CONNECTIONS, pipelining: 1 }) }
    const peer: Target = { name: 'static', pool: new Pool(st.base, { connections: CONNECTIONS, pipelining: 1 }) }
    stops.unshift(async () => { await ours.pool.close(); await peer.pool.close() })

    // Same bytes from both, for both formats, on a sample spread over the whole set.
    const step = Math.max(1, Math.floor(blocks.length / VERIFY_SAMPLE))
    for (let i = 0; i < blocks.length; i += step) {
      const b = blocks[i]! // i < blocks.length
      for (const kind of ['raw', 'car'] as const) {
        const expected = kind === 'raw' ? b.bytes : b.car
        for (const t of [ours, peer]) {
          const r = await fetchBytes(t.pool, pathOf(b.cid, kind), ACCEPT[kind])
          if (r.status !== 200 || !r.bytes.equals(expected)) throw new Error(`${t.name} ${kind} ${b.cid}: status ${r.status}, ${r.bytes.length} B, differs from the block`)
        }
      }
    }
    note('verified', `${fmt(Math.ceil(blocks.length / step))} CIDs × raw and CAR byte-equal from both servers`)

    const cids = blocks.map((b) => b.cid)
    lines('raw', await duel(ours, peer, cids, 'raw'))
    lines('car', await duel(ours, peer, cids, 'car'))
    note('', `(latency ratios: lower is better; latency = request start → last body byte, ${CONNECTIONS} in flight)`)
  } finally {
    for (const stop of stops) await stop().catch(() => {})
    await cleanup()
  }
  note('load average at end', loadNote())
}

if (process.argv[2] === CHILD_FLAG) {
  const [mode, ...args] = process.argv.slice(3)
  const [dir = ''] = args
  const run = mode === 'gateway' ? gatewayChild(dir, args.slice(1)) : staticChild(dir)
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
