// Real DAGs for the gateway's CAR tests, and an oracle for what each CAR must hold, written
// independently of src/read: recursive where the gateway keeps a stack, file ranges from the
// leaves' real lengths where the gateway reads blocksizes, HAMT paths by searching every shard
// for the entry's name where the gateway hashes it.
import * as dagPb from '@ipld/dag-pb'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import type { Block } from './car-gen.js'

/** The blocks of every DAG built here, by CID string. */
export class Blocks {
  readonly map = new Map<string, Block>()
  async put (cid: CID, bytes: Uint8Array): Promise<CID> {
    this.map.set(cid.toString(), { cid, bytes })
    return cid
  }

  get (cid: CID): Uint8Array {
    if (cid.multihash.code === 0) return cid.multihash.digest
    const b = this.map.get(cid.toString())
    if (b === undefined) throw new Error(`oracle: no block ${cid.toString()}`)
    return b.bytes
  }
}

async function encodeCbor (blocks: Blocks, value: unknown): Promise<CID> {
  const bytes = dagCbor.encode(value)
  return await blocks.put(CID.createV1(dagCbor.code, await sha256.digest(bytes)), bytes)
}

async function encodeJson (blocks: Blocks, value: unknown): Promise<CID> {
  const bytes = dagJson.encode(value)
  return await blocks.put(CID.createV1(dagJson.code, await sha256.digest(bytes)), bytes)
}

/** Bytes with repeats (so a file shares leaves with itself) and a distinct tail. */
function fileBytes (size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = i < size / 2 ? (i % 1024) % 251 : (i * 31 + seed * 7 + (i >> 9)) & 0xff
  return out
}

export interface Fixture {
  blocks: Blocks
  file: { cid: CID, bytes: Uint8Array }
  /** A directory: a.txt, sub/big.bin (= file), sub/empty/ */
  dir: CID
  /** A HAMT-sharded directory (fanout 16) of `hamtNames`, each file holding its name. */
  hamt: CID
  hamtNames: string[]
  /** dag-cbor: { name, children: [a, b], shared: a, meta: { file, json }, inline } */
  cbor: CID
}

export async function buildFixture (): Promise<Fixture> {
  const blocks = new Blocks()
  const bytes = fileBytes(40_000, 3)
  const opts = { chunker: fixedSize({ chunkSize: 1024 }), layout: balanced({ maxChildrenPerNode: 6 }), rawLeaves: true, cidVersion: 1 as const }
  let dir: CID | undefined
  let file: CID | undefined
  for await (const entry of importer([
    { path: 'root/a.txt', content: new TextEncoder().encode('hello a') },
    { path: 'root/sub/big.bin', content: bytes },
    { path: 'root/sub/empty' }
  ], blocks, opts)) {
    if (entry.path === 'root') dir = entry.cid
    if (entry.path === 'root/sub/big.bin') file = entry.cid
  }
  const hamtNames = Array.from({ length: 60 }, (_, i) => `entry-${i}.txt`)
  let hamt: CID | undefined
  for await (const entry of importer(hamtNames.map((n) => ({ path: `h/${n}`, content: new TextEncoder().encode(n) })),
    blocks, { ...opts, shardSplitThresholdBytes: 100, shardFanoutBits: 4 })) {
    if (entry.path === 'h') hamt = entry.cid
  }
  if (dir === undefined || file === undefined || hamt === undefined) throw new Error('importer yielded no root')
  const leaf = await encodeCbor(blocks, { leaf: new Uint8Array([1, 2, 3]) })
  const a = await encodeCbor(blocks, { value: 'a', next: leaf })
  const b = await encodeCbor(blocks, { value: 'b', next: leaf, list: [leaf, a] })
  const json = await encodeJson(blocks, { hello: 'json', link: a })
  const inlineBytes = dagCbor.encode({ tiny: true, link: b })
  const inline = CID.createV1(dagCbor.code, identity.digest(inlineBytes))
  const cbor = await encodeCbor(blocks, { name: 'root', children: [a, b], shared: a, meta: { file, json, deep: { list: [{ x: b }] } }, inline })
  return { blocks, file: { cid: file, bytes }, dir, hamt, hamtNames, cbor }
}

type Decoded = { kind: 'raw' } | { kind: 'pb', node: dagPb.PBNode, unixfs?: UnixFS } | { kind: 'ipld', value: unknown }

function decode (cid: CID, bytes: Uint8Array): Decoded {
  if (cid.code === 0x55) return { kind: 'raw' }
  if (cid.code === dagPb.code) {
    const node = dagPb.decode(bytes)
    return node.Data === undefined ? { kind: 'pb', node } : { kind: 'pb', node, unixfs: UnixFS.unmarshal(node.Data) }
  }
  return { kind: 'ipld', value: cid.code === dagCbor.code ? dagCbor.decode(bytes) : dagJson.decode(bytes) }
}

function cidsIn (v: unknown, out: CID[] = []): CID[] {
  const cid = CID.asCID(v)
  if (cid !== null) out.push(cid)
  else if (Array.isArray(v)) for (const x of v) cidsIn(x, out)
  else if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) for (const x of Object.values(v)) cidsIn(x, out)
  return out
}

function links (d: Decoded): CID[] {
  if (d.kind === 'raw') return []
  if (d.kind === 'pb') return d.node.Links.map((l) => l.Hash)
  return cidsIn(d.value)
}

/** What a dfs CAR lists: identity CIDs dropped; with dups=n each CID at its first place only. */
function finish (order: CID[], dups: boolean): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  for (const cid of order) {
    if (cid.multihash.code === 0) continue
    const s = cid.toString()
    if (!dups && seen.has(s)) continue
    seen.add(s)
    out.push(s)
  }
  return out
}

/** Pre-order DFS of the whole DAG under `cid` (every occurrence). */
function allUnder (blocks: Blocks, cid: CID, out: CID[]): void {
  out.push(cid)
  for (const child of links(decode(cid, blocks.get(cid)))) allUnder(blocks, child, out)
}

/** The bytes a UnixFS file node stands for, measured from its leaves. */
function contentLength (blocks: Blocks, cid: CID): number {
  const d = decode(cid, blocks.get(cid))
  if (d.kind === 'raw') return blocks.get(cid).length
  if (d.kind !== 'pb') throw new Error('not a file node')
  return (d.unixfs?.data?.length ?? 0) + d.node.Links.reduce((n, l) => n + contentLength(blocks, l.Hash), 0)
}

/** Pre-order DFS of the file nodes whose bytes meet [from, to] (absolute, inclusive). */
function rangeUnder (blocks: Blocks, cid: CID, start: number, from: number, to: number, out: CID[]): void {
  out.push(cid)
  const d = decode(cid, blocks.get(cid))
  if (d.kind !== 'pb') return
  let offset = start + (d.unixfs?.data?.length ?? 0)
  for (const l of d.node.Links) {
    const len = contentLength(blocks, l.Hash)
    if (len > 0 && offset <= to && offset + len - 1 >= from) rangeUnder(blocks, l.Hash, offset, from, to, out)
    offset += len
  }
}

/** The HAMT shards under a shard (not its entries), pre-order. */
function shardsUnder (blocks: Blocks, cid: CID, out: CID[]): void {
  out.push(cid)
  const d = decode(cid, blocks.get(cid))
  if (d.kind !== 'pb') return
  const pad = (Number(d.unixfs?.fanout) - 1).toString(16).length
  for (const l of d.node.Links) if ((l.Name ?? '').length === pad) shardsUnder(blocks, l.Hash, out)
}

/** The shards from a HAMT root to the link naming `name` (found by search, not by hash), and the entry. */
function hamtFind (blocks: Blocks, cid: CID, name: string): { shards: CID[], entry: CID } | undefined {
  const d = decode(cid, blocks.get(cid))
  if (d.kind !== 'pb') return undefined
  const pad = (Number(d.unixfs?.fanout) - 1).toString(16).length
  for (const l of d.node.Links) {
    const n = l.Name ?? ''
    if (n.length > pad && n.slice(pad) === name) return { shards: [cid], entry: l.Hash }
    if (n.length === pad) {
      const below = hamtFind(blocks, l.Hash, name)
      if (below !== undefined) return { shards: [cid, ...below.shards], entry: below.entry }
    }
  }
  return undefined
}

export interface Expect { scope: 'block' | 'entity' | 'all', dups?: boolean, bytes?: [number, number] }

/** The CIDs a dfs CAR for /ipfs/{root}/{segments} must hold, in order. */
export function expectedCar (blocks: Blocks, root: CID, segments: string[], { scope, dups = false, bytes }: Expect): string[] {
  const order: CID[] = [root]
  let at = root
  let within: unknown
  for (const seg of segments) {
    const d = decode(at, blocks.get(at))
    let next: CID | undefined
    if (d.kind === 'ipld') {
      const v = (within ?? d.value) as Record<string, unknown>
      const field = v[seg]
      next = CID.asCID(field) ?? undefined
      if (next === undefined) { within = field; continue }
    } else if (d.kind === 'pb' && d.unixfs?.type === 'hamt-sharded-directory') {
      const found = hamtFind(blocks, at, seg)
      if (found === undefined) throw new Error(`oracle: no ${seg}`)
      order.push(...found.shards.slice(1))
      next = found.entry
    } else if (d.kind === 'pb') {
      next = d.node.Links.find((l) => l.Name === seg)?.Hash
    }
    if (next === undefined) throw new Error(`oracle: no ${seg}`)
    order.push(next)
    at = next
    within = undefined
  }
  const terminal = decode(at, blocks.get(at))
  const under: CID[] = []
  if (scope === 'all') {
    const kids = within !== undefined ? cidsIn(within) : links(terminal)
    for (const k of kids) allUnder(blocks, k, under)
  } else if (scope === 'entity' && within === undefined && terminal.kind === 'pb') {
    const type = terminal.unixfs?.type
    if (type === 'hamt-sharded-directory') {
      shardsUnder(blocks, at, under)
      under.shift()
    } else if (type === 'file') {
      const size = contentLength(blocks, at)
      if (bytes === undefined) {
        allUnder(blocks, at, under)
        under.shift()
      } else if (bytes[0] <= bytes[1] && bytes[0] < size) {
        rangeUnder(blocks, at, 0, bytes[0], Math.min(bytes[1], size - 1), under)
        under.shift()
      }
    }
  }
  return finish([...order, ...under], dups)
}

/** The bytes of [from, to] of the file at `cid`, read from `got` alone (what a client can rebuild from the CAR). */
export function readRange (got: Map<string, Uint8Array>, cid: CID, from: number, to: number): Uint8Array {
  const parts: Uint8Array[] = []
  const visit = (c: CID, start: number): number => {
    const bytes = got.get(c.toString())
    if (bytes === undefined) throw new Error(`CAR lacks ${c.toString()}, needed for bytes ${from}..${to}`)
    if (c.code === 0x55) {
      parts.push(bytes.subarray(Math.max(0, from - start), Math.max(0, to - start + 1)))
      return bytes.length
    }
    const d = decode(c, bytes) as Decoded & { kind: 'pb' }
    const data = d.unixfs?.data ?? new Uint8Array(0)
    parts.push(data.subarray(Math.max(0, from - start), Math.max(0, to - start + 1)))
    let offset = start + data.length
    for (const [i, l] of d.node.Links.entries()) {
      const len = Number(d.unixfs?.blockSizes[i] ?? 0)
      if (offset <= to && offset + len - 1 >= from) visit(l.Hash, offset)
      offset += len
    }
    return offset - start
  }
  visit(cid, 0)
  return Buffer.concat(parts)
}
