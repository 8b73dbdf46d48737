// Small HTTP client and port helpers the cluster and gateway tests share.
import { request, type IncomingHttpHeaders } from 'node:http'
import { createServer } from 'node:net'

/** A loopback port free now (for a server whose URL must be known before it starts). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

export interface Reply { status: number, headers: IncomingHttpHeaders, body: Buffer, error?: Error }

/**
 * One request with node:http; a response cut mid-body resolves with `error` and the bytes so
 * far (what a trustless gateway does when a block goes missing mid-stream).
 */
export async function call (url: string, method = 'GET', timeoutMs = 20_000): Promise<Reply> {
  return await new Promise<Reply>((resolve, reject) => {
    const req = request(url, { method, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = []
      let settled = false
      const done = (error?: Error): void => {
        if (settled) return
        settled = true
        const reply: Reply = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }
        if (error !== undefined) reply.error = error
        resolve(reply)
      }
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { done() })
      res.on('error', done)
      res.on('aborted', () => { done(new Error('aborted')) })
    })
    req.on('error', reject)
    req.end()
  })
}
