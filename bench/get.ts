/**
 * The bar (docs/PERFORMANCE.md): "`blockstore.get` from an acquired shard: ≥ 3× a `blockstore-fs` get of the same
 * blocks."
 *
 * The store: a DAGStore in a temp dir with two FileMount shards, tests/fixtures/sample-v1.car
 * (1,043 indexed blocks of mixed sizes) and a generated CARv1 of GET_BLOCKS raw blocks of
 * GET_BLOCK_SIZE random bytes. Each shard is acquired once and `accessor.blockstore().get(cid)`
 * is measured over all its blocks in a shuffled order, (a) awaited one by one and (b) with
 * GET_CONCURRENCY gets in flight.
 *
 * The peer, in the same run on the same disk: a `blockstore-fs` FsBlockstore in the same temp
 * dir holding exactly the same blocks (`put` beforehand), read the same way; its `get` yields
 * chunks, which are collected into one Uint8Array (what our get returns). Every block is
 * checked byte-equal between the two before timing.
 *
 * Both sides run twice, alternating (ours, peer, ours, peer), and each reports its better run:
 * other work on the machine moves single runs by more than the difference between them.
 *
 * Extra (no bar): the all-shards blockstore (`store.blockstore()`, cache warm) over the
 * generated shard's blocks. With the default selection a block of a cached shard is found in
 * that shard's index, then read as above; with a custom `select` every get first reads the
 * top-level index (a LevelDB range read), measured as a third line.
 *
 * Env: GET_MS (2000 per run), GET_WARMUP_MS (300), GET_CONCURRENCY (16), GET_BLOCKS (10000),
 * GET_BLOCK_SIZE (1024).
 * Run: `npm run build && node dist/bench/get.js`
 */
import { createWriteStream } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { CarReader } from '@ipld/car/reader'
import { CarWriter } from '@ipld/car/writer'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { FsBlockstore } from 'blockstore-fs'
import { DAGStore, FileMount } from '../src/index.js'
import { envInt, fixture, fmt, fmtAuto, header, note, now, report, tempDir } from './util.js'

const RUN_MS = envInt('GET_MS', 2000)
const WARMUP_MS = envInt('GET_WARMUP_MS', 300)
const CONCURRENCY = envInt('GET_CONCURRENCY', 16)
const GEN_BLOCKS = envInt('GET_BLOCKS', 10_000)
const GEN_BLOCK_SIZE = envInt('GET_BLOCK_SIZE', 1024)
const RATIO_TARGET = 3

type Get = (cid: CID) => Promise<Uint8Array>
interface Block { cid: CID, bytes: Uint8Array }

async function generateCar (path: string, count: number, size: number): Promise<void> {
  const blocks: Block[] = []
  for (let i = 0; i < count; i++) {
    const bytes = randomBytes(size)
    blocks.push({ cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes })
  }
  const [first] = blocks
  if (first === undefined) throw new Error('a CAR needs at least one block')
  const { writer, out } = CarWriter.create([first.cid])
  const written = pipeline(Readable.from(out), createWriteStream(path))
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await written
}

async function carBlocks (path: string): Promise<Block[]> {
  const reader = await CarReader.fromBytes(await readFile(path))
  const blocks: Block[] = []
  // Identity CIDs are answered from the CID by our store and would be files for the peer: not a read either way.
  for await (const b of reader.blocks()) if (b.cid.multihash.code !== 0) blocks.push(b)
  return blocks
}

function shuffled<T> (items: T[]): T[] {
  const out = items.slice()
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    // 0 <= j <= i < out.length
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return out
}

function peerGet (fs: FsBlockstore): Get {
  return async (cid) => {
    const parts: Uint8Array[] = []
    for await (const chunk of fs.get(cid)) parts.push(chunk)
    const [only] = parts
    if (parts.length === 1 && only !== undefined) return only
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let at = 0
    for (const p of parts) { out.set(p, at); at += p.length }
    return out
  }
}

/**
 * `workers` loops pulling the next CID of a shuffled list (wrapping around) until `ms` have
 * passed. Returns gets per second. Workers read the clock themselves: no timer needed.
 */
async function measure (get: Get, order: CID[], workers: number, ms: number): Promise<number> {
  let next = 0
  let ops = 0
  const started = now()
  const deadline = started + ms
  const worker = async (): Promise<void> => {
    for (;;) {
      for (let k = 0; k < 32; k++) {
        const cid = order[next]! // next < order.length: it wraps to 0
        next = next + 1 === order.length ? 0 : next + 1
        await get(cid)
        ops++
      }
      if (now() >= deadline) return
    }
  }
  await Promise.all(Array.from({ length: workers }, worker))
  return ops / ((now() - started) / 1000)
}

/** Ours and the peer alternately, twice each, after a warm-up of each; the better run of each side. */
async function duel (ours: Get, peer: Get, cids: CID[], workers: number): Promise<{ ours: number, peer: number }> {
  const order = shuffled(cids)
  await measure(ours, order, workers, WARMUP_MS)
  await measure(peer, order, workers, WARMUP_MS)
  let best = { ours: 0, peer: 0 }
  for (let round = 0; round < 2; round++) {
    const o = await measure(ours, order, workers, RUN_MS)
    const p = await measure(peer, order, workers, RUN_MS)
    best = { ours: Math.max(best.ours, o), peer: Math.max(best.peer, p) }
  }
  return best
}

async function verify (ours: Get, peer: Get, blocks: Block[], what: string): Promise<void> {
  for (const { cid, bytes } of blocks) {
    const a = await ours(cid)
    const b = await peer(cid)
    if (!Buffer.from(a).equals(bytes) || !Buffer.from(b).equals(bytes)) throw new Error(`${what}: ${cid.toString()} differs`)
  }
}

function loadNote (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

function microsPerOp (opsPerSec: number, workers: number): string {
  // With N in flight, wall time per op is 1/throughput; each op's own latency is ≈ N times that.
  const wall = 1e6 / opsPerSec
  return workers === 1 ? `${fmtAuto(wall)} µs/op` : `${fmtAuto(wall)} µs/op wall (≈ ${fmtAuto(wall * workers)} µs latency)`
}

function line (name: string, r: { ours: number, peer: number }, workers: number, target: boolean): void {
  report(name, r.ours, 'gets/s', 'blockstore-fs', r.peer, target ? { atLeast: RATIO_TARGET * r.peer } : undefined)
  note('', `ours ${microsPerOp(r.ours, workers)}; blockstore-fs ${microsPerOp(r.peer, workers)}`)
}

async function main (): Promise<void> {
  header('bench/get: accessor blockstore get vs blockstore-fs')
  note('parameters', `${fmt(RUN_MS)} ms per run (best of 2, alternating), ${fmt(WARMUP_MS)} ms warm-up, concurrency ${CONCURRENCY}, generated ${fmt(GEN_BLOCKS)} × ${fmt(GEN_BLOCK_SIZE)} B`)
  note('load average (1/5/15 min)', loadNote())
  const { dir, cleanup } = await tempDir('dagstore-bench-get-')
  const store = new DAGStore({ dir: join(dir, 'store') })
  try {
    await store.start()
    const genPath = join(dir, 'generated.car')
    let t0 = now()
    await generateCar(genPath, GEN_BLOCKS, GEN_BLOCK_SIZE)
    note('generated CAR', `${fmt(GEN_BLOCKS)} blocks in ${fmt(now() - t0)} ms`)
    const datasets = [
      { name: 'sample-v1.car', key: 'sample', path: fixture('sample-v1.car') },
      { name: `generated ${fmt(GEN_BLOCKS)} × ${fmtBytesShort(GEN_BLOCK_SIZE)}`, key: 'generated', path: genPath }
    ]
    for (const ds of datasets) {
      t0 = now()
      await store.register(ds.key, new FileMount(ds.path))
      const accessor = await store.acquire(ds.key)
      const blocks = await carBlocks(ds.path)
      const fs = new FsBlockstore(join(dir, `fs-${ds.key}`))
      await fs.open()
      for (const b of blocks) await fs.put(b.cid, b.bytes)
      const bytes = blocks.reduce((n, b) => n + b.bytes.length, 0)
      note(`setup ${ds.name}`, `${fmt(blocks.length)} blocks (avg ${fmt(bytes / blocks.length)} B) registered, acquired, put into blockstore-fs in ${fmt(now() - t0)} ms`)
      const bs = accessor.blockstore()
      const ours: Get = async (cid) => await bs.get(cid)
      const peer = peerGet(fs)
      await verify(ours, peer, blocks, ds.name)
      const cids = blocks.map((b) => b.cid)
      line(`${ds.name}: get, awaited one by one`, await duel(ours, peer, cids, 1), 1, true)
      line(`${ds.name}: get, ${CONCURRENCY} in flight`, await duel(ours, peer, cids, CONCURRENCY), CONCURRENCY, true)

      if (ds.key === 'generated') {
        const all = store.blockstore()
        const viaAll: Get = async (cid) => await all.get(cid)
        await verify(viaAll, peer, blocks.slice(0, 100), 'all-shards')
        line(`${ds.name}: all-shards get (warm), awaited`, await duel(viaAll, peer, cids, 1), 1, false)
        line(`${ds.name}: all-shards get (warm), ${CONCURRENCY} in flight`, await duel(viaAll, peer, cids, CONCURRENCY), CONCURRENCY, false)
        await all.close()
        // A custom select sees every holder, so each get first reads the top-level index.
        const looked = store.blockstore({ select: (_cid, shards) => shards[0] })
        const viaLookup: Get = async (cid) => await looked.get(cid)
        line(`${ds.name}: all-shards get, top-level lookup each, awaited`, await duel(viaLookup, peer, cids, 1), 1, false)
        await looked.close()
      }
      await accessor.close()
      await fs.close()
    }
  } finally {
    await store.close()
    await cleanup()
  }
  note('load average at end', loadNote())
}

function fmtBytesShort (n: number): string {
  return n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
