// A real HTTP server on 127.0.0.1 (port 0) for tests: every request logged, sockets tracked so
// close() never waits on a kept-alive or stalled connection.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void

export interface TestServer {
  url: string
  /** Every request seen: method, Range header, all headers. */
  log: Array<{ method: string, range: string | undefined, headers: IncomingMessage['headers'] }>
  close: () => Promise<void>
}

/** Serves `body` properly: HEAD, GET, and (when `ranges`) `Range: bytes=N-`. */
export function standard (body: Uint8Array, opts: { ranges?: boolean } = {}): Handler {
  const ranges = opts.ranges ?? true
  return (req, res) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/vnd.ipld.car' }
    if (ranges) headers['accept-ranges'] = 'bytes'
    const m = ranges ? /^bytes=(\d+)-$/.exec(req.headers.range ?? '') : null
    if (m !== null) {
      const start = Number(m[1])
      res.writeHead(206, {
        ...headers,
        'content-length': body.byteLength - start,
        'content-range': `bytes ${start}-${body.byteLength - 1}/${body.byteLength}`
      })
      res.end(req.method === 'HEAD' ? undefined : body.subarray(start))
      return
    }
    res.writeHead(200, { ...headers, 'content-length': body.byteLength })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
}

export async function serve (handler: Handler): Promise<TestServer> {
  const log: TestServer['log'] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    log.push({ method: req.method ?? '', range: req.headers.range, headers: req.headers })
    handler(req, res, log.length - 1)
  })
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/sample-v1.car`,
    log,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export async function withServer (handler: Handler, fn: (srv: TestServer) => Promise<void>): Promise<void> {
  const srv = await serve(handler)
  try {
    await fn(srv)
  } finally {
    await srv.close()
  }
}

/** Sends all of `body` (200, never a range), `bytes` every `everyMs`: bytes keep coming, so no stall timeout fires. */
export function paced (body: Uint8Array, bytes: number, everyMs: number): Handler {
  return (req, res, n) => {
    if (req.method === 'HEAD') { standard(body, { ranges: false })(req, res, n); return }
    res.writeHead(200, { 'content-length': body.byteLength })
    let at = 0
    const timer = setInterval(() => {
      if (res.destroyed) { clearInterval(timer); return }
      res.write(body.subarray(at, at + bytes))
      at += bytes
      if (at >= body.byteLength) { clearInterval(timer); res.end() }
    }, everyMs)
    res.on('close', () => { clearInterval(timer) })
  }
}
