import { InvalidShardKeyError } from './errors.js'

const MAX_KEY_BYTES = 1024

/** Shard keys: 1..1024 UTF-8 bytes, no NUL, well-formed Unicode. */
export function validateKey (key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidShardKeyError(`shard key must be a string, got ${typeof key}`)
  if (key.length === 0) throw new InvalidShardKeyError('shard key must not be empty')
  if (key.includes('\0')) throw new InvalidShardKeyError('shard key must not contain NUL')
  if (!key.isWellFormed()) throw new InvalidShardKeyError('shard key must be well-formed Unicode (no lone surrogates)')
  const bytes = Buffer.byteLength(key, 'utf8')
  if (bytes > MAX_KEY_BYTES) throw new InvalidShardKeyError(`shard key is ${bytes} bytes; at most ${MAX_KEY_BYTES}`)
}
