/**
 * Open shard readers, shared by every accessor of a shard and kept open (up to a bound) after
 * the last one closes.
 *
 * Opening and closing a file per acquire costs three threadpool round-trips that queue behind
 * the state DB's group commits; a cycle on an available shard is the hot path (docs/CONTRACT.md), so
 * a reader is reused while its file is still linked into the filesystem (one fstat of the
 * open descriptor): a file deleted, or replaced by a rename over its path, is reopened (or
 * re-fetched) rather than served from a stale descriptor. (A path overwritten while another
 * hard link keeps the old inode alive is not detected.)
 */
import type { MountReader } from '../../base/mount-types.js'
import type { ShardKey } from '../../base/types.js'
import type { ErrorReporter } from '../shard/waiter.js'
import { CODE } from '../../base/errors/codes.js'

interface Entry {
  readonly reader: MountReader & { isCurrent?: () => boolean }
  users: number
  retired: boolean
}

function closedError (): Error {
  return Object.assign(new Error('shard accessor is closed'), { code: CODE.ERR_ACCESSOR_CLOSED })
}

export class ReaderPool {
  private readonly live = new Map<ShardKey, Entry>()
  /** Entries nobody uses, oldest first (Map keeps insertion order). */
  private readonly idle = new Map<ShardKey, Entry>()
  /** Opens in flight: concurrent acquires of a shard share one. */
  private readonly opening = new Map<ShardKey, Promise<Entry>>()

  constructor (private readonly maxIdle: number, private readonly report: ErrorReporter) {}

  /** A lease on the shard's shared reader; `open` runs only when none is pooled or its file changed. */
  async lease (key: ShardKey, open: () => Promise<MountReader>): Promise<MountReader> {
    let entry = this.live.get(key)
    // Readers that cannot tell (custom mounts) are trusted.
    if (entry !== undefined && entry.reader.isCurrent?.() === false) {
      this.invalidate(key)
      entry = undefined
    }
    if (entry === undefined) {
      let pending = this.opening.get(key)
      if (pending === undefined) {
        const opened: Promise<Entry> = open().then((reader) => {
          const fresh: Entry = { reader, users: 0, retired: false }
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
    entry.users++
    this.idle.delete(key)
    return this.leaseOf(key, entry)
  }

  /** Drops the shard's reader: closed now if idle, else when its last lease closes. */
  invalidate (key: ShardKey): void {
    this.opening.delete(key)
    const entry = this.live.get(key)
    if (entry === undefined) return
    this.live.delete(key)
    this.idle.delete(key)
    entry.retired = true
    if (entry.users === 0) this.closeQuietly(entry.reader)
  }

  async closeAll (): Promise<void> {
    const readers = [...this.live.values()].map((e) => e.reader)
    this.live.clear()
    this.idle.clear()
    await Promise.allSettled(readers.map(async (r) => { await r.close() }))
  }

  private leaseOf (key: ShardKey, entry: Entry): MountReader {
    const { reader } = entry
    let closed = false
    const lease: MountReader = {
      size: reader.size,
      stream: (start?: number) => {
        if (closed) throw closedError()
        return reader.stream(start)
      },
      close: async () => {
        if (closed) return
        closed = true
        this.release(key, entry)
      }
    }
    const read = reader.read
    if (read !== undefined) {
      lease.read = async (position: number, length: number) => {
        if (closed) throw closedError()
        return await read.call(reader, position, length)
      }
    }
    return lease
  }

  private release (key: ShardKey, entry: Entry): void {
    if (--entry.users > 0) return
    if (entry.retired || this.live.get(key) !== entry) {
      this.closeQuietly(entry.reader)
      return
    }
    this.idle.set(key, entry)
    while (this.idle.size > this.maxIdle) {
      const [oldestKey, oldest] = this.idle.entries().next().value as [ShardKey, Entry]
      this.idle.delete(oldestKey)
      this.live.delete(oldestKey)
      this.closeQuietly(oldest.reader)
    }
  }

  private closeQuietly (reader: MountReader): void {
    reader.close().catch((err: unknown) => { this.report(err, 'closing a shard reader failed') })
  }
}
