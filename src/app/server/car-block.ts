/**
 * The CARv1 a trustless gateway answers for `dag-scope=block`: header `{roots: [cid], version: 1}`
 * and the block's section. Written directly (no @ipld/car writer): the response is one small
 * buffer, and a HEAD must know its exact length without reading the block.
 *
 * Identity CIDs get no section: the trustless-gateway spec forbids sending their "virtual"
 * blocks in a CAR (the bytes are the CID itself), so such a CAR is the header alone.
 */
import type { CID } from 'multiformats/cid'
import { encodeVarint, varintLength } from '../../format/varint.js'

const IDENTITY = 0x00
const ROOTS = [0x65, 0x72, 0x6f, 0x6f, 0x74, 0x73] // text(5) "roots"
const VERSION = [0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01] // text(7) "version", 1

/** The CBOR head of a byte string of `n` bytes. */
function bytesHeadLength (n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

function writeBytesHead (n: number, out: Uint8Array, at: number): number {
  if (n < 24) {
    out[at] = 0x40 | n
    return 1
  }
  if (n < 0x100) {
    out[at] = 0x58
    out[at + 1] = n
    return 2
  }
  if (n < 0x10000) {
    out[at] = 0x59
    out[at + 1] = n >> 8
    out[at + 2] = n & 0xff
    return 3
  }
  out[at] = 0x5a
  new DataView(out.buffer, out.byteOffset + at + 1, 4).setUint32(0, n)
  return 5
}

/** Length of the dag-cbor header body (without its varint prefix). */
function headerBodyLength (cid: CID): number {
  const link = cid.bytes.length + 1 // a CID link is the bytes 0x00 ‖ cid
  // map(2) + "roots" + array(1) + tag(42) + bytes head + link + "version": 1
  return 1 + ROOTS.length + 1 + 2 + bytesHeadLength(link) + link + VERSION.length
}

/** True when the CAR for `cid` carries the block's section (false for identity CIDs). */
function carHasSection (cid: CID): boolean {
  return cid.multihash.code !== IDENTITY
}

/** Byte length of `encodeBlockCar(cid, block)` for a block of `blockSize` bytes. */
export function blockCarLength (cid: CID, blockSize: number): number {
  const body = headerBodyLength(cid)
  let n = varintLength(body) + body
  if (carHasSection(cid)) {
    const section = cid.bytes.length + blockSize
    n += varintLength(section) + section
  }
  return n
}

/** A CARv1 with roots [cid] and, unless `cid` is an identity CID, one section: cid ‖ block. */
export function encodeBlockCar (cid: CID, block: Uint8Array): Uint8Array {
  const out = new Uint8Array(blockCarLength(cid, block.length))
  const body = headerBodyLength(cid)
  let at = encodeVarint(body, out, 0)
  out[at++] = 0xa2 // map(2), keys in dag-cbor order (shorter first)
  out.set(ROOTS, at)
  at += ROOTS.length
  out[at++] = 0x81 // array(1)
  out[at++] = 0xd8 // tag(42): a CID link
  out[at++] = 0x2a
  at += writeBytesHead(cid.bytes.length + 1, out, at)
  out[at++] = 0x00 // the multibase identity prefix dag-cbor links carry
  out.set(cid.bytes, at)
  at += cid.bytes.length
  out.set(VERSION, at)
  at += VERSION.length
  if (carHasSection(cid)) {
    at += encodeVarint(cid.bytes.length + block.length, out, at)
    out.set(cid.bytes, at)
    at += cid.bytes.length
    out.set(block, at)
  }
  return out
}
