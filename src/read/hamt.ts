/**
 * UnixFS HAMT-sharded directories (https://specs.ipfs.tech/unixfs/#hamt-structure-and-parameters):
 * a name's murmur3-x64-64 hash, read `log2(fanout)` bits at a time from its first byte on, picks
 * one link per level, named by the bucket index in upper-case hex padded to the width of
 * `fanout - 1`. A link named by the index alone is a sub-shard; one named index ‖ entry name is
 * the entry. Only the shards on the name's hash path are read, as a client verifying it does.
 */
import { murmur364 } from '@multiformats/murmur3'
import type { PBNode } from '@ipld/dag-pb'
import type { UnixFS } from 'ipfs-unixfs'
import type { CID } from 'multiformats/cid'
import { UnsupportedDagError } from './errors.js'

const MURMUR3_X64_64 = 0x22n

export interface HamtShape { bits: number, padLength: number }

/** The bucket width and link-name prefix length of a HAMT node, checked. */
export function hamtShape (unixfs: UnixFS, where: string): HamtShape {
  // Absent is the default, murmur3 (some writers leave it out).
  if (unixfs.hashType !== undefined && unixfs.hashType !== MURMUR3_X64_64) {
    throw new UnsupportedDagError(`HAMT ${where} uses hash 0x${String(unixfs.hashType?.toString(16))}; only murmur3-x64-64 (0x22) is read`)
  }
  const fanout = Number(unixfs.fanout ?? 0n)
  const bits = Math.log2(fanout)
  if (!Number.isInteger(bits) || bits < 1 || bits > 16) {
    throw new UnsupportedDagError(`HAMT ${where} has fanout ${fanout}; a power of two from 2 to 65536 is read`)
  }
  return { bits, padLength: (fanout - 1).toString(16).length }
}

/** The bucket index `level` selects: bits [level·bits, (level+1)·bits) of the hash, most significant first. */
function bucketAt (hash: Uint8Array, level: number, bits: number): number | undefined {
  const start = level * bits
  if (start + bits > hash.length * 8) return undefined
  let out = 0
  for (let i = start; i < start + bits; i++) {
    const byte = hash[i >> 3] ?? 0
    out = (out << 1) | ((byte >> (7 - (i & 7))) & 1)
  }
  return out
}

export function hamtHash (name: string): Uint8Array {
  const digest = murmur364.encode(new TextEncoder().encode(name))
  // Typed as possibly async (the hasher interface allows it); this hasher computes in place.
  if (digest instanceof Promise) throw new TypeError('murmur3-x64-64 is expected to hash synchronously')
  return digest
}

export type HamtStep = { shard: CID } | { entry: CID } | undefined

/** One level of a lookup: the sub-shard to read next, the entry found, or undefined (absent). */
export function hamtStep (node: PBNode, shape: HamtShape, hash: Uint8Array, level: number, name: string, where: string): HamtStep {
  const bucket = bucketAt(hash, level, shape.bits)
  if (bucket === undefined) {
    throw new UnsupportedDagError(`HAMT ${where} is deeper than the 64-bit hash of ${JSON.stringify(name)} reaches`)
  }
  const prefix = bucket.toString(16).toUpperCase().padStart(shape.padLength, '0')
  for (const link of node.Links) {
    const linkName = link.Name ?? ''
    if (!linkName.startsWith(prefix)) continue
    if (linkName.length === shape.padLength) return { shard: link.Hash }
    if (linkName.slice(shape.padLength) === name) return { entry: link.Hash }
    return undefined // the bucket holds another name
  }
  return undefined
}

/** A HAMT node's links to its sub-shards (its entity: what enumerating the directory needs). */
export function hamtShardLinks (node: PBNode, shape: HamtShape): CID[] {
  return node.Links.filter((l) => (l.Name ?? '').length === shape.padLength).map((l) => l.Hash)
}
