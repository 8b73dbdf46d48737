/**
 * The listing cursor of GET /shards and `dagstore ls`: base64url (no padding) of the UTF-8 of
 * the last key a page examined. Opaque to clients; checked here so that a cursor nobody handed
 * out is a 400, not a silently different page.
 */
import { CODE } from '../base/errors/codes.js'
import { DAGStoreError } from '../base/errors.js'
import { validateKey } from '../base/keys.js'
import type { ShardKey } from '../base/types.js'

const BASE64URL = /^[A-Za-z0-9_-]+$/
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export function encodeCursor (key: ShardKey): string {
  return Buffer.from(key, 'utf8').toString('base64url')
}

/** The key a cursor stands for; a DAGStoreError ERR_INVALID_CURSOR for anything else. */
export function decodeCursor (cursor: string): ShardKey {
  const invalid = (why: string, cause?: unknown): DAGStoreError =>
    new DAGStoreError(`invalid cursor ${JSON.stringify(cursor.slice(0, 100))}: ${why}`, CODE.ERR_INVALID_CURSOR, { cause })
  if (!BASE64URL.test(cursor)) throw invalid('not base64url')
  const bytes = Buffer.from(cursor, 'base64url')
  // Decoding is lenient (trailing bits, stray length): only the canonical form is ours.
  if (bytes.toString('base64url') !== cursor) throw invalid('not canonical base64url')
  try {
    const key = UTF8.decode(bytes)
    validateKey(key)
    return key
  } catch (err) {
    throw invalid('not a shard key', err)
  }
}
