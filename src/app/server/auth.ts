/**
 * Who may use the admin routes: a bearer token, or nobody-but-this-machine when auth is off.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { HttpError } from './http-util.js'
import { CODE } from '../../base/errors/codes.js'
import { isLoopback } from '../loopback.js'

// RFC 6750 b64token: what fits in `Authorization: Bearer <token>` unquoted.
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

export function validateToken (token: string): void {
  if (!TOKEN.test(token)) throw new TypeError('token must be non-empty and use only A-Z a-z 0-9 - . _ ~ + / (then =)')
}

function digest (s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

const CHALLENGE = 'Bearer realm="dagstore"'

/**
 * Throws 401 unless the request carries the token. Hashing both sides first makes the
 * comparison constant-time whatever the presented token's length.
 */
export function bearerCheck (token: string): (req: IncomingMessage) => void {
  const expected = digest(token)
  return (req) => {
    const header = req.headers.authorization
    const presented = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1]
    if (presented === undefined) {
      throw new HttpError(CODE.ERR_UNAUTHORIZED, 'admin routes need Authorization: Bearer <token>', { headers: { 'www-authenticate': CHALLENGE } })
    }
    if (!timingSafeEqual(digest(presented), expected)) {
      throw new HttpError(CODE.ERR_UNAUTHORIZED, 'invalid bearer token', { headers: { 'www-authenticate': `${CHALLENGE}, error="invalid_token"` } })
    }
  }
}

function hostnameOf (hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1)
  const colon = hostHeader.lastIndexOf(':')
  return colon < 0 ? hostHeader : hostHeader.slice(0, colon)
}

/**
 * Without a token, loopback is the only barrier, and a web page the operator has open could
 * still reach it: a cross-site request (Origin set and not this server) and a DNS-rebound name
 * (Host not a loopback name) are refused.
 */
export function loopbackCheck (): (req: IncomingMessage) => void {
  return (req) => {
    const host = req.headers.host ?? ''
    if (!isLoopback(hostnameOf(host))) {
      throw new HttpError(CODE.ERR_FORBIDDEN_HOST, 'without a token the admin API answers only to a loopback Host')
    }
    const origin = req.headers.origin
    if (origin !== undefined && origin !== `http://${host}`) {
      throw new HttpError(CODE.ERR_FORBIDDEN_ORIGIN, 'cross-origin admin requests are refused')
    }
  }
}
