/**
 * A block as the DAG walk and the path resolver see it: its links, and for dag-pb its UnixFS
 * meaning. Decoding is left to the ecosystem's codecs (@ipld/dag-pb, @ipld/dag-cbor,
 * @ipld/dag-json, ipfs-unixfs); identity CIDs carry their block in the CID itself.
 */
import * as dagPb from '@ipld/dag-pb'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { IDENTITY_CODE } from '../format/multihash.js'
import { BlockUndecodableError, UnsupportedDagError } from './errors.js'

export const RAW_CODE = 0x55
const DAG_PB_CODE = dagPb.code
const DAG_CBOR_CODE = dagCbor.code
const DAG_JSON_CODE = dagJson.code

export interface Block { cid: CID, bytes: Uint8Array }

/** Reads one block by CID (from any shard); rejects with ERR_NOT_FOUND when none holds it. */
export type GetBlock = (cid: CID) => Promise<Uint8Array>

export type Decoded =
  | { kind: 'raw' }
  | { kind: 'pb', node: dagPb.PBNode, unixfs: UnixFS | undefined }
  | { kind: 'ipld', value: unknown }

export function isIdentity (cid: CID): boolean {
  return cid.multihash.code === IDENTITY_CODE
}

/** The block's bytes: an identity CID's digest, else whatever `get` reads. */
export async function loadBlock (get: GetBlock, cid: CID): Promise<Block> {
  return { cid, bytes: isIdentity(cid) ? cid.multihash.digest : await get(cid) }
}

export function canDecode (code: number): boolean {
  return code === RAW_CODE || code === DAG_PB_CODE || code === DAG_CBOR_CODE || code === DAG_JSON_CODE
}

export function decodeBlock ({ cid, bytes }: Block): Decoded {
  if (!canDecode(cid.code)) {
    throw new UnsupportedDagError(`${cid.toString()} has codec 0x${cid.code.toString(16)}, which this gateway does not decode (dag-pb, dag-cbor, dag-json, raw)`)
  }
  if (cid.code === RAW_CODE) return { kind: 'raw' }
  try {
    if (cid.code === DAG_PB_CODE) {
      const node = dagPb.decode(bytes)
      return { kind: 'pb', node, unixfs: unixfsOf(node) }
    }
    return { kind: 'ipld', value: cid.code === DAG_CBOR_CODE ? dagCbor.decode(bytes) : dagJson.decode(bytes) }
  } catch (err) {
    throw new BlockUndecodableError(`${cid.toString()} does not decode: ${(err as Error).message}`, { cause: err })
  }
}

/** dag-pb without UnixFS data (or with data UnixFS cannot read) is plain dag-pb. */
function unixfsOf (node: dagPb.PBNode): UnixFS | undefined {
  if (node.Data === undefined) return undefined
  try {
    return UnixFS.unmarshal(node.Data)
  } catch {
    return undefined
  }
}

/** Every link of the block, in the order a depth-first walk visits them. */
export function linksOf (decoded: Decoded): CID[] {
  if (decoded.kind === 'raw') return []
  if (decoded.kind === 'pb') return decoded.node.Links.map((l) => l.Hash)
  return linksIn(decoded.value)
}

/**
 * The CIDs inside a decoded dag-cbor / dag-json value, in document order (map entries as the
 * codec decoded them: their canonical key order). Values are bounded by the block's size.
 */
export function linksIn (value: unknown): CID[] {
  const out: CID[] = []
  const visit = (v: unknown): void => {
    if (v === null || typeof v !== 'object') return
    const cid = CID.asCID(v)
    if (cid !== null) {
      out.push(cid)
      return
    }
    if (v instanceof Uint8Array) return
    if (Array.isArray(v)) {
      for (const item of v) visit(item)
      return
    }
    for (const item of Object.values(v)) visit(item)
  }
  visit(value)
  return out
}
