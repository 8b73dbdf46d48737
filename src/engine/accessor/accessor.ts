/**
 * A ref-counted handle on one shard: blocks by CID from the shard's own CAR bytes.
 * close() releases the reference exactly once, however often it is called.
 */
import type { ReadBlockstore, ShardAccessor, ShardKey } from '../../base/types.js'
import type { ShardIndex } from '../../base/index-types.js'
import { ShardBlockstore } from './blockstore.js'
import type { PayloadSpan } from '../shard/shard.js'
import type { ReaderLease } from './reader-pool.js'
import type { SectionLengths } from '../../format/index/section-lengths.js'
import { codeOf } from '../../base/errors/inspect.js'
import { CODE } from '../../base/errors/codes.js'

/** A shard read in place (docs/REMOTE.md): how its blocks are located, and how it fails. */
export interface InPlaceReads {
  /** Each block's section range, so a get is one ranged read of exactly its bytes. */
  readonly lengths: SectionLengths
  /** Fails the shard: the origin's bytes are no longer the ones it was indexed from. */
  readonly fail: (error: Error) => void
}

/** Errors saying the origin changed under a shard read in place: the shard fails with them. */
const ORIGIN_CHANGED: ReadonlySet<string> = new Set([CODE.ERR_HASH_MISMATCH, CODE.ERR_HTTP_CHANGED, CODE.ERR_HTTP_RANGE, CODE.ERR_INVALID_CAR])

export class ShardAccessorImpl implements ShardAccessor {
  private store: ShardBlockstore | undefined
  private closing: Promise<void> | undefined

  constructor (
    readonly key: ShardKey,
    /** A lease on the shard's pooled reader: closing it returns the reader to the pool. */
    private readonly source: ReaderLease,
    private readonly index: ShardIndex,
    private readonly payload: PayloadSpan,
    private readonly release: () => Promise<void>,
    private readonly inPlace?: InPlaceReads
  ) {}

  blockstore (): ReadBlockstore {
    if (this.store === undefined) {
      const inPlace = this.inPlace
      this.store = new ShardBlockstore({
        reader: this.source,
        index: this.index,
        payloadOffset: this.payload.offset,
        payloadSize: this.payload.size,
        located: inPlace?.lengths,
        onReadError: inPlace === undefined ? undefined : (err) => { this.failIfChanged(err) }
      })
    }
    return this.store
  }

  reader (start = 0): AsyncIterable<Uint8Array> {
    const stream = this.source.stream(start)
    return this.inPlace === undefined ? stream : this.watched(stream)
  }

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

  private async * watched (stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    try {
      yield * stream
    } catch (err) {
      this.failIfChanged(err)
      throw err
    }
  }

  private failIfChanged (err: unknown): void {
    const code = codeOf(err)
    if (code !== undefined && ORIGIN_CHANGED.has(code)) this.inPlace?.fail(err as Error)
  }
}
