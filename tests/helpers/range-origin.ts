// An origin for reads in place: serves `body` with `Range: bytes=a-b` and `bytes=a-` (206 and an
// exact Content-Range), an ETag and/or a Last-Modified. Its fields may be changed between
// requests to make it misbehave (a new ETag, Range ignored).
import type { Handler } from './http-server.js'

export interface Origin {
  body: Uint8Array
  etag?: string | undefined
  lastModified?: string | undefined
  /** False: answers every GET with 200 and the whole body, as an origin ignoring Range does. */
  ranges: boolean
}

export function rangeOrigin (origin: Origin): Handler {
  return (req, res) => {
    const { body } = origin
    const headers: Record<string, string | number> = { 'content-type': 'application/vnd.ipld.car' }
    if (origin.etag !== undefined) headers.etag = origin.etag
    if (origin.lastModified !== undefined) headers['last-modified'] = origin.lastModified
    const m = origin.ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null
    if (m === null) {
      res.writeHead(200, { ...headers, 'content-length': body.byteLength })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    const first = Number(m[1])
    const last = m[2] === '' ? body.byteLength - 1 : Math.min(Number(m[2]), body.byteLength - 1)
    if (first >= body.byteLength) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${body.byteLength}` })
      res.end()
      return
    }
    const range = `bytes ${first}-${last}/${body.byteLength}`
    res.writeHead(206, { ...headers, 'accept-ranges': 'bytes', 'content-length': last - first + 1, 'content-range': range })
    res.end(req.method === 'HEAD' ? undefined : body.subarray(first, last + 1))
  }
}

/** The [start, end) a logged `Range: bytes=a-b` asked for. */
export function askedRange (range: string | undefined): [number, number] {
  const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '')
  if (m === null) throw new Error(`not a closed range: ${String(range)}`)
  return [Number(m[1]), Number(m[2]) + 1]
}
