// Transport choice: node:http / node:https rather than the global fetch (undici). We need exact
// control over three things fetch hides or makes awkward: (1) an idle/stall timeout that is
// reset on every received chunk (socket-level), (2) destroying exactly one connection on abort
// or on a protocol violation (no shared pool that keeps sockets alive after a test or a failed
// download: every request uses its own connection, `agent: false`, so nothing leaks), and (3)
// seeing the raw status, Content-Length / Content-Range and parse errors caused by bytes a
// server sends beyond its declared Content-Length, with no transparent decompression.
//
// Reads in place (probeRange, openInPlace) are the exception: many small ranged GETs to one
// origin, so they share keep-alive connections through an agent of their own, which the
// source's last reader closes (http-range.ts).
import type { IncomingMessage } from 'node:http'
import { InvalidMountError, abortErrorFrom, isAbortError } from '../../base/errors.js'
import { redactUrl } from '../../base/redact.js'
import type { Mount, MountInfo, MountReader, MountStat } from '../../base/mount-types.js'
import { InPlaceReader } from '../remote/in-place-reader.js'
import type { SectionCache } from '../remote/section-cache.js'
import {
  HttpChangedError, HttpLengthMismatchError, HttpRangeError, HttpStatusError, HttpTimeoutError,
  isRetryable, networkError, retryable, statusError
} from './http-errors.js'
import { parseLength, request, sleep, withRetries, type Exchange, type RequestTarget, type RetryPolicy } from './http-exchange.js'
import { probeRange, rangeTransport, validatorKey, type RangeProbe, type RangedProbe } from './http-range.js'

export {
  HttpChangedError, HttpLengthMismatchError, HttpNetworkError, HttpRangeError, HttpStatusError, HttpTimeoutError
} from './http-errors.js'
export type { RangeProbe, RangedProbe } from './http-range.js'

/** How long after stat() a fetch() may reuse its HEAD instead of sending another. */
const PROBE_REUSE_MS = 5000
const HTTP_INFO: MountInfo = Object.freeze({ kind: 'remote', sequential: true, seek: false, random: false })

export interface HttpMountOptions {
  /**
   * Extra request headers (e.g. `authorization`). Never part of `serialize()`: a store restores
   * the mount from its URL alone, so register a factory that adds them back
   * (`registry.register('https', (url) => new HttpMount(url, { headers }))`).
   */
  headers?: Record<string, string>
  /** Per-request stall timeout: no response headers or no body bytes for this long fails the attempt. Default 30 000 ms. */
  timeoutMs?: number
  /** Retries after the first attempt, on 5xx, 429, connection resets, stalls and short bodies. Default 3. */
  retries?: number
  /** First retry delay; doubles every retry (with jitter), capped at `maxBackoffMs`. Default 200 ms. */
  backoffMs?: number
  /** Default 5 000 ms. */
  maxBackoffMs?: number
  /**
   * The slowest a response body may arrive, averaged over `rateWindowMs` of waiting on the
   * server (time the consumer holds a chunk does not count): a server trickling bytes fails
   * the attempt with `HttpTimeoutError` instead of pinning the download for days. The attempt
   * is retried like a stall. 0 turns it off. Default 4 096 (4 KiB/s).
   */
  minBytesPerSecond?: number
  /** The window `minBytesPerSecond` is measured over; a body is first judged once it has lasted this long. Default 30 000 ms. */
  rateWindowMs?: number
  /**
   * A wall-clock limit on one download (a `stream()` from its first request to its last byte,
   * retries, backoff and time the consumer holds chunks included); past it the download fails
   * with `HttpTimeoutError`, not retried. Default: none.
   */
  deadlineMs?: number
  /** Ranged reads in place wait what a 429 or 503's Retry-After asks, up to this. Default 30 000 ms. */
  maxRetryAfterMs?: number
}

interface Probe { exists: boolean, size?: number | undefined, ranges: boolean, version?: string | undefined }

/** What one reader's downloads learn as they go: whether Range works, which version they read. */
interface DownloadState { ranges: boolean, version: string | undefined }

/** What identifies one version of the resource: its ETag, else its Last-Modified date. */
function versionOf (headers: IncomingMessage['headers']): string | undefined {
  const etag = headers.etag
  if (typeof etag === 'string' && etag !== '') return `etag ${etag}`
  const modified = headers['last-modified']
  return typeof modified === 'string' && modified !== '' ? `last-modified ${modified}` : undefined
}

/**
 * A CAR file behind an `http:` or `https:` URL. Remote and sequential: the store copies it into
 * a transient. Size and Range support come from a HEAD request; downloads retry with backoff and
 * resume with `Range` where the server supports it.
 */
export class HttpMount implements Mount {
  readonly url: URL
  /** The URL as errors show it: credentials redacted. */
  readonly #shown: string
  readonly #target: RequestTarget
  readonly #policy: RetryPolicy
  readonly #plain: boolean
  readonly #retries: number
  readonly #backoffMs: number
  readonly #maxBackoffMs: number
  readonly #deadlineMs: number | undefined

  constructor (url: URL | string, options: HttpMountOptions = {}) {
    let u: URL
    try {
      u = new URL(typeof url === 'string' ? url : url.href)
    } catch (err) {
      throw new InvalidMountError(`invalid HTTP mount URL: ${redactUrl(String(url))}`, { cause: err })
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidMountError(`HttpMount needs an http: or https: URL, got ${u.protocol}`)
    if (u.hash !== '') u.hash = ''
    this.url = u
    this.#plain = Object.keys(options).length === 0
    this.#shown = redactUrl(u.href)
    const { headers = {}, timeoutMs = 30_000, retries = 3, backoffMs = 200, maxBackoffMs = 5_000 } = options
    const { minBytesPerSecond = 4096, rateWindowMs = 30_000, deadlineMs, maxRetryAfterMs = 30_000 } = options
    for (const [name, n] of [['timeoutMs', timeoutMs], ['retries', retries], ['backoffMs', backoffMs], ['maxBackoffMs', maxBackoffMs],
      ['minBytesPerSecond', minBytesPerSecond], ['rateWindowMs', rateWindowMs], ['deadlineMs', deadlineMs ?? 1],
      ['maxRetryAfterMs', maxRetryAfterMs]] as const) {
      if (!Number.isSafeInteger(n) || n < 0) throw new InvalidMountError(`HttpMount ${name} must be a non-negative integer`)
    }
    for (const [name, n] of [['timeoutMs', timeoutMs], ['rateWindowMs', rateWindowMs], ['deadlineMs', deadlineMs ?? 1]] as const) {
      if (n === 0) throw new InvalidMountError(`HttpMount ${name} must be positive`)
    }
    this.#target = { url: u, shown: this.#shown, headers: { ...headers }, timeoutMs, minBytesPerSecond, rateWindowMs }
    this.#policy = { retries, backoffMs, maxBackoffMs, maxRetryAfterMs }
    this.#retries = retries
    this.#backoffMs = backoffMs
    this.#maxBackoffMs = maxBackoffMs
    this.#deadlineMs = deadlineMs
  }

  /** The mount an `http:`/`https:` URL stands for (no custom headers: see HttpMountOptions.headers). */
  static fromURL (url: URL | string): HttpMount {
    return new HttpMount(url)
  }

  /** Made without options: the URL makes the same mount again. */
  get describedByUrl (): boolean { return this.#plain }

  info (): MountInfo {
    return { ...HTTP_INFO }
  }

  /**
   * Whether the origin can be read in place: a ranged GET of its first byte, with the mount's
   * timeouts, rate floor and retries. Only the answer's head is read: an origin that ignores
   * Range (200) is not downloaded.
   */
  async probeRange (signal?: AbortSignal): Promise<RangeProbe> {
    return await probeRange(this.#target, this.#policy, signal ?? new AbortController().signal)
  }

  /**
   * A reader of the version `probe` saw, through `cache` (one per store): every reader of the
   * same URL and validator shares its sections, its requests and its keep-alive connections.
   */
  openInPlace (cache: SectionCache, probe: RangedProbe): InPlaceReader {
    const target = this.#target
    const policy = this.#policy
    return new InPlaceReader(cache, {
      key: `${this.url.href}\n${validatorKey(probe.validator)}`,
      label: this.#shown,
      size: probe.size,
      transport: () => rangeTransport(target, policy, probe)
    })
  }

  /** The URL itself; headers are never included. */
  serialize (): URL {
    return new URL(this.url.href)
  }

  async stat (signal?: AbortSignal): Promise<MountStat> {
    const p = await this.#probe(signal ?? new AbortController().signal)
    this.#recent = { probe: p, at: Date.now() }
    return p.exists ? { exists: true, size: p.size, ready: true } : { exists: false, ready: true }
  }

  /** A probe a fetch() right after stat() reuses: the store stats, then fetches; one HEAD is enough. */
  #recent: { probe: Probe, at: number } | undefined

  async fetch (signal?: AbortSignal): Promise<MountReader> {
    if (signal?.aborted === true) throw abortErrorFrom(signal)
    // Closing the reader cancels its streams; so does the fetch signal.
    const life = new AbortController()
    const onAbort = (): void => { life.abort(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    let probe: Probe
    try {
      const recent = this.#recent
      this.#recent = undefined
      // The GET's own length checks still hold the body to this size.
      probe = recent !== undefined && recent.probe.exists && Date.now() - recent.at < PROBE_REUSE_MS ? recent.probe : await this.#probe(life.signal)
    } catch (err) {
      signal?.removeEventListener('abort', onAbort)
      throw err
    }
    if (!probe.exists) {
      signal?.removeEventListener('abort', onAbort)
      throw new HttpStatusError(this.#shown, 404, `HTTP mount ${this.#shown} does not exist`)
    }
    const state: DownloadState = { ranges: probe.ranges, version: probe.version }
    const size = probe.size
    let closed = false
    return {
      size,
      stream: (start = 0) => {
        if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`start must be a non-negative safe integer, got ${String(start)}`)
        return this.#stream(start, size, state, life.signal, () => closed)
      },
      close: async () => {
        if (closed) return
        closed = true
        signal?.removeEventListener('abort', onAbort)
        life.abort(Object.assign(new Error('HTTP mount reader closed'), { code: 'EBADF' }))
      }
    }
  }

  /** HEAD with retries. */
  async #probe (signal: AbortSignal): Promise<Probe> {
    return await withRetries(this.#policy, signal, async () => {
      const ex = await request(this.#target, 'HEAD', {}, signal)
      const { res } = ex
      res.resume()
      ex.destroy()
      const status = res.statusCode ?? 0
      if (status === 404 || status === 410) return { exists: false, ranges: false }
      if (status < 200 || status > 299) throw statusError(this.#shown, status)
      const ranges = /\bbytes\b/i.test(String(res.headers['accept-ranges'] ?? ''))
      return { exists: true, size: parseLength(res.headers['content-length']), ranges, version: versionOf(res.headers) }
    })
  }

  #stream (
    start: number, size: number | undefined, state: DownloadState, reader: AbortSignal, isClosed: () => boolean
  ): AsyncIterable<Uint8Array> {
    const mount = this
    return (async function * (): AsyncGenerator<Uint8Array> {
      if (isClosed()) throw Object.assign(new Error('HTTP mount reader closed'), { code: 'EBADF' })
      if (size !== undefined && start >= size) return
      // The reader's signal, or the deadline: either ends the request in flight and any backoff.
      const ended = new AbortController()
      let expired: HttpTimeoutError | undefined
      const onReaderAbort = (): void => { ended.abort(reader.reason) }
      reader.addEventListener('abort', onReaderAbort, { once: true })
      if (reader.aborted) onReaderAbort()
      const deadlineMs = mount.#deadlineMs
      let deadline: NodeJS.Timeout | undefined
      if (deadlineMs !== undefined) {
        deadline = setTimeout(() => {
          expired = new HttpTimeoutError(`HTTP GET ${mount.#shown}: not done within the download deadline of ${deadlineMs} ms`)
          ended.abort(expired)
        }, deadlineMs)
        deadline.unref?.()
      }
      try {
        yield * mount.#download(start, size, state, ended.signal, () => expired ?? abortErrorFrom(reader))
      } finally {
        clearTimeout(deadline)
        reader.removeEventListener('abort', onReaderAbort)
      }
    })()
  }

  /**
   * The bytes from `start`, retrying and resuming. `stopped()` is what to throw once `signal`
   * has aborted (the reader's abort, or the deadline's timeout).
   */
  async * #download (
    start: number, size: number | undefined, state: DownloadState, signal: AbortSignal, stopped: () => Error
  ): AsyncGenerator<Uint8Array> {
    const href = this.#shown
    let pos = start // absolute offset of the next byte to yield
    for (let n = 0; ; n++) {
      if (signal.aborted) throw stopped()
      let ex: Exchange | undefined
      let failure: unknown
      try {
        const useRange = pos > 0 && state.ranges
        ex = await request(this.#target, 'GET', useRange ? { range: `bytes=${pos}-` } : {}, signal)
        const { res } = ex
        const status = res.statusCode ?? 0
        const declared = parseLength(res.headers['content-length'])
        // Every response of one download must be the same version: a resume (or a restart
        // after a server ignored Range) of a file that changed would splice two of them.
        const version = versionOf(res.headers)
        if (status === 200 || status === 206) {
          if (state.version !== undefined && version !== undefined && version !== state.version) {
            throw new HttpChangedError(`HTTP GET ${href}: the resource changed during the download (${state.version} became ${version})`)
          }
          state.version ??= version
        }
        let bodyStart: number // absolute offset of the body's first byte
        let end: number | undefined // absolute offset the body must end at
        if (status === 206) {
          if (!useRange) throw new HttpRangeError(`HTTP 206 from ${href} without a Range request`)
          const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? '').trim())
          const first = m === null ? NaN : Number(m[1])
          const last = m === null ? NaN : Number(m[2])
          const total = m === null || m[3] === '*' ? undefined : Number(m[3])
          if (first !== pos || (size !== undefined && (total !== size || last !== size - 1)) ||
            (total !== undefined && last !== total - 1) || (declared !== undefined && declared !== last - first + 1)) {
            throw new HttpRangeError(`HTTP 206 from ${href}: asked for bytes=${pos}-, got Content-Range ${JSON.stringify(res.headers['content-range'] ?? null)}`)
          }
          bodyStart = first
          end = last + 1
        } else if (status === 200) {
          // A server that ignores Range answers 200 with the whole body: never taken for a
          // resume. Stop asking it for ranges, read from 0 and skip what was already served.
          if (useRange) state.ranges = false
          bodyStart = 0
          if (size !== undefined && declared !== undefined && declared !== size) {
            throw new HttpLengthMismatchError(`HTTP GET ${href}: Content-Length ${declared} but HEAD said ${size}`)
          }
          end = declared ?? size
        } else {
          throw statusError(href, status)
        }
        let at = bodyStart // absolute offset of the next body byte
        let held: Uint8Array | undefined // the last chunk is held back until the response checks out
        try {
          for await (const chunk of res as AsyncIterable<Buffer>) {
            ex.received(chunk.byteLength)
            let c: Uint8Array = chunk
            if (end !== undefined && at + c.byteLength > end) {
              // More bytes than declared: never yield them.
              throw new HttpLengthMismatchError(`HTTP GET ${href}: body longer than its declared length ${end - bodyStart}`)
            }
            const from = at
            at += c.byteLength
            if (at <= pos) continue // skipping what was already served
            if (from < pos) c = c.subarray(pos - from)
            // Only the body's last chunk is held back, until the response checks out (no
            // bytes beyond Content-Length): everything before it is yielded at once, so a
            // retry resumes after it.
            if (end !== undefined && at === end) { held = c; continue }
            pos += c.byteLength
            ex.pause()
            yield c
            ex.resume()
          }
        } catch (err) {
          if (signal.aborted) throw stopped()
          if (err instanceof HttpLengthMismatchError || err instanceof HttpTimeoutError) throw err
          if (end !== undefined && at < end) {
            throw retryable(new HttpLengthMismatchError(`HTTP GET ${href}: connection lost after ${at - bodyStart} of ${end - bodyStart} bytes`, { cause: err }))
          }
          throw networkError(err, href)
        }
        if (end !== undefined && at < end) {
          throw retryable(new HttpLengthMismatchError(`HTTP GET ${href}: body ended after ${at - bodyStart} of ${end - bodyStart} bytes`))
        }
        // Bytes sent beyond Content-Length surface as a parse error on the connection.
        const trailing = await ex.closed
        if (trailing !== undefined && !isAbortError(trailing) && !(trailing instanceof HttpTimeoutError)) {
          throw new HttpLengthMismatchError(`HTTP GET ${href}: body longer than its Content-Length ${end ?? '?'}`, { cause: trailing })
        }
        if (held !== undefined) { const h = held; held = undefined; pos += h.byteLength; yield h }
        return
      } catch (err) {
        failure = err
      } finally {
        ex?.destroy()
      }
      if (signal.aborted) throw stopped()
      if (isAbortError(failure) || n >= this.#retries || !isRetryable(failure)) throw failure
      const delay = Math.min(this.#maxBackoffMs, this.#backoffMs * 2 ** n)
      await sleep(Math.round(delay * (0.5 + Math.random() / 2)), signal).catch(() => { throw stopped() })
    }
  }
}
