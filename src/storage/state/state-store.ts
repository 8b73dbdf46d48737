/**
 * The seam through which the loop persists shard records: write a batch, load all, close.
 * The default wraps an abstract-level database; a distributed backend implements the same
 * three calls without touching the loop.
 */
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import { decodeRecord, encodeRecord, type ShardRecord } from './record.js'
import type { ShardKey } from '../../base/types.js'

export interface StateStore {
  /** One atomic, durable write: the group commit of one drain. */
  writeBatch: (puts: Iterable<ShardRecord>, deletes: Iterable<ShardKey>) => Promise<void>
  /** Every record, in pages. Undecodable records are passed to `onBad` and skipped. */
  loadAll: (onBad: (key: string, err: Error) => void) => AsyncIterable<ShardRecord[]>
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyLevel = AbstractLevel<any, any, any>

export class LevelStateStore implements StateStore {
  private readonly records: AbstractSublevel<AnyLevel, any, string, string> // eslint-disable-line @typescript-eslint/no-explicit-any
  private readonly inRecords: { sublevel: AbstractSublevel<AnyLevel, any, string, string> } // eslint-disable-line @typescript-eslint/no-explicit-any

  constructor (private readonly db: AnyLevel, prefix = 'shards') {
    this.records = db.sublevel<string, string>(prefix, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    this.inRecords = { sublevel: this.records }
  }

  async writeBatch (puts: Iterable<ShardRecord>, deletes: Iterable<ShardKey>): Promise<void> {
    // A chained batch on the parent, sublevel as an option: a sublevel's own batch is re-issued
    // as an array batch on the parent, which clones and normalises every op again (a large
    // share of the durable acquire/release cycle in bench/loop).
    const batch = this.db.batch()
    for (const key of deletes) batch.del(key, this.inRecords)
    for (const r of puts) batch.put(r.key, encodeRecord(r), this.inRecords)
    if (batch.length === 0) {
      await batch.close()
      return
    }
    await batch.write({ sync: true } as object)
  }

  async * loadAll (onBad: (key: string, err: Error) => void): AsyncIterable<ShardRecord[]> {
    const it = this.records.iterator()
    let next: Promise<Array<[string, string]>> | undefined
    try {
      // The next page is read while this one is decoded.
      next = it.nextv(4096)
      for (;;) {
        const entries = await next
        if (entries.length === 0) break
        next = it.nextv(4096)
        const page: ShardRecord[] = []
        for (const [key, value] of entries) {
          try {
            page.push(decodeRecord(value))
          } catch (err) {
            onBad(key, err as Error)
          }
        }
        yield page
      }
    } finally {
      // A page may still be in flight if the consumer stopped early.
      await next?.catch(() => {})
      await it.close()
    }
  }
}
