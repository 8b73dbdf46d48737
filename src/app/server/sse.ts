/**
 * GET /events: the store's traces as server-sent events.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { DAGStore } from '../../engine/store.js'
import type { Trace } from '../../base/types.js'
import { errorJson, infoJson, type ShardInfoJson } from '../wire.js'
import { CODE } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'
import { drained } from './http-util.js'

function frame (event: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so one data: line always holds the whole event.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

export interface SseOptions {
  heartbeatMs: number
  /** Aborted when the server closes: the stream ends cleanly. */
  closing: AbortSignal
  onError: (err: unknown, context: string) => void
}

/**
 * Streams every trace published from the moment the headers are sent (the subscription exists
 * before them, so a client that has seen the response misses nothing after it). A slow reader
 * is not buffered for: the store's event buffer bounds it, and a subscriber that lags gets
 * `event: lagged` and the end of the stream.
 */
export async function streamTraces (store: DAGStore, req: IncomingMessage, res: ServerResponse, options: SseOptions): Promise<void> {
  const ac = new AbortController()
  const stop = (): void => { ac.abort() }
  // Throws StoreClosedError before anything is written: the caller answers 503.
  const traces = store.traces({ signal: ac.signal })
  res.on('close', stop)
  options.closing.addEventListener('abort', stop, { once: true })
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no'
  })
  res.write(': subscribed\n\n')
  const writable = (): boolean => !res.writableEnded && !res.destroyed
  const heartbeat = setInterval(() => { if (writable()) res.write(': ping\n\n') }, options.heartbeatMs)
  heartbeat.unref()
  try {
    for await (const trace of traces) {
      if (!writable()) break
      if (!res.write(frame('trace', traceJson(trace)))) await drained(res, ac.signal)
    }
  } catch (err) {
    const code = codeOf(err)
    if (code === CODE.ERR_SUBSCRIPTION_LAGGED) {
      if (writable()) res.write(frame('lagged', errorJson(err)))
    } else if (code !== CODE.ABORT_ERR) {
      options.onError(err, 'GET /events')
    }
  } finally {
    clearInterval(heartbeat)
    res.off('close', stop)
    options.closing.removeEventListener('abort', stop)
    await traces.return?.()
    if (writable()) res.end()
    req.resume()
  }
}

function traceJson (t: Trace): { key: string, op: string, after: ShardInfoJson } {
  return { key: t.key, op: t.op, after: infoJson(t.after) }
}
