import { createHash } from 'node:crypto'
import { lstat, mkdir, open as openFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { AbortError, TransientError, abortErrorFrom, raceAbort } from '../../base/errors.js'
import { isMissing } from '../../base/errors/inspect.js'
import { openFileReader, openGrowingFileReader } from './file-reader.js'
import { GrowingFile } from './growing-file.js'
import { AppendWriter } from './append-writer.js'
import type { TransientBudget } from './budget.js'
import type { Mount, MountReader } from '../../base/mount-types.js'

export interface TransientsOptions {
  dir: string
  /** Throttles downloads of mounts whose stat().ready (e.g. a p-queue); absent = unlimited. */
  readyFetchQueue?: ({ add: <T>(fn: () => Promise<T>) => Promise<T> }) | undefined
  /** Automated GC's space accounting: downloads reserve before they write. Absent = unbounded. */
  budget?: TransientBudget | undefined
  /** Called once per download that got as far as fetching: bytes written, seconds, success. */
  onDownload?: (bytes: number, seconds: number, ok: boolean) => void
}

interface Download {
  readonly controller: AbortController
  /** Resolves once the .partial exists and bytes may arrive: readers can join from then on. */
  started: Promise<GrowingFile>
  /** The final path, once the file is complete, synced and renamed into place. */
  promise: Promise<string>
  /** Identity of the .partial the writer opened (readers check they opened the same file). */
  ino?: number
  /** Callers and open readers still interested in the download. */
  waiters: number
  /** Every waiter left and the download was aborted: newcomers must start a fresh one. */
  abandoned: boolean
}

/** What open() hands out: a reader now, and the transient's path once it is complete. */
export interface OpenedTransient {
  /** Random access over the shard's bytes; while the transient downloads, reads wait for bytes. */
  reader: MountReader
  /** Where the transient is, or will be once complete; undefined for mounts read in place. */
  transient?: string
  /** Resolves with `transient` once the file is complete and durable; rejects if the download fails. */
  complete: Promise<string | undefined>
}

/** Bytes a download may hold in memory while its writes catch up. */
const MAX_PENDING_WRITE_BYTES = 8 * 1024 * 1024

/**
 * Races promises against one signal with a single abort listener: a listener (or a reaction on
 * a long-lived abort promise) per chunk would cost, or pile up, over a download's many chunks.
 */
class AbortRace {
  #reject: ((err: Error) => void) | undefined
  readonly #onAbort = (): void => { this.#reject?.(abortErrorFrom(this.signal)) }

  constructor (readonly signal: AbortSignal) {
    signal.addEventListener('abort', this.#onAbort, { once: true })
  }

  async race<T> (promise: Promise<T>): Promise<T> {
    if (this.signal.aborted) {
      promise.catch(() => {})
      throw abortErrorFrom(this.signal)
    }
    try {
      return await new Promise<T>((resolve, reject) => {
        this.#reject = reject
        promise.then(resolve, reject)
      })
    } finally {
      this.#reject = undefined
    }
  }

  dispose (): void {
    this.signal.removeEventListener('abort', this.#onAbort)
  }
}

/** Makes a rename inside `dir` durable; not every platform lets a directory be fsynced. */
async function syncDir (dir: string): Promise<void> {
  let fh: FileHandle | undefined
  try {
    fh = await openFile(dir, 'r')
    await fh.sync()
  } catch {
    // best effort
  } finally {
    await fh?.close().catch(() => {})
  }
}

/**
 * The upgrader: gives mounts without random access a local copy (a *transient*) to be read at
 * random. One instance serves the whole store; per-shard state lives only while a download runs,
 * so idle shards cost nothing here.
 *
 * Transient files are named from a hash of the shard key, never the key itself (keys are
 * untrusted), and only files directly inside `dir` are ever deleted.
 */
export class Transients {
  readonly dir: string
  readonly #queue: TransientsOptions['readyFetchQueue']
  readonly budget: TransientBudget | undefined
  readonly #onDownload: TransientsOptions['onDownload']
  readonly #downloads = new Map<string, Download>()

  constructor (opts: TransientsOptions) {
    if (typeof opts?.dir !== 'string' || opts.dir === '') throw new TypeError('Transients needs a dir')
    this.dir = resolve(opts.dir)
    this.#queue = opts.readyFetchQueue
    this.budget = opts.budget
    this.#onDownload = opts.onDownload
  }

  async init (): Promise<void> {
    await mkdir(this.dir, { recursive: true })
  }

  pathFor (key: string): string {
    return join(this.dir, createHash('sha256').update(key, 'utf8').digest('hex') + '.car')
  }

  needsTransient (mount: Mount): boolean {
    return !mount.info().random
  }

  /** True while a download for `key` is running (its transient must not be collected). */
  isDownloading (key: string): boolean {
    const dl = this.#downloads.get(key)
    return dl !== undefined && !dl.abandoned
  }

  /**
   * A random-access reader for the shard's bytes. Random-access mounts: mount.fetch(). Otherwise
   * `current` (the persisted transient, or a user's existingTransient) is opened if it still
   * exists; else the mount is downloaded to pathFor(key)+'.partial', fsynced and renamed to
   * pathFor(key).
   *
   * Streaming: the reader is handed out as soon as the download has begun. Its reads wait for
   * the bytes they need, so a caller (the indexer, an accessor) works along with the transfer
   * instead of after it. `complete` says when the file is whole and durable.
   *
   * Concurrent calls for one key share one download, each caller getting its own reader. A
   * caller stays interested until its signal aborts or it closes its reader; the download is
   * aborted when no one is left. A failed download removes the .partial and fails every waiter
   * and every reader's pending and later reads with the error that failed it.
   */
  async open (key: string, mount: Mount, current: string | undefined, signal?: AbortSignal): Promise<OpenedTransient> {
    if (signal?.aborted === true) throw abortErrorFrom(signal)
    if (!this.needsTransient(mount)) return { reader: await mount.fetch(signal), complete: Promise.resolve(undefined) }
    if (current !== undefined) {
      try {
        return { reader: await openFileReader(current, signal), transient: current, complete: Promise.resolve(current) }
      } catch (err) {
        // Deleted behind the store's back: fetch it again. Anything else (EACCES, EIO) is real.
        if (!isMissing(err)) throw err
      }
    }
    return await this.#join(key, mount, signal)
  }

  async #join (key: string, mount: Mount, signal: AbortSignal | undefined): Promise<OpenedTransient> {
    let dl = this.#downloads.get(key)
    if (dl === undefined || dl.abandoned) {
      dl = this.#start(key, mount, dl)
      this.#downloads.set(key, dl)
    }
    const joined = dl
    joined.waiters++
    let left = false
    const leave = (): void => {
      if (left) return
      left = true
      signal?.removeEventListener('abort', leave)
      if (--joined.waiters === 0 && this.#downloads.get(key) === joined) {
        joined.abandoned = true
        joined.controller.abort(new AbortError('every caller waiting for this download gave up'))
      }
    }
    signal?.addEventListener('abort', leave, { once: true })
    // Interest ends with the download too: later aborts and closes then change nothing.
    joined.promise.then(() => { left = true; signal?.removeEventListener('abort', leave) }, () => {})
    const path = this.pathFor(key)
    try {
      const growing = await (signal !== undefined ? raceAbort(joined.started, signal) : joined.started)
      const reader = await this.#openJoined(joined, growing, path, signal)
      const close = reader.close.bind(reader)
      return {
        reader: Object.assign(reader, { close: async () => { leave(); await close() } }),
        transient: path,
        complete: joined.promise
      }
    } catch (err) {
      leave()
      throw err
    }
  }

  /** Opens the joined download's file: the .partial while it is written, the final file after. */
  async #openJoined (dl: Download, growing: GrowingFile, path: string, signal: AbortSignal | undefined): Promise<MountReader> {
    if (!growing.complete) {
      try {
        const reader = await openGrowingFileReader(path + '.partial', growing, signal)
        if (reader.file.ino === dl.ino) return reader
        // Another download's .partial: ours has finished or failed meanwhile.
        await reader.close()
      } catch (err) {
        if (!isMissing(err)) throw err
      }
    }
    if (growing.error !== undefined) throw growing.error
    await (signal !== undefined ? raceAbort(dl.promise, signal) : dl.promise)
    return await openFileReader(path, signal)
  }

  #start (key: string, mount: Mount, previous: Download | undefined): Download {
    let started!: (file: GrowingFile) => void
    let failedEarly!: (err: unknown) => void
    const dl: Download = {
      controller: new AbortController(),
      started: new Promise<GrowingFile>((resolve, reject) => { started = resolve; failedEarly = reject }),
      promise: Promise.resolve(''),
      waiters: 0,
      abandoned: false
    }
    dl.promise = (async () => {
      // An abandoned download still owns the .partial until it has cleaned up.
      if (previous !== undefined) await previous.promise.catch(() => {})
      return await this.#fetchToTransient(key, mount, dl, started, dl.controller.signal)
    })()
    // A rejection nobody waits for (every waiter left) is still handled.
    dl.started.catch(() => {})
    // Registered before any waiter's handlers, so the entry is gone by the time a waiter sees
    // the outcome: a waiter that retries after a failure starts a fresh download.
    dl.promise.then(() => { this.#settle(key, dl) }, (err: unknown) => { failedEarly(err); this.#settle(key, dl) })
    return dl
  }

  #settle (key: string, dl: Download): void {
    if (this.#downloads.get(key) === dl) this.#downloads.delete(key)
  }

  async #fetchToTransient (key: string, mount: Mount, dl: Download, started: (file: GrowingFile) => void, signal: AbortSignal): Promise<string> {
    const st = await mount.stat(signal)
    if (!st.exists) throw new TransientError('the mount reports that its data does not exist')
    const run = async (): Promise<string> => await this.#download(key, mount, st.size, dl, started, signal)
    if (st.ready && this.#queue !== undefined) return await this.#queue.add(run)
    return await run()
  }

  async #download (
    key: string, mount: Mount, statSize: number | undefined, dl: Download, started: (file: GrowingFile) => void, signal: AbortSignal
  ): Promise<string> {
    if (signal.aborted) throw abortErrorFrom(signal)
    const final = this.pathFor(key)
    const partial = final + '.partial'
    const budget = this.budget
    let reserved = 0
    // The known size is reserved whole, exactly; an unknown one a step at a time as it grows.
    let sizeKnown = statSize !== undefined
    const reserveFor = async (total: number): Promise<void> => {
      if (budget === undefined) { reserved = Number.POSITIVE_INFINITY; return }
      if (total <= reserved) return
      const more = sizeKnown ? total - reserved : Math.max(total - reserved, budget.stepBytes)
      await budget.reserve(more)
      reserved += more
    }
    if (statSize !== undefined) await reserveFor(statSize)
    let reader: MountReader | undefined
    let fh: FileHandle | undefined
    let growing: GrowingFile | undefined
    const startedAt = performance.now()
    try {
      reader = await mount.fetch(signal)
      const expectedSize = statSize ?? reader.size
      sizeKnown = expectedSize !== undefined
      await reserveFor(expectedSize ?? 1)
      fh = await openFile(partial, 'w')
      dl.ino = (await fh.stat()).ino
      growing = new GrowingFile(expectedSize)
      started(growing)
      const file = growing
      const writer = new AppendWriter(fh.fd, (bytes) => { file.grew(bytes) })
      let received = 0
      const it = reader.stream(0)[Symbol.asyncIterator]()
      const abort = new AbortRace(signal)
      try {
        for (;;) {
          // Raced, because a stalled remote would otherwise hold an abandoned download forever.
          const next = await abort.race(it.next())
          if (next.done === true) break
          const chunk = next.value
          received += chunk.byteLength
          if (expectedSize !== undefined && received > expectedSize) {
            throw new TransientError(`mount served more than the ${expectedSize} bytes it announced`)
          }
          if (received > reserved) await reserveFor(received)
          growing.remember(chunk)
          writer.write(chunk)
          // The network may outrun the disk: bound what waits in memory.
          if (writer.pendingBytes > MAX_PENDING_WRITE_BYTES) await writer.flushed()
        }
        await writer.flushed()
      } catch (err) {
        it.return?.()?.catch(() => {})
        // No write may still be running when the file is closed and removed.
        await writer.flushed().catch(() => {})
        throw err
      } finally {
        abort.dispose()
      }
      if (expectedSize !== undefined && growing.written !== expectedSize) {
        throw new TransientError(`mount served ${growing.written} bytes, expected ${expectedSize}`)
      }
      await fh.sync()
      await fh.close()
      fh = undefined
      await rename(partial, final)
      budget?.unreserve(reserved)
      reserved = 0
      budget?.add(final, key, growing.written)
      await syncDir(this.dir)
      growing.finish()
      this.#onDownload?.(growing.written, (performance.now() - startedAt) / 1000, true)
      return final
    } catch (err) {
      await fh?.close().catch(() => {})
      await rm(partial, { force: true }).catch(() => {})
      budget?.unreserve(reserved)
      // Readers hear of the failure after the cleanup, so none of them sees a stale .partial.
      growing?.fail(err instanceof Error ? err : new TransientError(String(err)))
      if (reader !== undefined) this.#onDownload?.(growing?.written ?? 0, (performance.now() - startedAt) / 1000, false)
      throw err
    } finally {
      await reader?.close().catch(() => {})
    }
  }

  /** Aborts every running download and waits until each has cleaned up (store close). */
  async abortDownloads (): Promise<void> {
    const all = [...this.#downloads.values()]
    for (const dl of all) {
      dl.abandoned = true
      dl.controller.abort(new AbortError('transient downloads aborted'))
    }
    await Promise.allSettled(all.map(async (dl) => await dl.promise))
  }

  /**
   * Stops any download for `key`, waits until it has settled — it may be past the point where
   * an abort stops it, about to rename its file into place — and only then deletes the key's
   * transient and .partial: once this resolves, nothing of the key is in `dir`. Returns the
   * bytes freed. The caller makes sure no new download for the key starts meanwhile.
   */
  async discard (key: string): Promise<number> {
    const dl = this.#downloads.get(key)
    if (dl !== undefined) {
      dl.abandoned = true
      dl.controller.abort(new AbortError('the shard\'s transient was discarded'))
      // The newest download waits for the ones it replaced: this waits for them all.
      await dl.promise.catch(() => {})
    }
    const final = this.pathFor(key)
    return await this.delete(final) + await this.delete(final + '.partial')
  }

  isOwned (path: string): boolean {
    if (typeof path !== 'string' || path === '' || path.includes('\0')) return false
    const abs = resolve(path)
    // Direct children only: transients are flat, and a subdirectory could be a symlink out.
    return dirname(abs) === this.dir && basename(abs) !== ''
  }

  /**
   * Deletes `path` only if it is directly inside `dir`; returns the bytes freed (0 if absent or
   * not ours). A symlink in `dir` is removed as a link: its target is never touched.
   */
  async delete (path: string): Promise<number> {
    if (!this.isOwned(path)) return 0
    const abs = resolve(path)
    let st
    try {
      st = await lstat(abs)
    } catch (err) {
      if (isMissing(err)) { this.budget?.remove(abs); return 0 }
      throw err
    }
    if (st.isDirectory()) return 0
    try {
      await unlink(abs)
    } catch (err) {
      if (isMissing(err)) { this.budget?.remove(abs); return 0 }
      throw err
    }
    this.budget?.remove(abs)
    return st.isFile() ? st.size : 0
  }

  /**
   * Charges the budget with the transients that exist at start (path → shard key), least
   * recently modified first: after a restart that is the best guess at least recently used.
   */
  async account (owned: Iterable<[string, string]>): Promise<void> {
    const budget = this.budget
    if (budget === undefined) return
    const found: Array<{ path: string, key: string, size: number, mtimeMs: number }> = []
    const pending = [...owned].filter(([path]) => this.isOwned(path))
    // A few stats at a time: a restart with many transients should not flood the threadpool.
    const width = 16
    for (let i = 0; i < pending.length; i += width) {
      await Promise.all(pending.slice(i, i + width).map(async ([path, key]) => {
        try {
          const st = await stat(path)
          if (st.isFile()) found.push({ path: resolve(path), key, size: st.size, mtimeMs: st.mtimeMs })
        } catch (err) {
          if (!isMissing(err)) throw err
        }
      }))
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs)
    for (const f of found) budget.add(f.path, f.key, f.size)
  }

  async size (path: string): Promise<number> {
    try {
      return (await stat(path)).size
    } catch (err) {
      if (isMissing(err)) return 0
      throw err
    }
  }

  /**
   * Deletes every file in `dir` (including *.partial) that is not in `keep` (absolute paths)
   * and not being downloaded right now. Returns the deleted paths.
   */
  async removeOrphans (keep: Set<string>): Promise<string[]> {
    const kept = new Set<string>()
    for (const p of keep) kept.add(resolve(p))
    for (const key of this.#downloads.keys()) {
      const p = this.pathFor(key)
      kept.add(p)
      kept.add(p + '.partial')
    }
    let entries
    try {
      entries = await readdir(this.dir, { withFileTypes: true })
    } catch (err) {
      if (isMissing(err)) return []
      throw err
    }
    const deleted: string[] = []
    for (const entry of entries) {
      if (entry.isDirectory()) continue
      const p = join(this.dir, entry.name)
      if (kept.has(p)) continue
      try {
        await unlink(p)
        deleted.push(p)
      } catch (err) {
        if (!isMissing(err)) throw err
      }
    }
    return deleted
  }
}
