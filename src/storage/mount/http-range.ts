// Reading an HTTP origin in place: whether it honours Range (probeRange), and positional reads
// of the version it probed (rangeTransport), each 206 checked against what was asked for.
import { once } from 'node:events'
import { finished } from 'node:stream/promises'
import { Agent as HttpAgent, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import type { Socket } from 'node:net'
import { abortErrorFrom } from '../../base/errors.js'
import type { Gate, RangeTransport } from '../remote/types.js'
import { PieceCutter, type Chunks } from '../remote/chunks.js'
import {
  HttpChangedError, HttpLengthMismatchError, HttpRangeError, HttpStatusError, HttpTimeoutError, networkError, retryable, statusError
} from './http-errors.js'
import { parseLength, request, withRetries, type Exchange, type RequestTarget, type RetryPolicy } from './http-exchange.js'

/** What identifies the version a probe saw: its ETag, else its Last-Modified date. */
export type RangeValidator = { etag: string } | { lastModified: string }

export interface RangedProbe {
  ranged: true
  size: number
  validator: RangeValidator
  /**
   * The origin's first bytes (up to PROBE_HEAD_BYTES), read by the probe itself: a CAR's header
   * (and a CARv2's index position) costs no request of its own.
   */
  head: Uint8Array
}

/** What the probe asks for: enough for a CARv2 header and a typical CARv1 header. */
const PROBE_HEAD_BYTES = 4096

/**
 * Why an origin is not read in place: it answered the ranged GET with the whole body
 * ('range-ignored'), with a Content-Range other than the one asked for ('bad-content-range'),
 * without its size ('unknown-size'), without an ETag or Last-Modified ('no-validator'), or it
 * is empty ('empty').
 */
export type RangeProbe = RangedProbe | { ranged: false, reason: 'range-ignored' | 'bad-content-range' | 'unknown-size' | 'no-validator' | 'empty' }

function validatorOf (headers: IncomingMessage['headers']): RangeValidator | undefined {
  const etag = headers.etag
  if (typeof etag === 'string' && etag !== '') return { etag }
  const lastModified = headers['last-modified']
  return typeof lastModified === 'string' && lastModified !== '' ? { lastModified } : undefined
}

function showValidator (v: RangeValidator | undefined): string {
  if (v === undefined) return 'none'
  return 'etag' in v ? `ETag ${v.etag}` : `Last-Modified ${v.lastModified}`
}

/** The key that tells versions apart: two probes of one URL with equal keys saw the same bytes. */
export function validatorKey (v: RangeValidator): string {
  return 'etag' in v ? `etag ${v.etag}` : `last-modified ${v.lastModified}`
}

interface ContentRange { first: number, last: number, total: number | undefined }

function parseContentRange (value: string | undefined): ContentRange | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((value ?? '').trim())
  if (m === null) return undefined
  const [first, last] = [Number(m[1]), Number(m[2])]
  const total = m[3] === '*' ? undefined : Number(m[3])
  return Number.isSafeInteger(last) && (total === undefined || Number.isSafeInteger(total)) ? { first, last, total } : undefined
}

/**
 * A ranged GET of the first PROBE_HEAD_BYTES: ranged only for a 206 with exactly that
 * Content-Range (shortened to the resource's size), a size and a validator. Only a 206's body
 * is read; a 200 is the whole file, never downloaded here.
 */
export async function probeRange (target: RequestTarget, policy: RetryPolicy, signal: AbortSignal): Promise<RangeProbe> {
  const href = target.shown
  return await withRetries(policy, signal, async () => {
    const ex = await request(target, 'GET', { range: `bytes=0-${PROBE_HEAD_BYTES - 1}` }, signal)
    let complete = false
    try {
      const { res } = ex
      const status = res.statusCode ?? 0
      if (status === 200) return { ranged: false, reason: 'range-ignored' }
      if (status === 404 || status === 410) throw new HttpStatusError(href, status, `HTTP mount ${href} does not exist`)
      if (status === 416) {
        const empty = /^bytes \*\/0$/.test(String(res.headers['content-range'] ?? '').trim())
        return { ranged: false, reason: empty ? 'empty' : 'bad-content-range' }
      }
      if (status !== 206) throw statusError(href, status, headerOf(res, 'retry-after'))
      const range = parseContentRange(headerOf(res, 'content-range'))
      if (range === undefined || range.first !== 0) return { ranged: false, reason: 'bad-content-range' }
      if (range.total === undefined) return { ranged: false, reason: 'unknown-size' }
      if (range.last !== Math.min(PROBE_HEAD_BYTES, range.total) - 1) return { ranged: false, reason: 'bad-content-range' }
      const validator = validatorOf(res.headers)
      if (validator === undefined) return { ranged: false, reason: 'no-validator' }
      const head = await readHead(ex, href, range.last + 1, signal)
      complete = true
      return { ranged: true, size: range.total, validator, head }
    } finally {
      if (complete) ex.release()
      else ex.destroy()
    }
  })
}

/** Exactly `length` bytes of a small 206 body (a retryable error when the connection drops). */
async function readHead (ex: Exchange, href: string, length: number, signal: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(length)
  let at = 0
  try {
    for await (const chunk of ex.res as AsyncIterable<Buffer>) {
      ex.received(chunk.byteLength)
      if (at + chunk.byteLength > length) throw new HttpLengthMismatchError(`HTTP GET ${href}: probe body longer than ${length} bytes`)
      out.set(chunk, at)
      at += chunk.byteLength
    }
  } catch (err) {
    if (signal.aborted) throw abortErrorFrom(signal)
    if (err instanceof HttpLengthMismatchError || err instanceof HttpTimeoutError) throw err
    throw retryable(networkError(err, href))
  }
  if (at < length) throw retryable(new HttpLengthMismatchError(`HTTP GET ${href}: probe body ended after ${at} of ${length} bytes`))
  return out
}

function headerOf (res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/**
 * Positional reads of the version `probe` saw, over keep-alive connections of their own (closed
 * by close()). Every answer must be a 206 with the probe's validator, exactly the Content-Range
 * asked for and exactly that many bytes: another validator or range is ERR_HTTP_CHANGED, a 200
 * (the origin stopped honouring Range) ERR_HTTP_RANGE; neither is retried. Network errors,
 * stalls, bodies below the minimum rate, 5xx and 429 are, after Retry-After when one is sent.
 */
export function rangeTransport (target: RequestTarget, policy: RetryPolicy, probe: RangedProbe): RangeTransport {
  const agent = target.url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
  const pooled: RequestTarget = { ...target, agent }
  const slots = new Slots(MAX_CONNECTIONS)
  return {
    read: async (position, length, pieceBytes, signal, options = {}) => {
      const { onPiece, into, gate } = options
      // Pieces complete so far: a retry asks only for the rest. A gated read keeps none.
      const got: Chunks[] = []
      let given = 0
      const give = (piece: Chunks): void => {
        if (gate === undefined) got.push(piece)
        onPiece?.(given++, piece)
      }
      await withRetries(policy, signal, async () => {
        // A gated read (a stream's run) lives as long as its stream and waits at its gate as
        // long as its reader does: it takes no slot, so paused streams never hold up gets.
        const slotted = gate === undefined
        if (slotted) await slots.take(signal)
        try {
          const first = given
          const from = first * pieceBytes
          await readOnce(pooled, probe, position + from, length - from, pieceBytes, signal, give,
            into === undefined ? undefined : (index) => into(first + index),
            gate === undefined ? undefined : () => (gate.granted - first) * pieceBytes, gate)
        } finally {
          if (slotted) slots.give()
        }
      })
      return got
    },
    close: async () => {
      const sockets: Socket[] = []
      for (const group of [agent.sockets, agent.freeSockets]) for (const list of Object.values(group)) sockets.push(...(list ?? []))
      agent.destroy()
      await Promise.all(sockets.map(async (s) => { if (!s.closed) await once(s, 'close') }))
    }
  }
}

/**
 * Requests one source sends at once, streams' runs aside (one per open stream). A thousand
 * concurrent gets would otherwise open a thousand connections; queued here rather than in the
 * agent, a request's stall timer starts when it is sent.
 */
const MAX_CONNECTIONS = 16

class Slots {
  #free: number
  readonly #waiting: Array<() => void> = []

  constructor (n: number) {
    this.#free = n
  }

  async take (signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw abortErrorFrom(signal)
    if (this.#free > 0) { this.#free--; return }
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => { signal.removeEventListener('abort', onAbort); resolve() }
      const onAbort = (): void => {
        const i = this.#waiting.indexOf(grant)
        if (i >= 0) this.#waiting.splice(i, 1)
        reject(abortErrorFrom(signal))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(grant)
    })
  }

  give (): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next()
    else this.#free++
  }
}

/**
 * Reads [position, position + length), handing each piece of `pieceBytes` to `onPiece` once
 * complete. With a gate, no byte beyond `allowed()` (from `position`) is taken in: the response
 * is paused there until the gate grows.
 */
async function readOnce (
  target: RequestTarget, probe: RangedProbe, position: number, length: number, pieceBytes: number, signal: AbortSignal,
  onPiece: (piece: Chunks) => void, into: ((index: number) => Uint8Array) | undefined,
  allowed: (() => number) | undefined, gate: Gate | undefined
): Promise<void> {
  const href = target.shown
  const last = position + length - 1
  const asked = `bytes=${position}-${last}`
  const ex = await request(target, 'GET', { range: asked }, signal)
  let complete = false
  try {
    const { res } = ex
    const status = res.statusCode ?? 0
    if (status === 200) throw new HttpRangeError(`HTTP GET ${href}: the origin stopped honouring Range (200 to ${asked})`)
    if (status === 416) throw new HttpChangedError(`HTTP GET ${href}: ${asked} is no longer satisfiable (416): the resource changed`)
    if (status !== 206) throw statusError(href, status, headerOf(res, 'retry-after'))
    const validator = validatorOf(res.headers)
    if (validator === undefined || validatorKey(validator) !== validatorKey(probe.validator)) {
      throw new HttpChangedError(`HTTP GET ${href}: the resource changed (${showValidator(probe.validator)} became ${showValidator(validator)})`)
    }
    const range = parseContentRange(headerOf(res, 'content-range'))
    if (range === undefined || range.first !== position || range.last !== last || range.total !== probe.size) {
      const got = JSON.stringify(res.headers['content-range'] ?? null)
      throw new HttpChangedError(`HTTP GET ${href}: asked for ${asked} of ${probe.size} bytes, got Content-Range ${got}`)
    }
    const declared = parseLength(res.headers['content-length'])
    if (declared !== undefined && declared !== length) {
      throw new HttpLengthMismatchError(`HTTP GET ${href}: Content-Length ${declared} for ${asked}`)
    }
    // The last piece is handed over once the body has ended: its reader's next request can then
    // have this connection, which the agent gets back only at the end of the response.
    let cut = 0
    let final: Chunks | undefined
    const pieces = new PieceCutter(pieceBytes, (piece) => {
      cut += piece.byteLength
      if (cut === length) final = piece
      else onPiece(piece)
    }, into)
    let at = 0
    /** Bytes that arrived beyond the gate, taken in when it grows. */
    let held: Buffer | undefined
    let drained: (() => void) | undefined
    const takeIn = (chunk: Buffer): void => {
      const room = allowed === undefined ? chunk.byteLength : allowed() - at
      const part = room >= chunk.byteLength ? chunk : chunk.subarray(0, Math.max(0, room))
      if (part.byteLength > 0) {
        pieces.push(part)
        at += part.byteLength
      }
      if (part === chunk) return
      held = chunk.subarray(part.byteLength)
      res.pause()
      ex.pause()
      gate?.onGrant(() => {
        // A grant that was on its way when the request ended takes nothing in.
        if (signal.aborted) return
        const rest = held as Buffer
        held = undefined
        try {
          takeIn(rest)
        } catch (err) {
          res.destroy(err as Error)
          return
        }
        if (held !== undefined) return
        ex.resume()
        res.resume()
        drained?.()
      })
    }
    try {
      // Flowing, not `for await`: an async iterator pauses the socket after every chunk larger
      // than the response's buffer (all of them), and each pause and resume is a round of
      // system calls. The bytes taken in were reserved before: by the request, or by the gate.
      res.on('data', (chunk: Buffer) => {
        try {
          ex.received(chunk.byteLength)
          if (at + (held?.byteLength ?? 0) + chunk.byteLength > length) {
            throw new HttpLengthMismatchError(`HTTP GET ${href}: body longer than the ${length} bytes of ${asked}`)
          }
          takeIn(chunk)
        } catch (err) {
          res.destroy(err as Error)
        }
      })
      await finished(res)
      // The body's last bytes may still wait for the gate.
      if (held !== undefined) {
        await new Promise<void>((resolve, reject) => {
          drained = resolve
          const onAbort = (): void => { reject(abortErrorFrom(signal)) }
          if (signal.aborted) onAbort()
          else signal.addEventListener('abort', onAbort, { once: true })
        })
      }
    } catch (err) {
      if (signal.aborted) throw abortErrorFrom(signal)
      if (err instanceof HttpLengthMismatchError || err instanceof HttpTimeoutError) throw err
      if (at < length) {
        throw retryable(new HttpLengthMismatchError(`HTTP GET ${href}: connection lost after ${at} of ${length} bytes of ${asked}`, { cause: err }))
      }
      throw networkError(err, href)
    }
    if (at < length) throw retryable(new HttpLengthMismatchError(`HTTP GET ${href}: body ended after ${at} of ${length} bytes of ${asked}`))
    pieces.finish()
    complete = true
    if (final !== undefined) onPiece(final)
  } finally {
    if (complete) ex.release()
    else ex.destroy()
  }
}
