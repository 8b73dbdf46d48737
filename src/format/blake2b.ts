/**
 * blake2b-256 (multihash code 0xb220), the hash function of Filecoin's CIDs, as a built-in
 * hasher for hash verification.
 *
 * From hash-wasm (WebAssembly): node:crypto has only blake2b-512, whose output is not a prefix
 * of blake2b-256's (the length is a parameter of the hash), and the pure-JavaScript
 * implementations (blakejs, behind @multiformats/blake2, and @noble/hashes) hash an order of
 * magnitude slower, slower than data arrives over a network. The WebAssembly module is
 * loaded on first use, so stores that never meet a blake2b CID never load it.
 */
import type { IHasher } from 'hash-wasm'
import { create as createDigest, type Digest } from 'multiformats/hashes/digest'

export const BLAKE2B_256_CODE = 0xb220

let instance: IHasher | undefined
let loading: Promise<IHasher> | undefined

async function load (): Promise<IHasher> {
  loading ??= import('hash-wasm').then(async ({ createBLAKE2b }) => {
    instance = await createBLAKE2b(256)
    return instance
  })
  return await loading
}

function digestWith (hasher: IHasher, data: Uint8Array): Digest<typeof BLAKE2B_256_CODE, number> {
  // One instance serves every caller: init, update and digest run without a pause between them.
  hasher.init()
  hasher.update(data)
  return createDigest(BLAKE2B_256_CODE, hasher.digest('binary'))
}

/** A multiformats-style hasher: synchronous once the WebAssembly module is loaded, a promise before. */
export const blake2b256 = Object.freeze({
  name: 'blake2b-256',
  code: BLAKE2B_256_CODE,
  digest (data: Uint8Array): Digest<typeof BLAKE2B_256_CODE, number> | Promise<Digest<typeof BLAKE2B_256_CODE, number>> {
    if (instance !== undefined) return digestWith(instance, data)
    return load().then((hasher) => digestWith(hasher, data))
  }
})
