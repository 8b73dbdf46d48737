import { InvalidMountError, abortErrorFrom } from '../../base/errors.js'
import { DEFAULT_CHUNK_SIZE } from '../transients/file-reader.js'
import type { Mount, MountInfo, MountReader, MountStat } from '../../base/mount-types.js'

const BYTES_INFO: MountInfo = Object.freeze({ kind: 'local', sequential: true, seek: true, random: true })
const BASE64URL = /^[A-Za-z0-9_-]*$/

function closedError (): Error {
  return Object.assign(new Error('bytes reader is closed'), { code: 'EBADF' })
}

function checkRange (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${String(value)}`)
  }
}

/**
 * Bytes held in memory (tests, small shards). The mount keeps a reference, not a copy: the
 * caller must not change the bytes afterwards. Readers hand out views (`subarray`) of them.
 */
export class BytesMount implements Mount {
  readonly bytes: Uint8Array

  /** The bytes are in the URL: it makes the same mount again. */
  get describedByUrl (): boolean { return true }

  constructor (bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) throw new InvalidMountError('BytesMount needs a Uint8Array')
    this.bytes = bytes
  }

  /** The mount a `bytes:<base64url>` URL stands for. */
  static fromURL (url: URL | string): BytesMount {
    let u: URL
    try {
      u = typeof url === 'string' ? new URL(url) : url
    } catch (err) {
      throw new InvalidMountError('invalid bytes mount URL', { cause: err })
    }
    const data = u.pathname
    // Buffer's base64url decoder skips junk silently; a URL that is not exactly what serialize()
    // writes would otherwise become different bytes without anyone noticing.
    if (u.protocol !== 'bytes:' || u.search !== '' || u.hash !== '' || !BASE64URL.test(data) || data.length % 4 === 1) {
      throw new InvalidMountError('invalid bytes mount URL: expected bytes:<base64url>')
    }
    return new BytesMount(Buffer.from(data, 'base64url'))
  }

  info (): MountInfo {
    return { ...BYTES_INFO }
  }

  async stat (signal?: AbortSignal): Promise<MountStat> {
    if (signal?.aborted === true) throw abortErrorFrom(signal)
    return { exists: true, size: this.bytes.byteLength, ready: true }
  }

  async fetch (signal?: AbortSignal): Promise<MountReader> {
    if (signal?.aborted === true) throw abortErrorFrom(signal)
    const bytes = this.bytes
    const size = bytes.byteLength
    let closed = false
    return {
      size,
      read: async (position: number, length: number): Promise<Uint8Array> => {
        checkRange('position', position)
        checkRange('length', length)
        if (closed) throw closedError()
        const start = Math.min(position, size)
        return bytes.subarray(start, Math.min(size, start + length))
      },
      stream: async function * (start = 0): AsyncGenerator<Uint8Array> {
        checkRange('start', start)
        for (let pos = start; pos < size; pos += DEFAULT_CHUNK_SIZE) {
          if (closed) throw closedError()
          yield bytes.subarray(pos, Math.min(size, pos + DEFAULT_CHUNK_SIZE))
        }
      },
      close: async (): Promise<void> => { closed = true }
    }
  }

  serialize (): URL {
    const b = this.bytes
    return new URL('bytes:' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url'))
  }
}
