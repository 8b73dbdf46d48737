/**
 * Big CARv1 files for the benchmarks (bench/index, bench/remote): random raw blocks with
 * sha2-256 CIDs, sections written directly. Going through @ipld/car's CarWriter would take
 * longer than some of the measurements themselves at hundreds of MB.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { createHash, randomFillSync } from 'node:crypto'
import { encodeVarint } from '../src/format/varint.js'

const RAW = 0x55
const SHA2_256 = 0x12
const OUT_BYTES = 8 * 1024 * 1024

/**
 * Writes a CARv1 of `count` random raw blocks, block `i` being `sizeOf(i)` bytes, with the first
 * block's CID as the root; returns the file's size. `onBlock` sees every block's CID bytes and
 * data; both buffers are reused afterwards, so copy what you keep.
 */
export function writeCarV1 (path: string, count: number, sizeOf: (i: number) => number,
  onBlock?: (i: number, cid: Uint8Array, data: Uint8Array) => void): number {
  const fd = openSync(path, 'w')
  try {
    const out = Buffer.allocUnsafe(OUT_BYTES)
    let used = 0
    let total = 0
    const flush = (): void => {
      let p = 0
      while (p < used) p += writeSync(fd, out, p, used - p)
      total += used
      used = 0
    }
    let scratch = Buffer.allocUnsafe(0)
    const cid = new Uint8Array(36)
    cid.set([0x01, RAW, SHA2_256, 0x20], 0)
    for (let i = 0; i < count; i++) {
      const size = sizeOf(i)
      if (!Number.isSafeInteger(size) || size < 0 || size + 64 > out.length) throw new RangeError(`block size ${size} out of range`)
      if (scratch.length < size) scratch = Buffer.allocUnsafe(size)
      const data = scratch.subarray(0, size)
      randomFillSync(data)
      cid.set(createHash('sha256').update(data).digest(), 4)
      onBlock?.(i, cid, data)
      // Header {roots: [<first block's CID>], version: 1}: written once the first block exists.
      if (i === 0) {
        const body = Buffer.concat([Buffer.from([0xa2, 0x65]), Buffer.from('roots'), Buffer.from([0x81, 0xd8, 0x2a, 0x58, 37, 0x00]),
          cid, Buffer.from([0x67]), Buffer.from('version'), Buffer.from([0x01])])
        used += encodeVarint(body.length, out, used)
        body.copy(out, used)
        used += body.length
      }
      if (used + size + 64 > out.length) flush()
      used += encodeVarint(cid.length + size, out, used)
      out.set(cid, used)
      used += cid.length
      data.copy(out, used)
      used += size
    }
    flush()
    // Written back now, so the kernel's writeback does not run during the measurements.
    fsyncSync(fd)
    return total
  } finally {
    closeSync(fd)
  }
}
