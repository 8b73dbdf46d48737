/**
 * The seam through which the loop persists shard records: write a batch, load all, close.
 * The default wraps an abstract-level database; a distributed backend implements the same
 * three calls without touching the loop.
 */
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import { decodeRecord, encodeRecord, type ShardRecord } from './record.js'
import type { ShardKey } from '../types.js'

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

  constructor (db: AnyLevel, prefix = 'shards') {
    this.records = db.sublevel<string, string>(prefix, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  }

  async writeBatch (puts: Iterable<ShardRecord>, deletes: Iterable<ShardKey>): Promise<void> {
    const ops: Array<{ type: 'put', key: string, value: string } | { type: 'del', key: string }> = []
    for (const key of deletes) ops.push({ type: 'del', key })
    for (const r of puts) ops.push({ type: 'put', key: r.key, value: encodeRecord(r) })
    if (ops.length === 0) return
    await this.records.batch(ops, { sync: true } as object)
  }

  async * loadAll (onBad: (key: string, err: Error) => void): AsyncIterable<ShardRecord[]> {
    const it = this.records.iterator()
    try {
      for (;;) {
        const entries = await it.nextv(4096)
        if (entries.length === 0) break
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
      await it.close()
    }
  }
}
