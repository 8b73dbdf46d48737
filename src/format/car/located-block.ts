/**
 * A block out of the bytes of its located section (SectionLengths.locate): what a random get of
 * a shard read in place does with the one ranged read it made. Nothing read in place is
 * trusted: the index may lie (an embedded index is adopted without scanning the payload) and
 * the origin may change, so the section must hold the asked-for CID and its data must hash to
 * it before a byte is returned.
 */
import type { CID } from 'multiformats/cid'
import { IDENTITY_CODE } from '../multihash.js'
import { copyBytes, invalidCar } from './layout.js'
import { DEFAULT_MAX_SECTION_SIZE, parseSectionHead } from './sections.js'
import { HashVerifier } from './verify.js'
import type { BlockHasher } from './verify.js'

export interface LocatedBlockOptions {
  /** Hashers besides the built-in sha2-256, sha2-512, blake2b-256 and identity. */
  hashers?: BlockHasher[]
  /** Upper bound on one section's declared length; default 32 MiB. */
  maxSectionSize?: number
}

export class LocatedBlockReader {
  private readonly verifier: HashVerifier
  private readonly maxSectionSize: number

  constructor (options: LocatedBlockOptions = {}) {
    this.verifier = new HashVerifier(options.hashers, { mismatchCode: 'ERR_HASH_MISMATCH' })
    this.maxSectionSize = options.maxSectionSize ?? DEFAULT_MAX_SECTION_SIZE
  }

  /**
   * The data of `cid`'s block from `bytes`, the section's bytes from its start (its located
   * range; more is ignored), `at` being the section's absolute file offset (for messages).
   * Returns a copy: `bytes` may be a shared cache's memory.
   *
   * @throws InvalidCarError (ERR_INVALID_CAR) when the bytes are no section of that CID or the
   *   section runs past them: the index does not describe this CAR
   * @throws HashMismatchError (ERR_HASH_MISMATCH) when the data does not hash to the CID
   * @throws UnsupportedHashError (ERR_UNSUPPORTED_HASH) when the CID's hash function has no hasher
   */
  async read (cid: CID, bytes: Uint8Array, at: number): Promise<Uint8Array> {
    const mh = cid.multihash
    if (mh.code === IDENTITY_CODE) return new Uint8Array(mh.digest)
    const head = parseSectionHead(bytes, at, this.maxSectionSize)
    if (head === undefined) throw invalidCar(`located range of ${bytes.length} bytes ends inside the section's CID`, at)
    const want = mh.bytes
    const len = head.cidEnd - head.mhStart
    let same = len === want.length
    for (let k = 0; same && k < len; k++) same = bytes[head.mhStart + k] === want[k]
    if (!same) throw invalidCar(`index entry for ${cid.toString()} points at a section holding a different block`, at)
    const end = head.headerLength + head.dataLength
    if (end > bytes.length) {
      throw invalidCar(`section of ${end} bytes runs past its located range of ${bytes.length} (the index's next offset)`, at)
    }
    const data = copyBytes(bytes, head.headerLength, end)
    await this.verifier.check(mh.code, mh.digest, data, cid.bytes, at)
    return data
  }
}
