/**
 * The seam through which the loop persists shard records: write a batch, load all, and the
 * tombstones of destroys whose cleanup has not finished. The default wraps an abstract-level
 * database; another backend (a SQL table pair, say) implements the same calls without touching
 * the loop.
 */
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import { decodeRecord, encodeRecord, type ShardRecord } from './record.js'
import type { ShardKey } from '../../base/types.js'

/** What a batch did not write although it committed. */
export interface BatchOutcome {
  /**
   * Keys whose put was refused because the record belongs to someone else: another node of a
   * shared database holds the key (a register that lost the race for it). The rest of the
   * batch committed.
   */
  refused: ShardKey[]
}

export interface StateStore {
  /**
   * One atomic, durable write: the group commit of one drain. `tombstones` sets (true) or
   * clears (false) the tombstone of a key, kept apart from the records: a destroy deletes the
   * record and sets the tombstone in one batch, and clears it once its cleanup is done. A store
   * whose keys are shared with others (the PostgreSQL backend) reports the puts it refused.
   */
  writeBatch: (puts: Iterable<ShardRecord>, deletes: Iterable<ShardKey>, tombstones?: Iterable<[ShardKey, boolean]>) => Promise<BatchOutcome | void>
  /** Every record, in pages. Undecodable records are passed to `onBad` and skipped. */
  loadAll: (onBad: (key: string, err: Error) => void) => AsyncIterable<ShardRecord[]>
  /** The keys whose tombstone is set: destroys a restart must finish. */
  loadTombstones: () => AsyncIterable<ShardKey>
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyLevel = AbstractLevel<any, any, any>

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Sub = AbstractSublevel<AnyLevel, any, string, string>

/**
 * Options of every put and del: keys and values are strings. The encodings are inherited, not
 * own properties, so abstract-level's per-op spread of the options copies nothing (see
 * LevelTopLevelIndex, which writes through the same chained batch code).
 */
const UTF8: { keyEncoding: 'utf8', valueEncoding: 'utf8' } = Object.create(Object.freeze({ keyEncoding: 'utf8', valueEncoding: 'utf8' }))

export class LevelStateStore implements StateStore {
  private readonly records: Sub
  private readonly tombstones: Sub

  constructor (db: AnyLevel, prefix = 'shards') {
    this.records = db.sublevel<string, string>(prefix, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    // A sibling, not a child: a child sublevel's keys would sit inside the records' range.
    this.tombstones = db.sublevel<string, string>(`${prefix}-destroying`, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  }

  async writeBatch (puts: Iterable<ShardRecord>, deletes: Iterable<ShardKey>, tombstones: Iterable<[ShardKey, boolean]> = []): Promise<void> {
    // A chained batch on the root database with the sublevels' prefixes already in the keys: a
    // sublevel's own batch is re-issued as an array batch on the parent, which clones and
    // normalises every op again. Not the `sublevel` option either: abstract-level resets it on
    // each op, and the object shapes that leaves behind slowed every chained put of the process
    // (the top-level index's too).
    const records = this.records
    const tombs = this.tombstones
    const batch = records.db.batch()
    for (const key of deletes) batch.del(records.prefixKey(key, 'utf8', false), UTF8)
    for (const r of puts) batch.put(records.prefixKey(r.key, 'utf8', false), encodeRecord(r), UTF8)
    for (const [key, set] of tombstones) {
      if (set) batch.put(tombs.prefixKey(key, 'utf8', false), '', UTF8)
      else batch.del(tombs.prefixKey(key, 'utf8', false), UTF8)
    }
    if (batch.length === 0) {
      await batch.close()
      return
    }
    await batch.write({ sync: true } as object)
  }

  async * loadAll (onBad: (key: string, err: Error) => void): AsyncIterable<ShardRecord[]> {
    // Values only: a record holds its key, and a million key strings made for nothing were a
    // fifth of reading the records. The keys of the rare undecodable ones are found afterwards.
    const it = this.records.values()
    const bad: Array<{ at: number, err: Error }> = []
    let at = 0
    let next: Promise<string[]> | undefined
    try {
      // The next page is read while this one is decoded.
      next = it.nextv(4096)
      for (;;) {
        const values = await next
        if (values.length === 0) break
        next = it.nextv(4096)
        const page: ShardRecord[] = []
        for (const value of values) {
          try {
            page.push(decodeRecord(value))
          } catch (err) {
            bad.push({ at, err: err as Error })
          }
          at++
        }
        yield page
      }
    } finally {
      // A page may still be in flight if the consumer stopped early.
      await next?.catch(() => {})
      await it.close()
    }
    if (bad.length > 0) await this.reportBad(bad, onBad)
  }

  /** The keys at the positions of `bad` in key order (nothing is written while a start loads). */
  private async reportBad (bad: Array<{ at: number, err: Error }>, onBad: (key: string, err: Error) => void): Promise<void> {
    let at = 0
    let i = 0
    for await (const key of this.records.keys()) {
      const b = bad[i]
      if (b === undefined) break
      if (at++ !== b.at) continue
      onBad(key, b.err)
      i++
    }
  }

  async * loadTombstones (): AsyncIterable<ShardKey> {
    for await (const key of this.tombstones.keys()) yield key
  }
}
