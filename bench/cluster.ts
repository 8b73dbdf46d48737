/**
 * The cluster (DESIGN §12, issue 12): no bar, ratios next to same-run peers.
 *
 * 1. Gateway requests/s over loopback for a raw block (GET /ipfs/{cid}?format=raw), three ways,
 *    each next to the owner serving the same blocks: served by its owner (a local-file shard;
 *    peer: the same blocks from a store with the embedded LevelDB backend), by a non-owner in
 *    place (another node's http shard read by ranged requests through its section cache, the
 *    index from the database; peer: its owner serving it), and by proxy (a non-owner hopping to
 *    the owner of a local-file shard; peer: the owner itself). Two nodes (in-process stores,
 *    each behind its own node:http server), the origin and the load generator (an undici Pool
 *    of CLUSTER_CONNECTIONS connections) share this process and the machine's 2 cores: the
 *    figures are for comparing, not for capacity.
 * 2. Top-level inserts/s: PgTopLevelIndex.addMultihashesForShard of CLUSTER_TLI_ROWS
 *    multihashes of a new shard vs the fastest plain SQL of the same rows into a bare table of
 *    the same shape (one INSERT … SELECT FROM unnest of every row, no ON CONFLICT, no owner check).
 * 3. CLUSTER_SHARDS lazy registers through a store on the PostgreSQL backend, and its restart
 *    (close, start: every record loaded), vs a bare batched INSERT (5,000 rows per statement) and
 *    a bare SELECT of the same rows (key, owner, state, record).
 *
 * Needs PostgreSQL's server binaries (/usr/lib/postgresql/<v>/bin): a throwaway server is started
 * as the tests do (tests/helpers/postgres.ts), fsync off.
 * Env: CLUSTER_MS (3000), CLUSTER_CONNECTIONS (16), CLUSTER_BLOCKS (2000), CLUSTER_TLI_ROWS
 * (100000), CLUSTER_SHARDS (100000).
 * Run: `npm run build && node dist/bench/cluster.js`
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadavg } from 'node:os'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createHash, randomBytes } from 'node:crypto'
import { Pool } from 'undici'
import { CID } from 'multiformats/cid'
import { DAGStore, FileMount, HttpMount } from '../src/index.js'
import { postgresBackend } from '../src/postgres.js'
import { createGateway, type Gateway } from '../src/app/server/gateway.js'
import { openPool } from '../src/storage/postgres/pool.js'
import { migrate } from '../src/storage/postgres/schema.js'
import { PgTopLevelIndex, StoredIndices } from '../src/storage/postgres/blocks.js'
import { PgClusterDirectory } from '../src/storage/postgres/directory.js'
import { postgresServer } from '../tests/helpers/postgres.js'
import { writeCarV1 } from './car-file.js'
import { envInt, fmt, header, note, now, report, tempDir } from './util.js'

const RUN_MS = envInt('CLUSTER_MS', 3000)
const CONNECTIONS = envInt('CLUSTER_CONNECTIONS', 16)
const BLOCKS = envInt('CLUSTER_BLOCKS', 2000)
const TLI_ROWS = envInt('CLUSTER_TLI_ROWS', 100_000)
const SHARDS = envInt('CLUSTER_SHARDS', 100_000)

interface Front { url: string, server: Server, pool: Pool, gateway: Gateway }

async function front (store: DAGStore): Promise<Front> {
  const gateway = createGateway(store)
  const server = createServer((req, res) => { gateway.handle(req, res).catch(() => {}) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, server, gateway, pool: new Pool(url, { connections: CONNECTIONS }) }
}

async function closeFront (f: Front): Promise<void> {
  await f.pool.close()
  await f.gateway.close()
  f.server.closeAllConnections()
  await new Promise<void>((resolve) => f.server.close(() => resolve()))
}

/** Requests/s of random raw-block GETs of `cids` for `ms`; throws on any non-200. */
async function load (f: Front, cids: string[], ms: number): Promise<number> {
  let n = 0
  const deadline = now() + ms
  const started = now()
  await Promise.all(Array.from({ length: CONNECTIONS }, async (_, w) => {
    let x = (w + 1) * 0x9e3779b1 >>> 0 || 1
    while (now() < deadline) {
      x = (x ^ (x << 13)) >>> 0
      x = (x ^ (x >>> 17)) >>> 0
      x = (x ^ (x << 5)) >>> 0
      const { statusCode, body } = await f.pool.request({ path: `/ipfs/${cids[x % cids.length] as string}?format=raw`, method: 'GET' })
      const bytes = await body.arrayBuffer()
      if (statusCode !== 200) throw new Error(`HTTP ${statusCode}: ${Buffer.from(bytes).toString()}`)
      n++
    }
  }))
  return n / ((now() - started) / 1000)
}

/** The better of two alternated runs of each side, after a warm-up of each. */
async function duel (ours: Front, oursCids: string[], peer: Front, peerCids: string[]): Promise<{ ours: number, peer: number }> {
  await load(ours, oursCids, 500)
  await load(peer, peerCids, 500)
  let o = 0
  let p = 0
  for (let round = 0; round < 2; round++) {
    o = Math.max(o, await load(ours, oursCids, RUN_MS))
    p = Math.max(p, await load(peer, peerCids, RUN_MS))
  }
  return { ours: o, peer: p }
}

function carWith (path: string, count: number): string[] {
  const cids: string[] = []
  writeCarV1(path, count, () => 1024, (_i, cid) => { cids.push(CID.decode(Uint8Array.from(cid)).toString()) })
  return cids
}

async function gatewayBench (db: string, dir: string): Promise<void> {
  const pool = openPool({ url: db })
  const localCids = carWith(join(dir, 'local.car'), BLOCKS)
  const remoteCids = carWith(join(dir, 'remote.car'), BLOCKS)
  const remoteBytes = await readFile(join(dir, 'remote.car'))
  const origin = createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
    const headers = { etag: '"remote"', 'accept-ranges': 'bytes', 'content-type': 'application/vnd.ipld.car' }
    if (m === null) { res.writeHead(200, { ...headers, 'content-length': remoteBytes.length }); res.end(remoteBytes); return }
    const first = Number(m[1])
    const last = m[2] === '' ? remoteBytes.length - 1 : Math.min(Number(m[2]), remoteBytes.length - 1)
    res.writeHead(206, { ...headers, 'content-length': last - first + 1, 'content-range': `bytes ${first}-${last}/${remoteBytes.length}` })
    res.end(remoteBytes.subarray(first, last + 1))
  })
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/remote.car`

  const fronts: Front[] = []
  const stores: DAGStore[] = []
  try {
    // node-b first: node-a advertises its own front, known once listening; b only reads.
    const embedded = new DAGStore({ dir: join(dir, 'embedded') })
    stores.push(embedded)
    await embedded.start()
    await embedded.register('local', new FileMount(join(dir, 'local.car')))
    const plain = await front(embedded)
    fronts.push(plain)

    const aServer = createServer()
    await new Promise<void>((resolve) => aServer.listen(0, '127.0.0.1', resolve))
    const aUrl = `http://127.0.0.1:${(aServer.address() as AddressInfo).port}`
    const a = new DAGStore({ dir: join(dir, 'a'), backend: postgresBackend({ url: db, node: 'a', advertise: aUrl }) })
    stores.push(a)
    await a.start()
    await a.register('local', new FileMount(join(dir, 'local.car')))
    await a.register('remote', new HttpMount(originUrl))
    const aGateway = createGateway(a)
    aServer.on('request', (req, res) => { aGateway.handle(req, res).catch(() => {}) })
    const owner: Front = { url: aUrl, server: aServer, gateway: aGateway, pool: new Pool(aUrl, { connections: CONNECTIONS }) }
    fronts.push(owner)
    const b = new DAGStore({ dir: join(dir, 'b'), backend: postgresBackend({ url: db, node: 'b' }) })
    stores.push(b)
    await b.start()
    const other = await front(b)
    fronts.push(other)

    note('load', `${loadavg().map((l) => l.toFixed(2)).join(' / ')} (1/5/15 min) before the gateway runs`)
    let r = await duel(owner, localCids, plain, localCids)
    report('gateway: owner, local file (PostgreSQL)', r.ours, 'req/s', 'embedded LevelDB store', r.peer)
    r = await duel(other, remoteCids, owner, remoteCids)
    report('gateway: non-owner, http shard in place', r.ours, 'req/s', 'its owner (in place too)', r.peer)
    r = await duel(other, localCids, owner, localCids)
    report('gateway: non-owner, proxied to the owner', r.ours, 'req/s', 'the owner itself', r.peer)
    // Where a non-owner's time goes: each of its requests starts with this one round trip.
    const directory = new PgClusterDirectory(pool, 'b')
    const multihashes = remoteCids.map((c) => CID.parse(c).multihash.bytes)
    let n = 0
    const t0 = now()
    await Promise.all(Array.from({ length: CONNECTIONS }, async (_, w) => {
      for (let i = w; now() - t0 < RUN_MS; i += CONNECTIONS) {
        await directory.locate(multihashes[i % multihashes.length] as Uint8Array)
        n++
      }
    }))
    note('block lookups (locate) alone', `${fmt(n / ((now() - t0) / 1000))} lookups/s at ${CONNECTIONS} in flight (one query each)`)
  } finally {
    for (const f of fronts) await closeFront(f)
    for (const s of stores) await s.close()
    await pool.end()
    origin.closeAllConnections()
    await new Promise<void>((resolve) => origin.close(() => resolve()))
  }
}

async function topLevelBench (db: string): Promise<void> {
  const pool = openPool({ url: db })
  try {
    await migrate(pool)
    const multihash = (): Uint8Array => Uint8Array.from([0x12, 0x20, ...createHash('sha256').update(randomBytes(16)).digest()])
    const multihashes = Array.from({ length: TLI_ROWS }, multihash)
    const index = new PgTopLevelIndex(pool, 'bench', new StoredIndices())
    let t0 = now()
    await index.addMultihashesForShard('tli', multihashes)
    const ours = TLI_ROWS / ((now() - t0) / 1000)
    await pool.query(`CREATE TABLE IF NOT EXISTS bare_blocks (
      shard text NOT NULL, multihash bytea NOT NULL, pos bigint NOT NULL, PRIMARY KEY (shard, multihash))`)
    await pool.query('CREATE INDEX IF NOT EXISTS bare_blocks_multihash ON bare_blocks (multihash)')
    t0 = now()
    await pool.query('INSERT INTO bare_blocks (shard, multihash, pos) SELECT $1, m, -1 FROM unnest($2::bytea[]) AS t (m)', ['tli', multihashes])
    const peer = TLI_ROWS / ((now() - t0) / 1000)
    report(`top-level inserts (${fmt(TLI_ROWS)} rows)`, ours, 'rows/s', 'one plain INSERT … unnest', peer)
  } finally {
    await pool.end()
  }
}

async function registerBench (db: string, dir: string): Promise<void> {
  const file = join(dir, 'local.car')
  const url = pathToFileURL(file).href
  const key = (i: number): string => 'lazy-' + String(i).padStart(6, '0')
  let store = new DAGStore({ dir: join(dir, 'reg'), backend: postgresBackend({ url: db, node: 'reg' }) })
  await store.start()
  let t0 = now()
  const pending: Array<Promise<void>> = []
  for (let i = 0; i < SHARDS; i++) pending.push(store.register(key(i), new FileMount(file), { lazy: true }))
  await Promise.all(pending)
  const registers = SHARDS / ((now() - t0) / 1000)
  await store.close()
  store = new DAGStore({ dir: join(dir, 'reg'), backend: postgresBackend({ url: db, node: 'reg' }) })
  t0 = now()
  await store.start()
  const restartMs = now() - t0
  const loaded = store.stats().new
  await store.close()

  const pool = openPool({ url: db })
  try {
    await pool.query('CREATE TABLE bare_shards (key text PRIMARY KEY, owner text NOT NULL, state text NOT NULL, record text NOT NULL)')
    const records = Array.from({ length: SHARDS }, (_, i) => JSON.stringify({ k: key(i), u: url, s: 'new', l: 1 }))
    t0 = now()
    for (let i = 0; i < SHARDS; i += 5000) {
      const keys = Array.from({ length: Math.min(5000, SHARDS - i) }, (_, j) => key(i + j))
      await pool.query(`INSERT INTO bare_shards (key, owner, state, record)
        SELECT k, 'reg', 'new', r FROM unnest($1::text[], $2::text[]) AS t (k, r)`, [keys, records.slice(i, i + 5000)])
    }
    const bareInserts = SHARDS / ((now() - t0) / 1000)
    t0 = now()
    const rows = (await pool.query('SELECT key, record FROM bare_shards')).rowCount ?? 0
    const selectMs = now() - t0
    report(`lazy registers (${fmt(SHARDS)})`, registers, 'shards/s', 'bare batched INSERT', bareInserts)
    report(`restart with ${fmt(loaded)} shards`, restartMs, 'ms', `bare SELECT of ${fmt(rows)} rows`, selectMs)
  } finally {
    await pool.end()
  }
}

async function main (): Promise<void> {
  header('bench/cluster')
  const server = await postgresServer()
  const { dir, cleanup } = await tempDir()
  try {
    await gatewayBench(await server.freshDatabase('bench_gateway'), dir)
    await topLevelBench(await server.freshDatabase('bench_tli'))
    await registerBench(await server.freshDatabase('bench_register'), dir)
    note('load', `${loadavg().map((l) => l.toFixed(2)).join(' / ')} (1/5/15 min) at the end; other work shares this machine`)
  } finally {
    await cleanup()
  }
}

await main()
