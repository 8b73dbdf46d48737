/**
 * Content-path resolution as the path gateway spec describes it for `/ipfs/{cid}/{path}`: each
 * segment is a UnixFS directory entry (HAMT-sharded directories included), a named dag-pb link,
 * or a dag-cbor / dag-json map key or list index; crossing a link reads the next block. Every
 * block read on the way is kept, in order: a trustless CAR starts with them so the client can
 * verify the path. Pure over `get`: no shard, no HTTP.
 */
import { CID } from 'multiformats/cid'
import { decodeBlock, loadBlock, type Block, type Decoded, type GetBlock } from './dag-decode.js'
import { hamtHash, hamtShape, hamtStep } from './hamt.js'
import { PathNotFoundError } from './errors.js'

export interface ResolvedPath {
  /** Every block read to verify the path, root first; the last one holds the terminal. */
  blocks: Block[]
  /** The block at the end of the path (or holding the value it ends at). */
  terminal: Block
  /** Set when the path ends inside the terminal block (a dag-cbor / dag-json field that is not a link). */
  within?: { value: unknown }
  /** The block each segment ended in, after the root: what `X-Ipfs-Roots` lists. */
  roots: CID[]
}

interface Position { block: Block, decoded?: Decoded, within?: { value: unknown } }

export async function resolvePath (get: GetBlock, root: CID, segments: readonly string[]): Promise<ResolvedPath> {
  const first = await loadBlock(get, root)
  const blocks: Block[] = [first]
  const roots: CID[] = [root]
  let at: Position = { block: first }
  const where = (i: number): string => `/${segments.slice(0, i + 1).join('/')}`
  for (const [i, segment] of segments.entries()) {
    const decoded = at.decoded ?? decodeBlock(at.block)
    at.decoded = decoded
    let next: CID | undefined
    if (decoded.kind === 'ipld') {
      const value = fieldOf(at.within === undefined ? decoded.value : at.within.value, segment)
      if (value === undefined) throw notFound(root, where(i), at.block.cid)
      next = CID.asCID(value) ?? undefined
      if (next === undefined) {
        at = { block: at.block, decoded, within: { value } }
        roots.push(at.block.cid)
        continue
      }
    } else if (decoded.kind === 'pb') {
      next = await pbChild(get, decoded, at.block, segment, blocks, where(i))
      if (next === undefined) throw notFound(root, where(i), at.block.cid)
    } else {
      throw notFound(root, where(i), at.block.cid)
    }
    const block = await loadBlock(get, next)
    blocks.push(block)
    roots.push(next)
    at = { block }
  }
  const out: ResolvedPath = { blocks, terminal: at.block, roots }
  if (at.within !== undefined) out.within = at.within
  return out
}

function notFound (root: CID, path: string, inBlock: CID): PathNotFoundError {
  return new PathNotFoundError(`no ${path} under ${root.toString()} (nothing by that name in ${inBlock.toString()})`)
}

/** A map key or a list index of a decoded IPLD value; undefined when absent. */
function fieldOf (value: unknown, segment: string): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array || CID.asCID(value) !== null) return undefined
  if (Array.isArray(value)) {
    if (!/^(?:0|[1-9]\d*)$/.test(segment)) return undefined
    return value[Number(segment)]
  }
  return Object.hasOwn(value, segment) ? (value as Record<string, unknown>)[segment] : undefined
}

/**
 * The child a dag-pb node names `segment`: a plain directory's (or non-UnixFS node's) link of
 * that name, or a HAMT lookup, whose shards are appended to `blocks` as they are read.
 */
async function pbChild (
  get: GetBlock, decoded: Decoded & { kind: 'pb' }, block: Block, segment: string, blocks: Block[], where: string
): Promise<CID | undefined> {
  const { node, unixfs } = decoded
  if (unixfs === undefined || unixfs.type === 'directory') {
    return node.Links.find((l) => l.Name === segment)?.Hash
  }
  if (unixfs.type !== 'hamt-sharded-directory') return undefined
  const hash = hamtHash(segment)
  let shard = { node, unixfs, cid: block.cid }
  for (let level = 0; ; level++) {
    const step = hamtStep(shard.node, hamtShape(shard.unixfs, where), hash, level, segment, where)
    if (step === undefined) return undefined
    if ('entry' in step) return step.entry
    const next = await loadBlock(get, step.shard)
    blocks.push(next)
    const d = decodeBlock(next)
    if (d.kind !== 'pb' || d.unixfs?.type !== 'hamt-sharded-directory') return undefined
    shard = { node: d.node, unixfs: d.unixfs, cid: next.cid }
  }
}
