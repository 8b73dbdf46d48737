import { CID } from 'multiformats/cid'
import { BlockNotFoundError, InvalidCarError } from '../../base/errors.js'
import type { ShardIndex } from '../../base/index-types.js'
import type { MountReader } from '../../base/mount-types.js'
import type { ReadBlockstore } from '../../base/types.js'
import { copyBytes, invalidCar } from '../../format/car/layout.js'
import { DEFAULT_MAX_SECTION_SIZE, parseSectionHead, readSections } from '../../format/car/sections.js'
import type { SectionHead } from '../../format/car/sections.js'
import { HashVerifier } from '../../format/car/verify.js'
import type { BlockHasher } from '../../format/car/verify.js'
import { IDENTITY_CODE } from '../../format/multihash.js'
import { LocatedBlockReader } from '../../format/car/located-block.js'
import type { SectionLengths } from '../../format/index/section-lengths.js'

/**
 * First read at a section: covers length varint + CID + the whole block for blocks up to ~4 KB,
 * so typical small blocks cost one positional read. A larger first read would only waste
 * bandwidth on big blocks; a smaller one saves nothing (a read's cost is the syscall).
 */
const DEFAULT_HEAD_READ_SIZE = 4096

export interface ShardBlockstoreInit {
  /** Random access is expected (`read`); without it every lookup streams from the section start. */
  reader: MountReader
  index: ShardIndex
  /** Absolute offset of the CARv1 payload (a CARv2's dataOffset, 0 for a CARv1). */
  payloadOffset: number
  /** A CARv2's dataSize: `allKeys` stops there and lookups never read past it. */
  payloadSize?: number | undefined
  /** Bytes read at a section's start by `get`; default 4096. */
  headReadSize?: number | undefined
  maxSectionSize?: number
  /**
   * Hash each block read by `get` and compare it with the CID's digest (InvalidCarError on a
   * mismatch); default false. The index only vouches that a section holds the asked-for CID;
   * this also vouches for the data, for CARs that were indexed without verifyHashes or that
   * may have changed since.
   */
  verifyHashes?: boolean
  /** Hashers besides the built-in sha2-256, sha2-512, blake2b-256 and identity, for verifyHashes. */
  hashers?: BlockHasher[]
  /**
   * Each block's section range (a shard read in place): a get is then ONE read of exactly its
   * section, and its data is always hash-verified (ERR_HASH_MISMATCH) before it is returned.
   */
  located?: SectionLengths | undefined
  /** Told of every error a read or check raised (before it is thrown): the accessor fails the shard on some. */
  onReadError?: ((err: unknown) => void) | undefined
}

/**
 * Blocks of one CAR, straight from its bytes: lookups go through the shard's index (by
 * multihash, so any codec matches) and read only the section asked for.
 * Identity CIDs are answered from the CID itself, never from the index.
 */
export class ShardBlockstore implements ReadBlockstore {
  private readonly reader: MountReader
  private readonly index: ShardIndex
  private readonly payloadOffset: number
  private readonly payloadSize: number | undefined
  private readonly headReadSize: number
  private readonly maxSectionSize: number
  private readonly readAt: (position: number, length: number) => Promise<Uint8Array>
  private readonly verifier: HashVerifier | undefined
  private readonly located: SectionLengths | undefined
  private readonly blockReader: LocatedBlockReader | undefined
  private readonly onReadError: ((err: unknown) => void) | undefined

  constructor (init: ShardBlockstoreInit) {
    if (init.verifyHashes === true) this.verifier = new HashVerifier(init.hashers)
    this.located = init.located
    if (init.located !== undefined) this.blockReader = new LocatedBlockReader(init.hashers !== undefined ? { hashers: init.hashers } : {})
    this.onReadError = init.onReadError
    this.reader = init.reader
    this.index = init.index
    this.payloadOffset = init.payloadOffset
    this.payloadSize = init.payloadSize
    this.headReadSize = init.headReadSize ?? DEFAULT_HEAD_READ_SIZE
    this.maxSectionSize = init.maxSectionSize ?? DEFAULT_MAX_SECTION_SIZE
    const reader = init.reader
    const read = reader.read
    const readNow = reader.readNow
    // A local file in the page cache answers at once: a thread-pool round trip per get costs
    // more than the read itself (docs/PERFORMANCE.md).
    this.readAt = read === undefined
      ? async (position, length) => await readFromStream(reader, position, length)
      : readNow === undefined
        ? read.bind(reader)
        : async (position, length) => readNow.call(reader, position, length) ?? await read.call(reader, position, length)
  }

  async has (cid: CID): Promise<boolean> {
    if (cid.multihash.code === IDENTITY_CODE) return true
    return this.index.get(cid.multihash.bytes) !== undefined
  }

  async get (cid: CID): Promise<Uint8Array> {
    // A copy, as a plain Uint8Array: the digest may be a view into a Buffer the caller owns.
    if (cid.multihash.code === IDENTITY_CODE) return new Uint8Array(cid.multihash.digest)
    if (this.located !== undefined) return await this.getLocated(cid, this.located)
    const offset = this.lookup(cid)
    const { head, bytes, at } = await this.readHead(cid, offset, this.headReadSize)
    const dataAt = at + head.headerLength
    const dataEnd = head.headerLength + head.dataLength
    let data: Uint8Array
    if (dataEnd <= bytes.length) {
      // Copied: the read buffer may be much larger than the block, or pooled.
      data = copyBytes(bytes, head.headerLength, dataEnd)
    } else {
      data = await this.readAt(dataAt, head.dataLength)
      if (data.length < head.dataLength) throw invalidCar(`truncated block data (${data.length} of ${head.dataLength} bytes)`, dataAt)
    }
    if (this.verifier !== undefined) {
      const mh = cid.multihash
      await this.verifier.check(mh.code, mh.digest, data, cid.bytes, at)
    }
    return data
  }

  private async getLocated (cid: CID, located: SectionLengths): Promise<Uint8Array> {
    const range = located.locate(cid.multihash.bytes)
    if (range === undefined) throw new BlockNotFoundError(`block not found: ${cid.toString()}`)
    const at = this.payloadOffset + range.offset
    try {
      const bytes = await this.readAt(at, range.length)
      return await (this.blockReader as LocatedBlockReader).read(cid, bytes, at)
    } catch (err) {
      this.onReadError?.(err)
      throw err
    }
  }

  async getSize (cid: CID): Promise<number> {
    if (cid.multihash.code === IDENTITY_CODE) return cid.multihash.digest.length
    const offset = this.lookup(cid)
    // Varint + a CID with a codec varint as long as the asked-for one's, plus slack.
    const { head } = await this.readHead(cid, offset, 32 + cid.bytes.length)
    return head.dataLength
  }

  /** The CIDs as written in the CAR, in CAR order, identity CIDs included. */
  async * allKeys (): AsyncIterable<CID> {
    const sections = readSections(this.reader.stream(this.payloadOffset), {
      skipHeader: true,
      limit: this.payloadSize,
      baseOffset: this.payloadOffset,
      maxSectionSize: this.maxSectionSize
    })
    for await (const section of sections) {
      try {
        // Copied so a yielded CID does not pin the whole stream chunk.
        yield CID.decode(copyBytes(section.cid))
      } catch (err) {
        if (err instanceof InvalidCarError) throw err
        throw invalidCar('malformed CID', this.payloadOffset + section.offset, err)
      }
    }
  }

  private lookup (cid: CID): number {
    const offset = this.index.get(cid.multihash.bytes)
    if (offset === undefined) throw new BlockNotFoundError(`block not found: ${cid.toString()}`)
    return offset
  }

  private async readHead (cid: CID, offset: number, readSize: number): Promise<{ head: SectionHead, bytes: Uint8Array, at: number }> {
    const at = this.payloadOffset + offset
    const cap = this.payloadSize === undefined ? Number.POSITIVE_INFINITY : Math.max(0, this.payloadSize - offset)
    const most = this.maxSectionSize + 9
    let size = Math.min(readSize, cap)
    for (;;) {
      const bytes = await this.readAt(at, size)
      const head = parseSectionHead(bytes, at, this.maxSectionSize)
      if (head !== undefined) {
        checkMultihash(bytes, head, cid, at)
        if (head.headerLength + head.dataLength > cap) {
          throw invalidCar('section runs past the end of the CARv2 payload', at)
        }
        return { head, bytes, at }
      }
      // Only a CID longer than the first read gets here (or data that ended).
      const next = Math.min(size * 4, cap, most)
      if (bytes.length < size || next <= size) throw invalidCar('truncated section', at)
      size = next
    }
  }
}

/** Guards against an index that does not belong to these bytes. */
function checkMultihash (bytes: Uint8Array, head: SectionHead, cid: CID, at: number): void {
  const want = cid.multihash.bytes
  const len = head.cidEnd - head.mhStart
  let same = len === want.length
  for (let k = 0; same && k < len; k++) same = bytes[head.mhStart + k] === want[k]
  if (!same) throw invalidCar(`index entry for ${cid.toString()} points at a section holding a different block`, at)
}

/** Positional read emulated over `stream(position)`, for readers without `read`. */
async function readFromStream (reader: MountReader, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length)
  let filled = 0
  if (length === 0) return out
  for await (const chunk of reader.stream(position)) {
    const n = Math.min(chunk.length, length - filled)
    out.set(chunk.subarray(0, n), filled)
    filled += n
    if (filled === length) break
  }
  return filled === length ? out : out.subarray(0, filled)
}
