/**
 * The CARv1 a trustless gateway answers for `dag-scope=block`: header `{roots: [cid], version: 1}`
 * and the block's section, written by @ipld/car's buffer writer into one buffer of the exact
 * length, which a HEAD knows without reading the block.
 *
 * Identity CIDs get no section: the trustless-gateway spec forbids sending their "virtual"
 * blocks in a CAR (the bytes are the CID itself), so such a CAR is the header alone.
 */
import * as CarBufferWriter from '@ipld/car/buffer-writer'
import type { CID } from 'multiformats/cid'
import { varintLength } from '../../format/varint.js'
import { IDENTITY_CODE } from '../../format/multihash.js'

/** True when the CAR for `cid` carries the block's section (false for identity CIDs). */
function carHasSection (cid: CID): boolean {
  return cid.multihash.code !== IDENTITY_CODE
}

/** Byte length of `encodeBlockCar(cid, block)` for a block of `blockSize` bytes. */
export function blockCarLength (cid: CID, blockSize: number): number {
  let n = CarBufferWriter.headerLength({ roots: [cid] })
  if (carHasSection(cid)) {
    const section = cid.bytes.length + blockSize
    n += varintLength(section) + section
  }
  return n
}

/** A CARv1 with roots [cid] and, unless `cid` is an identity CID, one section: cid ‖ block. */
export function encodeBlockCar (cid: CID, block: Uint8Array): Uint8Array {
  const writer = CarBufferWriter.createWriter(new ArrayBuffer(blockCarLength(cid, block.length)), { roots: [cid] })
  if (carHasSection(cid)) writer.write({ cid, bytes: block })
  return writer.close()
}
