/**
 * The status page: GET / and its few static files (ui/ at the package root, shipped as they
 * are: no build step). Public like /healthz: the shell holds no data; the page reads the
 * token-guarded admin routes with the token the operator types in.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { etagMatches } from './http-util.js'

// dist/src/app/server/ → the package root, in the repo and in an installed package alike.
const UI_DIR = new URL('../../../../ui/', import.meta.url)

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml'
}

/** URL path → file in ui/. Only these are served: no path reaches the file system otherwise. */
const FILES = new Map<string, string>([
  ['/', 'index.html'],
  ...['app.js', 'api.js', 'events.js', 'plot.js', 'format.js', 'style.css', 'favicon.svg'].map((f): [string, string] => [`/ui/${f}`, f])
])

// Only this origin's files and requests; a form can never send the token anywhere (not even
// here, in a URL), and no other site may frame the page.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

interface Asset { body: Buffer, type: string, etag: string }

const loaded = new Map<string, Promise<Asset>>()

async function load (file: string): Promise<Asset> {
  const body = await readFile(new URL(file, UI_DIR))
  const type = TYPES[file.slice(file.lastIndexOf('.') + 1)] ?? 'application/octet-stream'
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` }
}

/** The ui/ file behind `path`, or undefined when `path` is not the page's. */
export function statusPageFile (path: string): string | undefined {
  return FILES.get(path)
}

export async function serveStatusPage (req: IncomingMessage, res: ServerResponse, file: string): Promise<void> {
  let asset = loaded.get(file)
  if (asset === undefined) {
    asset = load(file)
    loaded.set(file, asset)
    // A failed read (a broken install) is retried by the next request, not remembered.
    asset.catch(() => { loaded.delete(file) })
  }
  const { body, type, etag } = await asset
  const headers = {
    'content-type': type,
    // Revalidated on every load: an upgraded server serves its own page at once.
    'cache-control': 'no-cache',
    etag,
    'x-content-type-options': 'nosniff',
    'content-security-policy': CSP,
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY'
  }
  const ifNoneMatch = req.headers['if-none-match']
  if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag)) {
    res.writeHead(304, headers)
    res.end()
    return
  }
  res.writeHead(200, { ...headers, 'content-length': String(body.byteLength) })
  res.end(body)
}
