import { createReadStream } from 'node:fs'
import { stat as fsStat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { abortErrorFrom } from '../../src/base/errors.js'
import type { MountRegistry } from '../../src/storage/mount/registry.js'
import type { Mount, MountFactory, MountInfo, MountReader, MountStat } from '../../src/base/mount-types.js'

export interface StreamMountOptions {
  /** Bytes per chunk served by stream(); default 64 KiB. */
  chunkSize?: number
  /** Artificial delay before every chunk (abortable through the fetch signal). */
  delayMs?: number
  /** Make every stream fail once it has served this many bytes (counted from the stream's start). */
  failAfter?: number | undefined
  /** The error thrown by `failAfter`; default an Error with code 'EINJECTED'. */
  failWith?: Error
  /** What stat() reports as `ready`; default true. */
  ready?: boolean
  /** Called before each chunk is served, with the bytes this stream served before it: lets a test act at an exact point of a download. */
  onChunk?: ((served: number, chunk: Uint8Array) => void) | undefined
  /** Leave `size` out of stat() and of the reader, as a chunked HTTP response would. */
  hideSize?: boolean
  /** Awaited before each chunk is served (with the bytes served before it): holds a download at an exact point. */
  pause?: ((served: number) => Promise<void> | undefined) | undefined
}

/** Options that survive serialize() → instantiate(): the ones a restarted store could honour. */
const PERSISTED = ['chunkSize', 'delayMs', 'ready', 'hideSize'] as const

/**
 * A remote-like, sequential-only mount (no seek, no random access), so the store must copy it
 * into a transient. Serves a file or in-memory bytes in chunks and counts fetches, so tests can
 * check that concurrent acquires share one download.
 */
export class StreamMount implements Mount {
  static readonly scheme = 'stream'
  readonly source: { file: string } | { bytes: Uint8Array }
  readonly options: StreamMountOptions
  /** Number of fetch() calls. */
  fetchCount = 0
  /** Number of stat() calls. */
  statCount = 0
  /** Streams currently being served (started and not finished, failed or closed). */
  activeStreams = 0

  constructor (source: string | Uint8Array, options: StreamMountOptions = {}) {
    this.source = typeof source === 'string' ? { file: resolve(source) } : { bytes: source }
    this.options = options
  }

  static fromURL (url: URL | string): StreamMount {
    const u = typeof url === 'string' ? new URL(url) : url
    if (u.protocol !== 'stream:') throw new TypeError(`not a stream: URL: ${u.href}`)
    const p = u.searchParams
    const file = p.get('file')
    const bytes = p.get('bytes')
    const options: StreamMountOptions = {}
    if (p.has('chunkSize')) options.chunkSize = Number(p.get('chunkSize'))
    if (p.has('delayMs')) options.delayMs = Number(p.get('delayMs'))
    if (p.has('ready')) options.ready = p.get('ready') === 'true'
    if (p.has('hideSize')) options.hideSize = p.get('hideSize') === 'true'
    if (file !== null) return new StreamMount(file, options)
    if (bytes !== null) return new StreamMount(Buffer.from(bytes, 'base64url'), options)
    throw new TypeError('stream: URL needs file= or bytes=')
  }

  info (): MountInfo {
    return { kind: 'remote', sequential: true, seek: false, random: false }
  }

  async #size (): Promise<number | undefined> {
    if ('bytes' in this.source) return this.source.bytes.byteLength
    try {
      return (await fsStat(this.source.file)).size
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined
      throw err
    }
  }

  async stat (signal?: AbortSignal): Promise<MountStat> {
    this.statCount++
    if (signal?.aborted === true) throw abortErrorFrom(signal)
    const size = await this.#size()
    const ready = this.options.ready ?? true
    if (size === undefined) return { exists: false, ready }
    return this.options.hideSize === true ? { exists: true, ready } : { exists: true, size, ready }
  }

  async fetch (signal?: AbortSignal): Promise<MountReader> {
    this.fetchCount++
    if (signal?.aborted === true) throw abortErrorFrom(signal)
    const size = await this.#size()
    if (size === undefined) {
      const file = 'file' in this.source ? this.source.file : ''
      throw Object.assign(new Error(`ENOENT: no such file, open '${file}'`), { code: 'ENOENT', path: file })
    }
    const chunkSize = this.options.chunkSize ?? 64 * 1024
    const { delayMs = 0, failAfter } = this.options
    const failWith = this.options.failWith ?? Object.assign(new Error('injected stream failure'), { code: 'EINJECTED' })
    const source = this.source
    const self = this
    const closers = new Set<() => void>()
    let closed = false

    async function * chunks (start: number): AsyncGenerator<Uint8Array> {
      if ('bytes' in source) {
        for (let pos = start; pos < source.bytes.byteLength; pos += chunkSize) {
          yield source.bytes.subarray(pos, Math.min(source.bytes.byteLength, pos + chunkSize))
        }
        return
      }
      if (start >= size!) return
      const rs = createReadStream(source.file, { start, highWaterMark: chunkSize })
      const destroy = (): void => { rs.destroy() }
      closers.add(destroy)
      try {
        for await (const chunk of rs) yield chunk as Buffer
      } finally {
        closers.delete(destroy)
        rs.destroy()
      }
    }

    async function * stream (start = 0): AsyncGenerator<Uint8Array> {
      if (closed) throw new Error('stream mount reader is closed')
      self.activeStreams++
      try {
        let served = 0
        for await (const chunk of chunks(start)) {
          if (delayMs > 0) await sleep(delayMs, undefined, signal !== undefined ? { signal } : undefined)
          await self.options.pause?.(served)
          if (signal?.aborted === true) throw abortErrorFrom(signal)
          if (closed) throw new Error('stream mount reader is closed')
          self.options.onChunk?.(served, chunk)
          if (failAfter !== undefined && served + chunk.byteLength > failAfter) {
            if (failAfter > served) yield chunk.subarray(0, failAfter - served)
            throw failWith
          }
          served += chunk.byteLength
          yield chunk
        }
      } catch (err) {
        // timers/promises rejects with a DOMException-like AbortError; report the signal's reason.
        if (signal?.aborted === true && (err as Error).name === 'AbortError') throw abortErrorFrom(signal)
        throw err
      } finally {
        self.activeStreams--
      }
    }

    return {
      ...(this.options.hideSize === true ? {} : { size }),
      stream,
      close: async () => {
        closed = true
        for (const c of closers) c()
      }
    }
  }

  serialize (): URL {
    const p = new URLSearchParams()
    if ('file' in this.source) p.set('file', this.source.file)
    else p.set('bytes', Buffer.from(this.source.bytes.buffer, this.source.bytes.byteOffset, this.source.bytes.byteLength).toString('base64url'))
    for (const name of PERSISTED) {
      const v = this.options[name]
      if (v !== undefined) p.set(name, String(v))
    }
    return new URL(`stream:?${p.toString()}`)
  }
}

export interface StreamMountFactoryOptions {
  /** Called with every mount the factory makes (e.g. to read fetchCount after a store restart). */
  onInstantiate?: (mount: StreamMount) => void
  /** Options applied on top of those in the URL (e.g. failure injection, which is not persisted). */
  override?: StreamMountOptions
}

/** A MountFactory for `stream:` URLs. */
function streamMountFactory (opts: StreamMountFactoryOptions = {}): MountFactory {
  return (url: URL) => {
    let mount = StreamMount.fromURL(url)
    if (opts.override !== undefined) {
      mount = new StreamMount('file' in mount.source ? mount.source.file : mount.source.bytes, { ...mount.options, ...opts.override })
    }
    opts.onInstantiate?.(mount)
    return mount
  }
}

/** Registers `stream:` in `registry`; returns the registry for chaining. */
export function registerStreamMount (registry: MountRegistry, opts: StreamMountFactoryOptions = {}): MountRegistry {
  registry.register(StreamMount.scheme, streamMountFactory(opts))
  return registry
}
