// The admin API as the page calls it: the token from this tab's session storage in an
// Authorization header (never in a URL), JSON in and out.

const TOKEN_KEY = 'dagstore.token'

/** The server refused the token (or wants one): the page asks for it again. */
export class Unauthorized extends Error {}

/** Any other refusal, with the registry code the server answered. */
export class ApiError extends Error {
  constructor (status, error) {
    super(error?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = error?.code
    this.causeCode = error?.cause?.code
  }
}

export function storedToken () {
  return sessionStorage.getItem(TOKEN_KEY)
}

export function storeToken (token) {
  sessionStorage.setItem(TOKEN_KEY, token)
}

export function forgetToken () {
  sessionStorage.removeItem(TOKEN_KEY)
}

/** Headers every admin request carries; none without a token (a server run with --no-auth on loopback). */
export function authHeaders () {
  const token = storedToken()
  return token === null ? {} : { authorization: `Bearer ${token}` }
}

/** Throws Unauthorized on 401, ApiError on any other failure. */
export async function checked (res) {
  if (res.ok) return res
  const body = await res.json().catch(() => null)
  if (res.status === 401) throw new Unauthorized(body?.error?.message ?? 'the server wants the admin token')
  throw new ApiError(res.status, body?.error)
}

export async function api (method, path, options = {}) {
  const res = await fetch(path, {
    method,
    headers: { accept: 'application/json', ...authHeaders() },
    cache: 'no-store',
    signal: options.signal
  })
  return await (await checked(res)).json()
}

/** `/shards/{key}`-style paths: the key is one percent-encoded segment. */
export function shardPath (key, suffix = '') {
  return `/shards/${encodeURIComponent(key)}${suffix}`
}
