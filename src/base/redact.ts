/**
 * Mount URLs may carry secrets: `http://user:password@host/…`, `?token=…`, a presigned URL's
 * `X-Amz-Signature`. The store keeps the URL as given (the mount needs it), but every place
 * that shows one — listings, logs, error messages, events — shows `redactUrl(url)` instead.
 */

/**
 * Query (and fragment) parameters whose values are secrets, compared case-insensitively. README
 * lists them; add a name here, never remove one.
 */
export const SECRET_PARAMS: readonly string[] = Object.freeze([
  'token', 'access_token', 'id_token', 'refresh_token',
  'auth', 'authorization',
  'key', 'apikey', 'api_key', 'api-key',
  'password', 'passwd', 'secret', 'client_secret',
  'sig', 'signature',
  'x-amz-signature', 'x-amz-credential', 'x-amz-security-token',
  'x-goog-signature', 'x-goog-credential'
])

/** What a redacted value reads as. */
export const REDACTED = '***'

const SECRET = new Set(SECRET_PARAMS)

function paramName (raw: string): string {
  const name = raw.replace(/\+/g, ' ')
  try {
    return decodeURIComponent(name).toLowerCase()
  } catch {
    return name.toLowerCase()
  }
}

/** `a=1&token=x` → `a=1&token=***`; undefined when nothing in it is secret. */
function redactParams (params: string): string | undefined {
  let changed = false
  const out = params.split('&').map((part) => {
    const eq = part.indexOf('=')
    if (eq < 0 || eq === part.length - 1 || !SECRET.has(paramName(part.slice(0, eq)))) return part
    changed = true
    return `${part.slice(0, eq + 1)}${REDACTED}`
  })
  return changed ? out.join('&') : undefined
}

/**
 * Text that is not a URL (a user's typo, say) may still hold one's secrets: a best effort on
 * the same rules, by pattern.
 */
function redactText (text: string): string {
  return text
    .replace(/^([a-z][a-z\d+.-]*:\/\/)([^/?#\\]*)@/i, (_m, scheme: string, userinfo: string) =>
      `${scheme}${userinfo.includes(':') ? `${REDACTED}:${REDACTED}` : REDACTED}@`)
    .replace(/([?#&;])([^=&#;?]+)=([^&#;]*)/g, (m, sep: string, name: string) =>
      SECRET.has(paramName(name)) ? `${sep}${name}=${REDACTED}` : m)
}

/**
 * `url` fit to show: userinfo becomes `***` (`***:***` with a password) and the values of
 * secret-named query and fragment parameters become `***`. A URL without either comes back
 * exactly as given (file: and bytes: URLs, most http: ones); so does anything else that holds
 * no secret.
 */
export function redactUrl (url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return redactText(url)
  }
  let changed = false
  if (u.username !== '' || u.password !== '') {
    const hadPassword = u.password !== ''
    u.username = REDACTED
    u.password = hadPassword ? REDACTED : ''
    changed = true
  }
  const search = u.search === '' ? undefined : redactParams(u.search.slice(1))
  if (search !== undefined) { u.search = search; changed = true }
  const hash = u.hash === '' ? undefined : redactParams(u.hash.slice(1))
  if (hash !== undefined) { u.hash = hash; changed = true }
  return changed ? u.href : url
}
