import { close as fsClose, fstat as fsFstat, fstatSync, open as fsOpen, read as fsRead, readSync } from 'node:fs'
import type { Stats } from 'node:fs'
import { abortErrorFrom } from '../../base/errors.js'
import type { GrowingFile } from './growing-file.js'
import type { MountReader } from '../../base/mount-types.js'

export const DEFAULT_CHUNK_SIZE = 256 * 1024

export interface FileReaderOptions {
  /** Size of the chunks `stream()` yields; default 256 KiB. */
  chunkSize?: number
}

// Hand-rolled promise wrappers over the callback API: acquire opens one of these per call, and
// FileHandle (or util.promisify, which allocates a result object per read) costs measurably more.
function openFd (path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    fsOpen(path, 'r', (err, fd) => { if (err != null) reject(err); else resolve(fd) })
  })
}

function fstatFd (fd: number): Promise<Stats> {
  return new Promise((resolve, reject) => {
    fsFstat(fd, (err, st) => { if (err != null) reject(err); else resolve(st) })
  })
}

function readFd (fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fsRead(fd, buf, offset, length, position, (err, n) => { if (err != null) reject(err); else resolve(n) })
  })
}

function closeFd (fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fsClose(fd, (err) => { if (err != null) reject(err); else resolve() })
  })
}

/** The largest read `readNow` answers: section headers and blocks (IPFS blocks are at most 1 MiB and a bit). */
const MAX_READ_NOW = 1024 * 1024 + 4096
/**
 * A synchronous read slower than this probably went to the device, not the page cache. A few in
 * a row (one alone may be the process losing the CPU) and the reader stops answering `readNow`:
 * its file is not in memory, and the event loop must not wait for a disk.
 */
const READ_NOW_SLOW_MS = 1
const READ_NOW_SLOW_IN_A_ROW = 3

function closedError (path: string): Error {
  // EBADF is what a read on a closed descriptor would give; we never let it reach the fd because
  // the number may already belong to another file.
  return Object.assign(new Error(`file reader for ${path} is closed`), { code: 'EBADF' })
}

// A function rather than an inline test: TS narrows `signal.aborted` to false after the first check.
function throwIfAborted (signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortErrorFrom(signal)
}

function checkRange (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${String(value)}`)
  }
}

/** Which file a reader has open: lets a cached reader be checked against the path later. */
interface FileIdentity { readonly path: string, readonly dev: number, readonly ino: number }

export interface FileReader extends MountReader {
  readonly size: number
  readonly file: FileIdentity
  /**
   * False once the open file is no longer linked into the filesystem: deleted, or replaced by
   * a rename over its path (which unlinks the old inode). One fstat, no path walk.
   */
  isCurrent: () => boolean
}

/**
 * How far a reader may read: a finished file has a fixed size; a file still being written
 * (a downloading transient) grows, and reads past its end wait for the writer.
 */
interface Extent {
  /** The size reads are bounded by, when known. */
  size: () => number | undefined
  /** Bytes readable now without waiting. */
  readable: () => number
  /** Until [0, end) is readable or no more bytes will come; rejects if the writer failed. */
  waitFor: (end: number) => Promise<void>
  /** The writer's failure: the file's bytes can no longer be trusted. */
  failure: () => Error | undefined
  /** [position, end) from memory, when the writer still holds it (saves a read). */
  copy?: (position: number, end: number) => Uint8Array | undefined
}

async function openDescriptor (path: string, signal: AbortSignal | undefined): Promise<{ fd: number, identity: FileIdentity, size: number }> {
  throwIfAborted(signal)
  const fd = await openFd(path)
  try {
    const st = await fstatFd(fd)
    if (st.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, open '${path}'`), { code: 'EISDIR', path })
    // The caller may have given up while open() was in the threadpool; do not leak the fd.
    throwIfAborted(signal)
    return { fd, identity: { path, dev: st.dev, ino: st.ino }, size: st.size }
  } catch (err) {
    await closeFd(fd).catch(() => {})
    throw err
  }
}

function chunkSizeOf (options: FileReaderOptions): number {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError('chunkSize must be a positive integer')
  return chunkSize
}

/**
 * A random-access reader over one open file descriptor.
 *
 * The reader describes the file as it was when opened: `size` comes from fstat and neither
 * `read` nor `stream` go past it (CAR files are immutable; a bound also keeps a huge `length`
 * near the end from allocating a huge buffer). All reads are positional, so any number of
 * `read`s and `stream`s may run concurrently on the one descriptor.
 */
export async function openFileReader (path: string, signal?: AbortSignal, options: FileReaderOptions = {}): Promise<FileReader> {
  const chunkSize = chunkSizeOf(options)
  const { fd, identity, size } = await openDescriptor(path, signal)
  const extent: Extent = { size: () => size, readable: () => size, waitFor: async () => {}, failure: () => undefined }
  return readerOver(fd, identity, extent, chunkSize) as FileReader
}

/** A reader over a file its writer is still appending to (see GrowingFile). */
export interface GrowingFileReader extends MountReader {
  readonly file: FileIdentity
  isCurrent: () => boolean
}

/**
 * A reader over `path` while `growing` tracks its writer: reads wait for the bytes they ask
 * for, end short only where the finished file ends, and fail with the writer's error if the
 * write fails. `size` is the announced size until the file completes, then the real one.
 */
export async function openGrowingFileReader (
  path: string, growing: GrowingFile, signal?: AbortSignal, options: FileReaderOptions = {}
): Promise<GrowingFileReader> {
  const chunkSize = chunkSizeOf(options)
  const { fd, identity } = await openDescriptor(path, signal)
  // The caller's signal ends its waits for a writer, not its reads of a finished file.
  const failure = (): Error | undefined => growing.error ?? (signal?.aborted === true && !growing.complete ? abortErrorFrom(signal) : undefined)
  const extent: Extent = {
    size: () => growing.size,
    readable: () => growing.written,
    waitFor: async (end) => {
      if (signal === undefined) return await growing.waitFor(end)
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => { reject(abortErrorFrom(signal)) }
        if (signal.aborted) { onAbort(); return }
        signal.addEventListener('abort', onAbort, { once: true })
        growing.waitFor(end).then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
      })
    },
    failure,
    copy: (position, end) => growing.copy(position, end)
  }
  return readerOver(fd, identity, extent, chunkSize)
}

function readerOver (fd: number, identity: FileIdentity, extent: Extent, chunkSize: number): GrowingFileReader & { size: number | undefined } {
  const path = identity.path
  let closed = false
  let closing: Promise<void> | undefined
  // Reads in flight when close() is called finish before the fd is released, so a descriptor
  // number recycled by a later open() is never read by this reader.
  let inflight = 0
  let drained: (() => void) | undefined
  // Waits for a writer are cut short by close(): a closed reader must not hang its callers.
  const waiting = new Set<(err: Error) => void>()

  function check (): void {
    if (closed) throw closedError(path)
    const failure = extent.failure()
    if (failure !== undefined) throw failure
  }

  async function until (end: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      waiting.add(reject)
      extent.waitFor(end).then(resolve, reject).finally(() => { waiting.delete(reject) })
    })
    check()
  }

  async function readInto (buf: Uint8Array, position: number): Promise<number> {
    if (closed) throw closedError(path)
    inflight++
    try {
      let got = 0
      while (got < buf.byteLength) {
        const n = await readFd(fd, buf, got, buf.byteLength - got, position + got)
        if (n === 0) break
        got += n
      }
      return got
    } finally {
      if (--inflight === 0 && drained !== undefined) drained()
    }
  }

  /**
   * How many of the bytes [position, end) a read gets: clipped to what the file holds, once
   * they are readable. A number, not a promise, when they are there already: the read must be
   * in flight before a close() that follows it synchronously, and a finished file never waits.
   */
  function readable (position: number, end: number): number | Promise<number> {
    const limit = extent.size()
    if (limit !== undefined) end = Math.min(end, limit)
    if (end <= position) return 0
    const now = (): number => Math.max(0, Math.min(end, extent.readable()) - position)
    return extent.readable() < end ? until(end).then(now) : now()
  }

  /** Bytes [position, end) clipped to what the file holds once they are readable. */
  async function readRange (position: number, end: number): Promise<Uint8Array> {
    let want = readable(position, end)
    if (typeof want !== 'number') want = await want
    if (want === 0) return new Uint8Array(0)
    const copied = extent.copy?.(position, position + want)
    if (copied !== undefined) return copied
    const buf = Buffer.allocUnsafe(want)
    const got = await readInto(buf, position)
    return got === want ? buf : buf.subarray(0, got)
  }

  async function read (position: number, length: number): Promise<Uint8Array> {
    checkRange('position', position)
    checkRange('length', length)
    check()
    return await readRange(position, position + length)
  }

  async function readIntoTarget (position: number, target: Uint8Array): Promise<number> {
    checkRange('position', position)
    check()
    let want = readable(position, position + target.byteLength)
    if (typeof want !== 'number') want = await want
    if (want === 0) return 0
    const copied = extent.copy?.(position, position + want)
    if (copied !== undefined) {
      target.set(copied)
      return copied.byteLength
    }
    return await readInto(want === target.byteLength ? target : target.subarray(0, want), position)
  }

  // Only while reads keep coming back as fast as memory does.
  let answersNow = true
  let slowInARow = 0

  /** A small read of a finished file, synchronously, while the file's pages prove to be in memory. */
  function readNow (position: number, length: number, into?: Uint8Array): Uint8Array | undefined {
    checkRange('position', position)
    checkRange('length', length)
    if (into !== undefined && into.byteLength < length) throw new RangeError(`readNow: a target of ${into.byteLength} bytes for ${length}`)
    const limit = extent.size()
    if (!answersNow || closed || length > MAX_READ_NOW || limit === undefined || extent.readable() < limit) return undefined
    const end = Math.min(position + length, limit)
    if (end <= position) return new Uint8Array(0)
    const buf = into === undefined ? Buffer.allocUnsafe(end - position) : into.subarray(0, end - position)
    const t = performance.now()
    let got = 0
    try {
      while (got < buf.byteLength) {
        const n = readSync(fd, buf, got, buf.byteLength - got, position + got)
        if (n === 0) break
        got += n
      }
    } catch {
      // read() reports the error, with its own handling.
      answersNow = false
      return undefined
    }
    if (performance.now() - t <= READ_NOW_SLOW_MS) slowInARow = 0
    else if (++slowInARow >= READ_NOW_SLOW_IN_A_ROW) answersNow = false
    return got === buf.byteLength ? buf : buf.subarray(0, got)
  }

  async function * stream (start = 0): AsyncGenerator<Uint8Array> {
    checkRange('start', start)
    let pos = start
    for (;;) {
      check()
      // Whatever has arrived, up to a chunk: a growing file is passed on as it comes.
      if (extent.readable() <= pos) await until(pos + 1)
      const limit = extent.size()
      const available = extent.readable()
      const end = Math.min(pos + chunkSize, available, limit ?? Number.POSITIVE_INFINITY)
      if (end <= pos) return
      // A fresh buffer per chunk: consumers may keep chunks after asking for the next one.
      const chunk = await readRange(pos, end)
      if (chunk.byteLength === 0) return // truncated behind our back
      pos += chunk.byteLength
      yield chunk
    }
  }

  function close (): Promise<void> {
    if (closing !== undefined) return closing
    closed = true
    for (const reject of waiting) reject(closedError(path))
    waiting.clear()
    closing = (async () => {
      if (inflight > 0) await new Promise<void>((resolve) => { drained = resolve })
      await closeFd(fd)
    })()
    return closing
  }

  function isCurrent (): boolean {
    if (closed || extent.failure() !== undefined) return false
    try {
      return fstatSync(fd).nlink > 0
    } catch {
      return false
    }
  }

  return {
    get size () { return extent.size() },
    read,
    readNow,
    readInto: readIntoTarget,
    stream,
    close,
    file: identity,
    isCurrent
  }
}
