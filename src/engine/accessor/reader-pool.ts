/**
 * Open shard readers, shared by every accessor of a shard and kept open (up to a bound) after
 * the last one closes, together with the shard's loaded index.
 *
 * Opening and closing a file per acquire costs three threadpool round-trips that queue behind
 * the state DB's group commits; a cycle on an available shard is the hot path (docs/CONTRACT.md), so
 * a reader is reused while its file is still linked into the filesystem: a file deleted, or
 * replaced by a rename over its path, is reopened (or re-fetched) rather than served from a
 * stale descriptor. That check is one fstat; like nginx's `open_file_cache_valid`, it runs at
 * most once per `revalidateMs` per reader (a system call per acquire was a fifth of the cycle),
 * so a change made behind the store's back is seen within that window. Changes the store makes
 * itself (GC, recovery, destroy) invalidate the reader at once. (A path overwritten while
 * another hard link keeps the old inode alive is not detected.)
 */
import type { MountReader } from '../../base/mount-types.js'
import type { ShardIndex } from '../../base/index-types.js'
import type { PayloadSpan } from '../shard/shard.js'
import type { ShardKey } from '../../base/types.js'
import type { ErrorReporter } from '../shard/waiter.js'
import { CODE } from '../../base/errors/codes.js'

interface Entry {
  readonly reader: MountReader & { isCurrent?: () => boolean }
  /** Closed when its last lease closes instead of kept idle. */
  readonly closeWhenIdle: boolean
  users: number
  retired: boolean
  /** When the file was last found current (clock ms). */
  checkedAt: number
  /** The shard's index and payload span, once an accessor has loaded them: later acquires need no I/O. */
  index: ShardIndex | undefined
  payload: PayloadSpan | undefined
}

export interface ReaderPoolOptions {
  /** Idle readers kept open. */
  maxIdle: number
  /** How long a reader is trusted after its file was found current; 0 checks on every lease. */
  revalidateMs: number
  report: ErrorReporter
  /** Milliseconds, for the revalidation window; default performance.now. */
  clock?: () => number
}

function closedError (): Error {
  return Object.assign(new Error('shard accessor is closed'), { code: CODE.ERR_ACCESSOR_CLOSED })
}

/** One accessor's hold on a pooled reader: closing it returns the reader to the pool. */
class PooledLease implements MountReader {
  protected closed = false

  constructor (private readonly pool: ReaderPool, readonly key: ShardKey, readonly entry: Entry) {}

  /** The reader is not kept idle (a shard read in place): its accessors read the origin. */
  get closeWhenIdle (): boolean { return this.entry.closeWhenIdle }

  get size (): number | undefined { return this.entry.reader.size }

  /** The payload span remembered with the reader, if any. */
  get payload (): PayloadSpan | undefined { return this.entry.payload }

  stream (start?: number): AsyncIterable<Uint8Array> {
    if (this.closed) throw closedError()
    return this.entry.reader.stream(start)
  }

  async close (): Promise<void> { this.closeNow() }

  /** Returns the reader to the pool without a promise (the accessor's close path). */
  closeNow (): void {
    if (this.closed) return
    this.closed = true
    this.pool.release(this.key, this.entry)
  }
}

/** A lease on a reader with random access: `read` exists only when the pooled reader has it. */
class PooledRandomLease extends PooledLease {
  async read (position: number, length: number): Promise<Uint8Array> {
    if (this.closed) throw closedError()
    const reader = this.entry.reader as { read: (position: number, length: number) => Promise<Uint8Array> }
    return await reader.read(position, length)
  }

  readNow (position: number, length: number, into?: Uint8Array): Uint8Array | undefined {
    if (this.closed) throw closedError()
    return this.entry.reader.readNow?.(position, length, into)
  }

  async readInto (position: number, target: Uint8Array): Promise<number> {
    if (this.closed) throw closedError()
    const reader = this.entry.reader
    if (reader.readInto !== undefined) return await reader.readInto(position, target)
    const bytes = await (reader as { read: (position: number, length: number) => Promise<Uint8Array> }).read(position, target.byteLength)
    target.set(bytes)
    return bytes.byteLength
  }
}

export type ReaderLease = PooledLease

export class ReaderPool {
  private readonly live = new Map<ShardKey, Entry>()
  /** Entries nobody uses, oldest first (Map keeps insertion order). */
  private readonly idle = new Map<ShardKey, Entry>()
  /** Opens in flight: concurrent acquires of a shard share one. */
  private readonly opening = new Map<ShardKey, Promise<Entry>>()
  private readonly clock: () => number

  constructor (private readonly options: ReaderPoolOptions) {
    this.clock = options.clock ?? (() => performance.now())
  }

  /**
   * A lease on the shard's pooled reader and its remembered index, without waiting, when a
   * reader is pooled, its file is current and its index is known; else undefined.
   */
  leaseReady (key: ShardKey): { lease: ReaderLease, index: ShardIndex, payload: PayloadSpan } | undefined {
    const entry = this.current(key)
    if (entry === undefined || entry.index === undefined || entry.payload === undefined) return undefined
    return { lease: this.take(key, entry), index: entry.index, payload: entry.payload }
  }

  /** A lease on the shard's shared reader; `open` runs only when none is pooled or its file changed. */
  async lease (key: ShardKey, open: () => Promise<{ reader: MountReader, closeWhenIdle?: boolean }>): Promise<ReaderLease> {
    let entry = this.current(key)
    if (entry === undefined) {
      let pending = this.opening.get(key)
      if (pending === undefined) {
        const opened: Promise<Entry> = open().then(({ reader, closeWhenIdle }) => {
          const fresh: Entry = {
            reader, closeWhenIdle: closeWhenIdle === true, users: 0, retired: false, checkedAt: this.clock(), index: undefined, payload: undefined
          }
          // Invalidated while opening: serve the callers already waiting, keep nothing.
          if (this.opening.get(key) === opened) this.live.set(key, fresh)
          else fresh.retired = true
          return fresh
        }).finally(() => {
          if (this.opening.get(key) === opened) this.opening.delete(key)
        })
        this.opening.set(key, opened)
        pending = opened
      }
      entry = await pending
    }
    return this.take(key, entry)
  }

  /** Remembers the shard's index and payload span with the reader `lease` holds, unless that reader was dropped since. */
  keep (lease: ReaderLease, index: ShardIndex, payload: PayloadSpan): void {
    if (lease.entry.retired) return
    lease.entry.index = index
    lease.entry.payload = payload
  }

  /** Drops the shard's reader: closed now if idle, else when its last lease closes. */
  invalidate (key: ShardKey): void {
    this.opening.delete(key)
    const entry = this.live.get(key)
    if (entry === undefined) return
    this.live.delete(key)
    this.idle.delete(key)
    entry.retired = true
    entry.index = undefined
    entry.payload = undefined
    if (entry.users === 0) this.closeQuietly(entry.reader)
  }

  async closeAll (): Promise<void> {
    const readers = [...this.live.values()].map((e) => e.reader)
    this.live.clear()
    this.idle.clear()
    await Promise.allSettled(readers.map(async (r) => { await r.close() }))
  }

  /** @internal the lease's way back. */
  release (key: ShardKey, entry: Entry): void {
    if (--entry.users > 0) return
    if (entry.retired || this.live.get(key) !== entry || entry.closeWhenIdle) {
      if (this.live.get(key) === entry) this.live.delete(key)
      entry.retired = true
      this.closeQuietly(entry.reader)
      return
    }
    this.idle.set(key, entry)
    while (this.idle.size > this.options.maxIdle) {
      const [oldestKey, oldest] = this.idle.entries().next().value as [ShardKey, Entry]
      this.idle.delete(oldestKey)
      this.live.delete(oldestKey)
      oldest.retired = true
      this.closeQuietly(oldest.reader)
    }
  }

  /** The live entry of `key` if its file is (recently found) current; a stale one is dropped. */
  private current (key: ShardKey): Entry | undefined {
    const entry = this.live.get(key)
    if (entry === undefined) return undefined
    const isCurrent = entry.reader.isCurrent
    // Readers that cannot tell (custom mounts) are trusted.
    if (isCurrent === undefined) return entry
    const now = this.clock()
    if (now - entry.checkedAt < this.options.revalidateMs) return entry
    if (!isCurrent.call(entry.reader)) {
      this.invalidate(key)
      return undefined
    }
    entry.checkedAt = now
    return entry
  }

  private take (key: ShardKey, entry: Entry): ReaderLease {
    entry.users++
    if (entry.users === 1) this.idle.delete(key)
    return entry.reader.read !== undefined ? new PooledRandomLease(this, key, entry) : new PooledLease(this, key, entry)
  }

  private closeQuietly (reader: MountReader): void {
    reader.close().catch((err: unknown) => { this.options.report(err, 'closing a shard reader failed') })
  }
}
