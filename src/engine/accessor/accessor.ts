/**
 * A ref-counted handle on one shard: blocks by CID from the shard's own CAR bytes.
 * close() releases the reference exactly once, however often it is called.
 */
import type { ReadBlockstore, ShardAccessor, ShardKey } from '../../base/types.js'
import type { ReaderLease } from './reader-pool.js'
import type { ShardIndex } from '../../base/index-types.js'
import { ShardBlockstore } from './blockstore.js'
import type { PayloadSpan } from '../shard/shard.js'

export class ShardAccessorImpl implements ShardAccessor {
  private store: ShardBlockstore | undefined
  private closing: Promise<void> | undefined

  constructor (
    readonly key: ShardKey,
    /** A lease on the shard's pooled reader: closing it returns the reader to the pool. */
    private readonly source: ReaderLease,
    private readonly index: ShardIndex,
    private readonly payload: PayloadSpan,
    private readonly release: () => Promise<void>
  ) {}

  blockstore (): ReadBlockstore {
    this.store ??= new ShardBlockstore({ reader: this.source, index: this.index, payloadOffset: this.payload.offset, payloadSize: this.payload.size })
    return this.store
  }

  reader (): AsyncIterable<Uint8Array> {
    return this.source.stream(0)
  }

  // Not async: one promise per close, the release's own (a cycle on an available shard is the hot path).
  close (): Promise<void> {
    if (this.closing === undefined) {
      this.source.closeNow()
      this.closing = this.release()
    }
    return this.closing
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.close()
  }
}
