import { close as fsClose, fstat as fsFstat, fstatSync, open as fsOpen, read as fsRead } from 'node:fs'
import type { Stats } from 'node:fs'
import { abortErrorFrom } from '../errors.js'
import type { MountReader } from './types.js'

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
export interface FileIdentity { readonly path: string, readonly dev: number, readonly ino: number }

export interface FileReader extends MountReader {
  readonly size: number
  readonly file: FileIdentity
  /**
   * False once the open file is no longer linked into the filesystem: deleted, or replaced by
   * a rename over its path (which unlinks the old inode). One fstat (≈ 1.4 µs), no path walk.
   */
  isCurrent: () => boolean
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
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError('chunkSize must be a positive integer')
  throwIfAborted(signal)
  const fd = await openFd(path)
  let size: number
  let identity: FileIdentity
  try {
    const st = await fstatFd(fd)
    identity = { path, dev: st.dev, ino: st.ino }
    if (st.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, open '${path}'`), { code: 'EISDIR', path })
    size = st.size
    // The caller may have given up while open() was in the threadpool; do not leak the fd.
    throwIfAborted(signal)
  } catch (err) {
    await closeFd(fd).catch(() => {})
    throw err
  }

  let closed = false
  let closing: Promise<void> | undefined
  // Reads in flight when close() is called finish before the fd is released, so a descriptor
  // number recycled by a later open() is never read by this reader.
  let inflight = 0
  let drained: (() => void) | undefined

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

  async function read (position: number, length: number): Promise<Uint8Array> {
    checkRange('position', position)
    checkRange('length', length)
    if (closed) throw closedError(path)
    const want = Math.min(length, Math.max(0, size - position))
    if (want === 0) return new Uint8Array(0)
    const buf = Buffer.allocUnsafe(want)
    const got = await readInto(buf, position)
    return got === want ? buf : buf.subarray(0, got)
  }

  async function * stream (start = 0): AsyncGenerator<Uint8Array> {
    checkRange('start', start)
    let pos = start
    while (pos < size) {
      // A fresh buffer per chunk: consumers may keep chunks after asking for the next one.
      const buf = Buffer.allocUnsafe(Math.min(chunkSize, size - pos))
      const got = await readInto(buf, pos)
      if (got === 0) return // truncated behind our back
      pos += got
      yield got === buf.byteLength ? buf : buf.subarray(0, got)
    }
  }

  function close (): Promise<void> {
    if (closing !== undefined) return closing
    closed = true
    closing = (async () => {
      if (inflight > 0) await new Promise<void>((resolve) => { drained = resolve })
      await closeFd(fd)
    })()
    return closing
  }

  function isCurrent (): boolean {
    if (closed) return false
    try {
      return fstatSync(fd).nlink > 0
    } catch {
      return false
    }
  }

  return { size, read, stream, close, file: identity, isCurrent }
}
