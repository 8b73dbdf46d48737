/**
 * Top-level index in LevelDB: one key per (multihash, shard) pair, so adding a shard is a
 * blind batch of puts (no read-modify-write) and removing it is a batch of deletes.
 *
 * Key layout: varint(len(multihash)) ‖ multihash ‖ utf8(shard key). Valid UTF-8 never holds
 * the byte 0xFF, so every key of one multihash sorts in [prefix, prefix‖0xFF).
 */
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import type { ShardKey } from '../types.js'
import type { TopLevelIndex } from './types.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyLevel = AbstractLevel<any, any, any>
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const BATCH = 4096

function prefixOf (multihash: Uint8Array): Uint8Array {
  const lenBytes: number[] = []
  let n = multihash.length
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    lenBytes.push(b)
  } while (n !== 0)
  const out = new Uint8Array(lenBytes.length + multihash.length)
  out.set(lenBytes, 0)
  out.set(multihash, lenBytes.length)
  return out
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

export class LevelTopLevelIndex implements TopLevelIndex {
  private readonly db: AbstractSublevel<AnyLevel, any, Uint8Array, Uint8Array> // eslint-disable-line @typescript-eslint/no-explicit-any
  private readonly shardsDb: AbstractSublevel<AnyLevel, any, string, string> // eslint-disable-line @typescript-eslint/no-explicit-any

  constructor (db: AnyLevel, prefix = 'tli') {
    this.db = db.sublevel<Uint8Array, Uint8Array>(prefix, { keyEncoding: 'view', valueEncoding: 'view' })
    // Which multihashes each shard added, so removeShard works without the caller's list.
    this.shardsDb = db.sublevel<string, string>(`${prefix}-shards`, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  }

  async addMultihashesForShard (key: ShardKey, multihashes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const shardBytes = encoder.encode(key)
    const empty = new Uint8Array(0)
    let batch = this.db.batch()
    let count = 0
    const chunks: Uint8Array[] = []
    for await (const mh of multihashes) {
      const prefix = prefixOf(mh)
      chunks.push(prefix)
      batch.put(concat(prefix, shardBytes), empty)
      if (++count % BATCH === 0) {
        await batch.write()
        batch = this.db.batch()
      }
    }
    await batch.write()
    await this.shardsDb.put(key, Buffer.concat(chunks).toString('base64'))
  }

  async removeShard (key: ShardKey, multihashes?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const shardBytes = encoder.encode(key)
    let batch = this.db.batch()
    let count = 0
    const remove = async (prefix: Uint8Array): Promise<void> => {
      batch.del(concat(prefix, shardBytes))
      if (++count % BATCH === 0) {
        await batch.write()
        batch = this.db.batch()
      }
    }
    if (multihashes !== undefined) {
      for await (const mh of multihashes) await remove(prefixOf(mh))
    }
    const recorded = await this.shardsDb.get(key)
    if (recorded !== undefined) {
      const bytes = Buffer.from(recorded, 'base64')
      for (let at = 0; at < bytes.length;) {
        let len = 0
        let shift = 0
        let used = 0
        for (;;) {
          const b = bytes[at + used++]
          len |= (b & 0x7f) << shift
          if ((b & 0x80) === 0) break
          shift += 7
        }
        await remove(bytes.subarray(at, at + used + len))
        at += used + len
      }
    }
    await batch.write()
    await this.shardsDb.del(key)
  }

  async shardsForMultihash (multihash: Uint8Array): Promise<ShardKey[]> {
    const prefix = prefixOf(multihash)
    const out: ShardKey[] = []
    for await (const k of this.db.keys({ gte: prefix, lt: concat(prefix, Uint8Array.of(0xff)) })) {
      out.push(decoder.decode(k.subarray(prefix.length)))
    }
    return out
  }
}
