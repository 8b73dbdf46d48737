/**
 * Top-level index in LevelDB: one key per (multihash, shard) pair, so adding a shard is a
 * blind batch of puts (no read-modify-write, nothing grows per hot multihash) and removing
 * it is a batch of deletes.
 *
 * Key layout: varint(len(multihash)) ‖ multihash ‖ utf8(shard key), value empty. Valid UTF-8
 * never holds the byte 0xFF, so every key of one multihash sorts in [prefix, prefix‖0xFF),
 * and the length prefix keeps a multihash from matching another it is a prefix of.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import type { ShardKey } from '../../base/types.js'
import type { AddMultihashesOptions, TopLevelIndex } from '../../base/index-types.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyLevel = AbstractLevel<any, any, any>
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Sub = AbstractSublevel<AnyLevel, any, Uint8Array, Uint8Array>
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const EMPTY = new Uint8Array(0)
/** Ops per LevelDB batch: bounds memory for shards with millions of blocks. */
const BATCH = 8192
/** Bytes of one slab that KeyBuilder cuts keys from. */
const SLAB = 64 * 1024
/**
 * Options of every put and del: keys arrive prefixed and values are empty, so both pass
 * through as they are. The encodings are inherited, not own properties: abstract-level
 * spreads each op's options into a new object, and with own properties there V8 takes a slow
 * path for that spread on every op (most of the top-level write's time when measured).
 */
const VIEW: { keyEncoding: 'view', valueEncoding: 'view' } = Object.create(Object.freeze({ keyEncoding: 'view', valueEncoding: 'view' }))
type RootBatch = ReturnType<AnyLevel['batch']>
/** Batches built ahead while an add waits for its `after`: bounds the memory a huge shard holds. */
const MAX_HELD = 8
/** Ops between turns of the event loop while an add waits for its `after` (a divisor of BATCH). */
const YIELD_EVERY = 1024

function keyFor (multihash: Uint8Array, shard: Uint8Array | undefined): Uint8Array {
  let n = multihash.length
  let lenBytes = 1
  while (n >= 0x80) { n >>>= 7; lenBytes++ }
  const out = new Uint8Array(lenBytes + multihash.length + (shard?.length ?? 0))
  n = multihash.length
  let i = 0
  while (n >= 0x80) { out[i++] = (n & 0x7f) | 0x80; n >>>= 7 }
  out[i++] = n
  out.set(multihash, i)
  if (shard !== undefined) out.set(shard, i + multihash.length)
  return out
}

/**
 * Stored keys of one shard, each `prefix ‖ varint(len(multihash)) ‖ multihash ‖ shard`, cut
 * from shared slabs: one allocation per slab instead of one per key.
 */
class KeyBuilder {
  private slab = new Uint8Array(0)
  private used = 0

  constructor (private readonly prefix: Uint8Array, private readonly shard: Uint8Array) {}

  next (multihash: Uint8Array): Uint8Array {
    const { prefix, shard } = this
    let n = multihash.length
    let lenBytes = 1
    while (n >= 0x80) { n >>>= 7; lenBytes++ }
    const size = prefix.length + lenBytes + multihash.length + shard.length
    if (this.used + size > this.slab.length) {
      this.slab = new Uint8Array(Math.max(SLAB, size))
      this.used = 0
    }
    const start = this.used
    const out = this.slab
    out.set(prefix, start)
    let i = start + prefix.length
    n = multihash.length
    while (n >= 0x80) { out[i++] = (n & 0x7f) | 0x80; n >>>= 7 }
    out[i++] = n
    out.set(multihash, i)
    out.set(shard, i + multihash.length)
    this.used = start + size
    return out.subarray(start, start + size)
  }
}

/** Where the shard key starts in a stored key (after the length varint and the multihash). */
function shardStart (key: Uint8Array): number {
  let len = 0
  let shift = 0
  let i = 0
  for (;;) {
    const b = key[i++]
    if (b === undefined) throw new RangeError('truncated top-level index key')
    len += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) break
    shift += 7
  }
  return i + len
}

export class LevelTopLevelIndex implements TopLevelIndex {
  private readonly pairs: Sub

  constructor (db: AnyLevel, prefix = 'tli') {
    this.pairs = db.sublevel<Uint8Array, Uint8Array>(prefix, { keyEncoding: 'view', valueEncoding: 'view' })
  }

  async addMultihashesForShard (key: ShardKey, multihashes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options?: AddMultihashesOptions): Promise<void> {
    await this.write(key, multihashes, (batch, k) => { batch.put(k, EMPTY, VIEW) }, options?.after)
  }

  /**
   * Removes the shard's pairs. With `multihashes` (the store passes the shard's full index)
   * each pair is deleted directly; without, the whole index is scanned for the shard — correct
   * but proportional to the index, for when the shard's full index is already gone.
   */
  async removeShard (key: ShardKey, multihashes?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    if (multihashes !== undefined) {
      await this.write(key, multihashes, (batch, k) => { batch.del(k, VIEW) })
      return
    }
    const shard = encoder.encode(key)
    if (this.pairs.status !== 'open') await this.pairs.open()
    let batch = this.pairs.batch()
    for await (const k of this.pairs.keys()) {
      const start = shardStart(k)
      if (k.length - start !== shard.length || !shard.every((b, j) => k[start + j] === b)) continue
      batch.del(k)
      if (batch.length >= BATCH) {
        await batch.write()
        batch = this.pairs.batch()
      }
    }
    await batch.write()
  }

  async shardsForMultihash (multihash: Uint8Array): Promise<ShardKey[]> {
    const prefix = keyFor(multihash, undefined)
    const upper = new Uint8Array(prefix.length + 1)
    upper.set(prefix)
    upper[prefix.length] = 0xff
    // all() fetches the range in one native call; a for-await costs a round-trip per key.
    const keys = await this.pairs.keys({ gte: prefix, lt: upper }).all()
    return keys.map((k) => decoder.decode(k.subarray(prefix.length)))
  }

  private async write (key: ShardKey, multihashes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    op: (batch: RootBatch, k: Uint8Array) => void, after?: Promise<unknown>): Promise<void> {
    const shard = encoder.encode(key)
    const pairs = this.pairs
    // A sublevel made on an open database opens asynchronously, and chained batches (unlike
    // reads and array batches) do not wait for it.
    if (pairs.status !== 'open') await pairs.open()
    // A chained batch on the root database with the sublevel's prefix already in each key: a
    // sublevel's own chained batch collects its ops and re-issues them as an array batch on
    // the parent, which clones and normalises every op, and the native array batch then reads
    // each op object's properties one by one.
    const root = pairs.db
    const keys = new KeyBuilder(pairs.prefixKey(EMPTY, 'view', false), shard)
    let batch = root.batch()
    // Batches filled before `after` fulfils wait here, unwritten (a bounded number of them).
    let held: RootBatch[] = []
    let gateOpen = after === undefined
    after?.then(() => { gateOpen = true }, () => {})
    // Once the gate is open, one batch is written (on LevelDB's thread) while the next is
    // built; the pairs are independent, so their order does not matter, and all are written
    // before this returns.
    let writing: Promise<unknown> = Promise.resolve()
    const openGate = async (): Promise<void> => {
      await after
      gateOpen = true
      const ready = held
      held = []
      // Written at once: LevelDB groups concurrent writes into one log write.
      writing = Promise.all(ready.map(async (b) => { await b.write() }))
      writing.catch(() => {})
    }
    const flush = async (): Promise<void> => {
      if (!gateOpen || held.length > 0) {
        held.push(batch)
        batch = root.batch()
        if (held.length >= MAX_HELD) await openGate()
        return
      }
      await writing
      writing = batch.write()
      // Handled when awaited; until then a failure must not count as unhandled.
      writing.catch(() => {})
      batch = root.batch()
    }
    // While the gate is closed, a turn of the event loop now and then: the write it waits for
    // needs its I/O callbacks run, and they would otherwise wait for the whole shard.
    const pause = async (): Promise<void> => {
      if (batch.length >= BATCH) await flush()
      else if (!gateOpen) await yieldToLoop()
    }
    try {
      // A sync iterable (the store passes the full index) is walked without `for await`, which
      // would cost a promise and a microtask per multihash.
      if (Symbol.iterator in multihashes) {
        for (const mh of multihashes) {
          op(batch, keys.next(mh))
          if (batch.length % YIELD_EVERY === 0) await pause()
        }
      } else {
        for await (const mh of multihashes) {
          op(batch, keys.next(mh))
          if (batch.length % YIELD_EVERY === 0) await pause()
        }
      }
      if (held.length > 0 || !gateOpen) await openGate()
    } catch (err) {
      await writing.catch(() => {})
      for (const b of held) await b.close()
      await batch.close()
      throw err
    }
    await writing
    await batch.write()
  }
}
