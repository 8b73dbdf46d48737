/**
 * The blocks of a trustless-gateway CAR (https://specs.ipfs.tech/http-gateways/trustless-gateway/),
 * in `order=dfs`: the blocks that verify the content path, then the DAG at its end as
 * `dag-scope` shapes it, each block followed by its children in link order (pre-order
 * depth-first search), the way a client verifying the stream reads it.
 *
 * - `block`: the path's blocks only (the last is the terminal's).
 * - `entity`: a UnixFS file's whole DAG, or with `entity-bytes` only the blocks covering the
 *   range (from the blocksizes of each node); a HAMT directory's shards (not its entries); any
 *   other terminal (plain directory, symlink, raw, dag-cbor, dag-json) is its block alone.
 * - `all`: every block reachable from the terminal, through every codec decoded here.
 *
 * `dups: false` sends each block once (a set of the CIDs sent, the one part of the walk that grows
 * with the DAG); `dups: true` sends a block every time the walk meets it, up to `maxDuplicates`
 * repeats (a DAG of shared subtrees repeats exponentially). Identity CIDs are walked through but
 * never yielded: the spec keeps them out of CARs.
 *
 * Memory is bounded whatever the DAG's size: an explicit stack of pending links (the fan-outs
 * along the current branch), one block in hand, and the consumer pulls (a generator: nothing is
 * read before it is asked for). `signal` stops the walk between two blocks.
 */
import type { CID } from 'multiformats/cid'
import { canDecode, decodeBlock, isIdentity, linksIn, linksOf, loadBlock, RAW_CODE, type Block, type Decoded, type GetBlock } from './dag-decode.js'
import type { ResolvedPath } from './dag-path.js'
import { hamtShape, hamtShardLinks } from './hamt.js'
import { DupsLimitError, UnsupportedDagError } from './errors.js'

export type DagScope = 'block' | 'entity' | 'all'

/** `entity-bytes=from:to`: inclusive offsets, negative from the end; `to: '*'` is the end. */
export interface EntityBytes { from: number, to: number | '*' }

export interface DagWalkOptions {
  scope: DagScope
  entityBytes?: EntityBytes | undefined
  /** Send a block every time the walk meets it (`dups=y`) instead of once. */
  dups?: boolean
  /** With `dups`, repeats past this many throw DupsLimitError. Default 1,000,000. */
  maxDuplicates?: number | undefined
  signal?: AbortSignal
}

/** How a pending link is walked: everything under it, HAMT shards only, or the part of a file in [from, to] (offsets in that node). */
type Mode = 'all' | 'hamt' | { from: number, to: number }

interface Pending { cid: CID, mode: Mode }

const DEFAULT_MAX_DUPLICATES = 1_000_000

/**
 * The CAR's blocks for `path` (from resolvePath). Whatever can fail before a byte is sent fails
 * here, synchronously (the terminal's codec); the walk itself reads lazily as it is iterated.
 */
export function dagWalk (get: GetBlock, path: ResolvedPath, options: DagWalkOptions): AsyncGenerator<Block> {
  const children = terminalChildren(path, options)
  return walk(get, path.blocks, children, options)
}

/** The pending links under the terminal, in walk order (first to visit first). */
function terminalChildren (path: ResolvedPath, { scope, entityBytes }: DagWalkOptions): Pending[] {
  if (scope === 'block') return []
  const { terminal, within } = path
  if (within !== undefined) return scope === 'all' ? linksIn(within.value).map((cid) => ({ cid, mode: 'all' })) : []
  if (terminal.cid.code === RAW_CODE) return []
  const decoded = decodeBlock(terminal)
  if (scope === 'all') return linksOf(decoded).map((cid) => ({ cid, mode: 'all' }))
  if (decoded.kind !== 'pb' || decoded.unixfs === undefined) return []
  const { unixfs } = decoded
  if (unixfs.type === 'hamt-sharded-directory') {
    return hamtShardLinks(decoded.node, hamtShape(unixfs, terminal.cid.toString())).map((cid) => ({ cid, mode: 'hamt' }))
  }
  if (unixfs.type !== 'file' && unixfs.type !== 'raw') return []
  if (entityBytes === undefined) return linksOf(decoded).map((cid) => ({ cid, mode: 'all' }))
  const range = resolveRange(entityBytes, Number(unixfs.fileSize()))
  return range === undefined ? [] : fileChildren(decoded, range)
}

/** entity-bytes against a file of `size` bytes: the inclusive range inside it, or undefined when none is (the answer is then the root block). */
function resolveRange ({ from, to }: EntityBytes, size: number): { from: number, to: number } | undefined {
  const start = from < 0 ? Math.max(0, size + from) : from
  const end = to === '*' ? size - 1 : to < 0 ? size + to : Math.min(to, size - 1)
  if (start > end || start >= size) return undefined
  return { from: start, to: end }
}

/** The children of a file node whose bytes meet [from, to], each with the range in its own offsets. */
function fileChildren (decoded: Decoded & { kind: 'pb' }, { from, to }: { from: number, to: number }): Pending[] {
  const { node, unixfs } = decoded
  const out: Pending[] = []
  let offset = unixfs?.data?.length ?? 0
  for (const [i, link] of node.Links.entries()) {
    const size = unixfs?.blockSizes[i]
    if (size === undefined) {
      // No size for this child: where it and the rest start is unknown, so all of them are needed.
      for (const rest of node.Links.slice(i)) out.push({ cid: rest.Hash, mode: 'all' })
      break
    }
    const length = Number(size)
    if (length > 0 && offset <= to && offset + length - 1 >= from) out.push({ cid: link.Hash, mode: { from: from - offset, to: to - offset } })
    offset += length
  }
  return out
}

/** The pending links under a block met in the walk, for its mode. */
function childrenOf (block: Block, mode: Mode): Pending[] {
  if (block.cid.code === RAW_CODE) return []
  if (mode === 'all') {
    if (!canDecode(block.cid.code)) {
      throw new UnsupportedDagError(`${block.cid.toString()} has codec 0x${block.cid.code.toString(16)}, which this gateway does not decode: its links cannot be followed`)
    }
    return linksOf(decodeBlock(block)).map((cid) => ({ cid, mode }))
  }
  const decoded = decodeBlock(block)
  if (decoded.kind !== 'pb' || decoded.unixfs === undefined) return []
  if (mode === 'hamt') {
    if (decoded.unixfs.type !== 'hamt-sharded-directory') return []
    return hamtShardLinks(decoded.node, hamtShape(decoded.unixfs, block.cid.toString())).map((cid) => ({ cid, mode }))
  }
  return fileChildren(decoded, mode)
}

function keyOf (cid: CID): string {
  return Buffer.from(cid.bytes.buffer, cid.bytes.byteOffset, cid.bytes.byteLength).toString('latin1')
}

async function * walk (get: GetBlock, path: Block[], children: Pending[], options: DagWalkOptions): AsyncGenerator<Block> {
  const dups = options.dups === true
  const maxDuplicates = options.maxDuplicates ?? DEFAULT_MAX_DUPLICATES
  const { signal } = options
  const stopped = (): boolean => signal?.aborted === true
  // CID → whether everything under it was walked too (a file range walks only part of a node).
  const seen = new Map<string, boolean>()
  let duplicates = 0
  const repeat = (): void => {
    if (++duplicates > maxDuplicates) {
      throw new DupsLimitError(`dups=y: more than ${maxDuplicates} repeated blocks under ${path[0]?.cid.toString() ?? '?'}; the stream is cut`)
    }
  }
  for (const block of path) {
    const key = keyOf(block.cid)
    const prior = seen.get(key)
    if (prior !== undefined && !dups) continue
    if (prior !== undefined) repeat()
    seen.set(key, false)
    if (!isIdentity(block.cid)) yield block
  }
  const stack: Pending[] = children.reverse()
  for (;;) {
    const next = stack.pop()
    if (next === undefined || stopped()) return
    const key = keyOf(next.cid)
    const whole = typeof next.mode === 'string'
    const prior = seen.get(key)
    const walkedAll = prior === true
    let send = true
    if (prior !== undefined) {
      if (dups) {
        repeat()
      } else {
        // Sent already: walk it again only for a part of its subtree not walked yet.
        if (walkedAll || next.cid.code === RAW_CODE) continue
        send = false
      }
    }
    seen.set(key, walkedAll || whole)
    const block = await loadBlock(get, next.cid)
    if (stopped()) return
    if (send && !isIdentity(block.cid)) yield block
    const below = childrenOf(block, next.mode)
    for (let i = below.length - 1; i >= 0; i--) stack.push(below[i] as Pending)
  }
}
