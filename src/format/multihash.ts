/** Multihash code of the identity hash: a CID with it carries its block inline, as the digest. */
export const IDENTITY_CODE = 0x00
