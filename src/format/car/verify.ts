/**
 * Checking block data against the digest in its CID (`verifyHashes`).
 *
 * sha2-256 and sha2-512 (multiformats' hashers), blake2b-256 and identity are built in; other
 * hash functions come from the caller as multiformats `MultihashHasher`s (sync or async). A CID
 * whose hash function has no hasher cannot be verified, and that is an error
 * (UnsupportedHashError, ERR_UNSUPPORTED_HASH): silently accepting it would make "verified"
 * mean nothing for exactly the blocks an attacker chooses. A digest that does not match is
 * InvalidCarError (ERR_INVALID_CAR) with a HashMismatchError as its cause.
 */
import * as nodeCrypto from 'node:crypto'
import type { Hash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import type { MultihashHasher } from 'multiformats/hashes/interface'
import { copyBytes, invalidCar } from './layout.js'
import { HashMismatchError, UnsupportedHashError } from '../../base/errors.js'
import type { DAGStoreError } from '../../base/errors.js'
import { blake2b256 } from '../blake2b.js'
import { readVarint } from '../varint.js'
import type { VarintOut } from '../varint.js'
import { IDENTITY_CODE } from '../multihash.js'
import type { SectionHeader } from './sections.js'

/** What verification needs of a hasher; every multiformats `MultihashHasher` is one. */
export type BlockHasher = Pick<MultihashHasher, 'code' | 'digest'> & { readonly name?: string }

/** The hashers verification knows without being told. */
const BUILTIN_HASHERS: readonly BlockHasher[] = Object.freeze([sha256, sha512, blake2b256])

/**
 * Digests shorter than the hash function's output are truncations; below this many bytes an
 * accidental match is no longer negligible (one flipped length byte could make a 1-byte
 * "digest" that random data matches 1 time in 256). multiformats refuses to truncate below
 * 20 bytes too.
 */
const MIN_TRUNCATED_DIGEST = 20

/**
 * Multiformats' sha2 hashers wrap node:crypto in Node; recognised by identity so that data
 * split across chunks is hashed incrementally instead of being copied together first.
 */
const NODE_ALGORITHMS = new Map<BlockHasher, string>([[sha256, 'sha256'], [sha512, 'sha512']])

const EMPTY = new Uint8Array(0)

const { createHash } = nodeCrypto
// crypto.hash (one call, no Hash object: faster for small blocks) arrived in Node 20.12;
// looked up at run time so that older Node 20 releases still load this module.
const oneShot = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash
const hashOnce = oneShot ?? ((algorithm: string, data: Uint8Array): Buffer => createHash(algorithm).update(data).digest())

/** Longer CIDs (huge identity or hostile multihashes) are cut short in messages. */
const MAX_LABEL = 120

function cidLabel (cid: Uint8Array): string {
  let label: string
  try {
    label = CID.decode(copyBytes(cid)).toString()
  } catch {
    label = `CID 0x${Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('hex')}`
  }
  return label.length > MAX_LABEL ? `${label.slice(0, MAX_LABEL)}…` : label
}

/**
 * A block that does not hash to its CID: a bad CAR (indexing), or a bad origin (reads in place).
 * The CAR error carries a HashMismatchError as its `cause`, so that a caller that must tell a
 * damaged block from a damaged structure (verifyShard) can.
 */
function carMismatch (cid: Uint8Array, at: number): DAGStoreError {
  const what = `block hash mismatch for ${cidLabel(cid)}`
  return invalidCar(what, at, new HashMismatchError(`${what} at byte ${at}`))
}

function originMismatch (cid: Uint8Array, at: number): DAGStoreError {
  return new HashMismatchError(`block hash mismatch for ${cidLabel(cid)} read in place at byte ${at}`)
}

export interface HashVerifierOptions {
  /**
   * The error a digest mismatch throws: `ERR_INVALID_CAR` (default) while indexing, where the
   * CAR itself is bad; `ERR_HASH_MISMATCH` for blocks read in place from an origin that served
   * other bytes than the shard was indexed from.
   */
  mismatchCode?: 'ERR_INVALID_CAR' | 'ERR_HASH_MISMATCH'
}

function unverifiable (cid: Uint8Array, why: string, at: number): UnsupportedHashError {
  return new UnsupportedHashError(`cannot verify ${cidLabel(cid)}: ${why} at byte ${at}`)
}

/** Whether `computed` (the hash function's full output) matches `expected` from the CID. */
function digestMatches (computed: Uint8Array, expected: Uint8Array, cid: Uint8Array, at: number): boolean {
  const n = expected.length
  if (n > computed.length) return false
  if (n < computed.length && n < MIN_TRUNCATED_DIGEST) {
    throw unverifiable(cid, `its ${n}-byte digest is a truncation too short to check`, at)
  }
  for (let i = 0; i < n; i++) if (computed[i] !== expected[i]) return false
  return true
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Receives a block's data in pieces, then checks it. */
interface Sink {
  update: (piece: Uint8Array) => void
  finish: () => void | Promise<void>
}

/** A set of hashers by multihash code, and the checks built on them. */
export class HashVerifier {
  private readonly hashers = new Map<number, BlockHasher>()
  private readonly mismatch: (cid: Uint8Array, at: number) => DAGStoreError

  /** `hashers` add to the built-ins and replace a built-in with the same code. */
  constructor (hashers: Iterable<BlockHasher> = [], options: HashVerifierOptions = {}) {
    this.mismatch = options.mismatchCode === 'ERR_HASH_MISMATCH' ? originMismatch : carMismatch
    for (const h of BUILTIN_HASHERS) this.hashers.set(h.code, h)
    for (const h of hashers) {
      if (typeof h?.digest !== 'function' || !Number.isSafeInteger(h.code)) throw new TypeError('a hasher needs a numeric code and a digest function')
      this.hashers.set(h.code, h)
    }
  }

  private hasherFor (code: number, cid: Uint8Array, at: number): BlockHasher {
    const hasher = this.hashers.get(code)
    if (hasher === undefined) {
      throw unverifiable(cid, `no hasher for multihash code 0x${code.toString(16)}`, at)
    }
    return hasher
  }

  /**
   * Checks `data` against the multihash (`code`, `digest`) of `cid`; `at` is the section's file
   * offset for messages. Returns a promise only when the hasher is asynchronous. Views passed
   * in must stay unchanged until that promise settles.
   */
  check (code: number, digest: Uint8Array, data: Uint8Array, cid: Uint8Array, at: number): void | Promise<void> {
    if (code === IDENTITY_CODE) {
      if (!sameBytes(data, digest)) throw this.mismatch(cid, at)
      return
    }
    const hasher = this.hasherFor(code, cid, at)
    const algorithm = NODE_ALGORITHMS.get(hasher)
    if (algorithm !== undefined) {
      if (!digestMatches(hashOnce(algorithm, data, 'buffer'), digest, cid, at)) throw this.mismatch(cid, at)
      return
    }
    const result = hasher.digest(data)
    if (result instanceof Promise) {
      return result.then((d) => { if (!digestMatches(d.digest, digest, cid, at)) throw this.mismatch(cid, at) })
    }
    if (!digestMatches(result.digest, digest, cid, at)) throw this.mismatch(cid, at)
  }

  /**
   * A sink for a block of `length` bytes that arrives in pieces. `digest` and `cid` are kept,
   * so they must not be views into reused memory.
   */
  sink (code: number, digest: Uint8Array, length: number, cid: Uint8Array, at: number): Sink {
    if (code !== IDENTITY_CODE) {
      const algorithm = NODE_ALGORITHMS.get(this.hasherFor(code, cid, at))
      if (algorithm !== undefined) {
        const h: Hash = createHash(algorithm)
        return {
          update: (piece) => { h.update(piece) },
          finish: () => { if (!digestMatches(h.digest(), digest, cid, at)) throw this.mismatch(cid, at) }
        }
      }
    }
    const acc = new Uint8Array(length)
    let filled = 0
    return {
      update: (piece) => { acc.set(piece, filled); filled += piece.length },
      finish: () => this.check(code, digest, acc, cid, at)
    }
  }
}

interface Pending { sink: Sink, dataEnd: number }

/**
 * Verifies the blocks a SectionParser finds, fed the same chunks the parser is. The parser only
 * reports section headers; this keeps the current chunk so the visitor can find the block data
 * in it (no copy when a block lies in one chunk, which is nearly always) and collects a block
 * that continues into later chunks.
 *
 * Per chunk: `beginChunk(chunk, position)` before `parser.push(chunk)`, `onSection(h)` from the
 * parser's visitor, then `await settle()` for asynchronous hashers.
 */
export class SectionVerifier {
  private chunk: Uint8Array = EMPTY
  private chunkBase = 0
  private pending: Pending | undefined
  private waits: Array<Promise<void>> = []
  private readonly v: VarintOut = { value: 0, length: 0 }

  /**
   * @param baseOffset absolute file offset of payload position 0 (for messages)
   * @param limit payload-relative end of the payload (a CARv2's dataSize): data past it is the
   *   parser's to report as truncation, not ours as a mismatch
   */
  constructor (private readonly hashes: HashVerifier, private readonly baseOffset: number, private readonly limit = Number.POSITIVE_INFINITY) {}

  /** `chunk` holds payload bytes from payload-relative `position` on. */
  beginChunk (chunk: Uint8Array, position: number): void {
    this.chunk = chunk
    this.chunkBase = position
    const p = this.pending
    if (p === undefined) return
    const n = Math.min(chunk.length, p.dataEnd - position)
    if (n > 0) p.sink.update(chunk.subarray(0, n))
    if (position + chunk.length >= p.dataEnd) {
      this.pending = undefined
      this.keep(p.sink.finish())
    }
  }

  onSection (h: SectionHeader): void {
    const dataEnd = h.dataOffset + h.dataLength
    if (dataEnd > this.limit) return
    const bytes = h.bytes
    const v = this.v
    let p = h.mhStart
    // The parser has already read these varints, so they are complete and valid.
    readVarint(bytes, p, h.cidEnd, v)
    const code = v.value
    p += v.length
    readVarint(bytes, p, h.cidEnd, v)
    p += v.length
    const at = this.baseOffset + h.offset
    const start = h.dataOffset - this.chunkBase
    const end = start + h.dataLength
    const chunk = this.chunk
    if (end <= chunk.length) {
      // The carry buffer is reused: an asynchronous hasher must not see it change.
      const digest = h.transient ? copyBytes(bytes, p, h.cidEnd) : bytes.subarray(p, h.cidEnd)
      const cid = h.transient ? copyBytes(bytes, h.cidStart, h.cidEnd) : bytes.subarray(h.cidStart, h.cidEnd)
      this.keep(this.hashes.check(code, digest, chunk.subarray(start, end), cid, at))
      return
    }
    // Kept past this call: copies, since `bytes` may be the parser's reused carry buffer.
    const sink = this.hashes.sink(code, copyBytes(bytes, p, h.cidEnd), h.dataLength, copyBytes(bytes, h.cidStart, h.cidEnd), at)
    if (start < chunk.length) sink.update(chunk.subarray(start))
    this.pending = { sink, dataEnd }
  }

  /** Waits for asynchronous checks; throws the first failure. */
  async settle (): Promise<void> {
    if (this.waits.length === 0) return
    const waits = this.waits
    this.waits = []
    await Promise.all(waits)
  }

  private keep (result: void | Promise<void>): void {
    if (result instanceof Promise) {
      // Awaited in settle(); a no-op handler so a failure that settle() reports after an
      // earlier one is not also an unhandled rejection.
      result.catch(() => {})
      this.waits.push(result)
    }
  }
}
