// One HTTP request with the mount's per-request limits: a stall timeout reset on every chunk and
// a minimum body rate (rate-floor.ts). Retries and what a response must look like are the
// callers' (http.ts for downloads, http-range.ts for ranged reads in place).
import * as http from 'node:http'
import * as https from 'node:https'
import type { IncomingMessage } from 'node:http'
import { abortErrorFrom, isAbortError } from '../../base/errors.js'
import { HttpTimeoutError, isRetryable, networkError, retryable, retryAfterMsOf } from './http-errors.js'
import { RateFloor } from './rate-floor.js'

/** Where and how to send: the mount's URL, headers and limits, and (for keep-alive) an agent. */
export interface RequestTarget {
  url: URL
  /** The URL as errors show it: credentials redacted. */
  shown: string
  headers: Record<string, string>
  timeoutMs: number
  minBytesPerSecond: number
  rateWindowMs: number
  /** Keep-alive connections to reuse; without one, each request has its own connection. */
  agent?: http.Agent | undefined
}

/** How retries back off: `backoffMs` doubling (with jitter) up to `maxBackoffMs`; a Retry-After is waited instead, up to `maxRetryAfterMs`. */
export interface RetryPolicy {
  retries: number
  backoffMs: number
  maxBackoffMs: number
  maxRetryAfterMs: number
}

export function parseLength (value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined
  const n = Number(value.trim())
  return Number.isSafeInteger(n) ? n : undefined
}

export async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw abortErrorFrom(signal)
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(abortErrorFrom(signal)) }
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

export interface Exchange {
  res: IncomingMessage
  /** Call on every body chunk: resets the stall timer and counts the bytes for the minimum rate. */
  received: (bytes: number) => void
  /**
   * While the consumer holds a chunk or has paused the response: not the server's time, so
   * measured neither against the minimum rate nor by the stall timer.
   */
  pause: () => void
  resume: () => void
  /** Resolves once the connection is gone; with the error it ended with (e.g. a parse error from bytes beyond Content-Length), if any. */
  closed: Promise<Error | undefined>
  /** Tears the request down (idempotent). */
  destroy: (err?: Error) => void
  /** Done with a response whose body was read to its end: stops the timers and leaves the connection to its agent. */
  release: () => void
}

export async function request (target: RequestTarget, method: 'GET' | 'HEAD', extra: Record<string, string>, signal: AbortSignal): Promise<Exchange> {
  if (signal.aborted) throw abortErrorFrom(signal)
  const { shown: href, timeoutMs, minBytesPerSecond, rateWindowMs, agent } = target
  const mod = target.url.protocol === 'https:' ? https : http
  // Without an agent every request has its own connection, closed when it ends: nothing to leak.
  const connection: Record<string, string> = agent === undefined ? { connection: 'close' } : {}
  const headers: Record<string, string> = { ...target.headers, 'accept-encoding': 'identity', ...connection, ...extra }
  if (extra.range === undefined) {
    for (const k of Object.keys(headers)) if (k.toLowerCase() === 'range') delete headers[k]
  }
  return await new Promise<Exchange>((resolve, reject) => {
    let settled = false
    let lastError: Error | undefined
    let resObj: IncomingMessage | undefined
    let timer: NodeJS.Timeout | undefined
    let floor: RateFloor | undefined
    let resolveClosed!: (err: Error | undefined) => void
    const closed = new Promise<Error | undefined>((resolve) => { resolveClosed = resolve })
    const req = mod.request(target.url, { method, headers, agent: agent ?? false })
    let ended = false
    const destroy = (err?: Error): void => {
      ended = true
      clearTimeout(timer)
      floor?.stop()
      signal.removeEventListener('abort', onAbort)
      if (err !== undefined && resObj !== undefined && !resObj.destroyed) resObj.destroy(err)
      req.destroy(err)
    }
    const release = (): void => {
      ended = true
      clearTimeout(timer)
      floor?.stop()
      signal.removeEventListener('abort', onAbort)
    }
    const fail = (err: Error): void => {
      lastError ??= err
      if (!settled) { settled = true; destroy(err); reject(err) } else destroy(err)
    }
    let paused = false
    const touch = (): void => {
      // refresh() re-arms the one timer: a new timer per chunk showed up in download profiles.
      if (ended) return // a refreshed timer would come back to life
      if (timer !== undefined) { timer.refresh(); return }
      timer = setTimeout(() => {
        // Paused: the wait is the consumer's; the timer stays armed (cheaper than a new one per chunk).
        if (paused) { timer?.refresh(); return }
        fail(retryable(new HttpTimeoutError(`HTTP ${method} ${href}: nothing received for ${timeoutMs} ms`)))
      }, timeoutMs)
      timer.unref?.()
    }
    const received = (bytes: number): void => {
      touch()
      if (minBytesPerSecond === 0 || ended) return
      if (floor === undefined) {
        // From the first body byte: a server that sends headers and then nothing is the stall timer's.
        floor = new RateFloor({
          minBytesPerSecond,
          windowMs: rateWindowMs,
          onTooSlow: (got, ms) => {
            fail(retryable(new HttpTimeoutError(`HTTP ${method} ${href}: ${got} bytes in ${Math.round(ms)} ms, below the minimum of ${minBytesPerSecond} bytes/s`)))
          }
        })
        floor.start()
      }
      floor.received(bytes)
    }
    const onAbort = (): void => { fail(abortErrorFrom(signal)) }
    signal.addEventListener('abort', onAbort, { once: true })
    // Always listened to: a late error (e.g. bytes beyond Content-Length) must never crash the process.
    req.on('error', (err) => {
      lastError ??= err
      if (!settled) { settled = true; destroy(); reject(networkError(err, href)) }
    })
    req.on('close', () => { ended = true; clearTimeout(timer); floor?.stop(); signal.removeEventListener('abort', onAbort); resolveClosed(lastError) })
    req.on('response', (res) => {
      resObj = res
      res.on('error', (err) => { lastError ??= err })
      if (settled) { res.destroy(); return }
      settled = true
      touch()
      const pause = (): void => {
        paused = true
        floor?.pause()
      }
      const resume = (): void => {
        if (!paused) return
        paused = false
        floor?.resume()
        touch()
      }
      resolve({ res, received, pause, resume, closed, destroy, release })
    })
    touch()
    req.end()
  })
}

/** How long to wait before attempt `n + 1` after `err`. */
function retryDelay (err: unknown, n: number, policy: RetryPolicy): number {
  const after = retryAfterMsOf(err)
  if (after !== undefined) return Math.min(policy.maxRetryAfterMs, after)
  const delay = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** n)
  return Math.round(delay * (0.5 + Math.random() / 2))
}

/** `attempt` until it succeeds, fails for good, or `policy.retries` retries are spent. */
export async function withRetries<T> (policy: RetryPolicy, signal: AbortSignal, attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n)
    } catch (err) {
      if (signal.aborted) throw abortErrorFrom(signal)
      if (isAbortError(err) || n >= policy.retries || !isRetryable(err)) throw err
      await sleep(retryDelay(err, n, policy), signal)
    }
  }
}
