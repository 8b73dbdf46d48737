import { DAGStoreError, InvalidMountError, UnknownMountSchemeError } from '../../base/errors.js'
import { BytesMount } from './bytes.js'
import { FileMount } from './file.js'
import { HttpMount } from './http.js'
import type { Mount, MountFactory } from '../../base/mount-types.js'
import { redactUrl } from '../../base/redact.js'

// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/

/**
 * The schemes every `new MountRegistry()` starts with.
 * `http`/`https` restore an HttpMount from its URL alone (no custom headers). A registry whose
 * HTTP shards need headers starts with `{ builtins: false }` and registers its own factories,
 * e.g. `reg.register('https', (url) => new HttpMount(url, { headers }))`.
 */
const BUILTIN_MOUNTS: ReadonlyArray<readonly [scheme: string, factory: MountFactory]> = [
  ['file', (url) => FileMount.fromURL(url)],
  ['bytes', (url) => BytesMount.fromURL(url)],
  ['http', (url) => new HttpMount(url)],
  ['https', (url) => new HttpMount(url)]
]

export interface MountRegistryOptions {
  /** Start with the built-in schemes (file, bytes, …). Default true. */
  builtins?: boolean
}

function isMount (value: unknown): value is Mount {
  const m = value as Partial<Mount> | null
  return typeof m === 'object' && m !== null && typeof m.fetch === 'function' &&
    typeof m.info === 'function' && typeof m.stat === 'function' && typeof m.serialize === 'function'
}

/**
 * Binds URL schemes to mount factories, so a mount persisted as a URL (`represent`) can be
 * recreated after a restart (`instantiate`).
 */
export class MountRegistry {
  readonly #factories = new Map<string, MountFactory>()

  constructor (options: MountRegistryOptions = {}) {
    if (options.builtins !== false) {
      for (const [scheme, factory] of BUILTIN_MOUNTS) this.register(scheme, factory)
    }
  }

  /**
   * Binds `scheme` (without the colon, e.g. `'block'`; case-insensitive like URL schemes) to
   * `factory`. Throws InvalidMountError for a malformed or already registered scheme.
   */
  register (scheme: string, factory: MountFactory): void {
    if (typeof scheme !== 'string' || !SCHEME.test(scheme)) {
      const hint = typeof scheme === 'string' && scheme.endsWith(':') ? ' (pass it without the colon)' : ''
      throw new InvalidMountError(`invalid mount scheme ${JSON.stringify(scheme)}${hint}`)
    }
    if (typeof factory !== 'function') throw new InvalidMountError(`mount factory for ${scheme} is not a function`)
    const key = scheme.toLowerCase()
    if (this.#factories.has(key)) throw new InvalidMountError(`mount scheme ${key} is already registered`)
    this.#factories.set(key, factory)
  }

  has (scheme: string): boolean {
    return typeof scheme === 'string' && this.#factories.has(scheme.toLowerCase())
  }

  /** The registered schemes (lower case, no colon). */
  schemes (): string[] {
    return [...this.#factories.keys()]
  }

  /**
   * The mount `url` stands for. UnknownMountSchemeError for an unregistered scheme;
   * InvalidMountError for an unparsable URL or a factory that rejects it.
   */
  instantiate (url: URL | string): Mount {
    let u: URL
    try {
      // A copy either way: factories may keep or alter the URL they are given.
      u = new URL(typeof url === 'string' ? url : url.href)
    } catch (err) {
      throw new InvalidMountError(`invalid mount URL: ${redactUrl(String(url))}`, { cause: err })
    }
    const scheme = u.protocol.slice(0, -1)
    const factory = this.#factories.get(scheme)
    if (factory === undefined) throw new UnknownMountSchemeError(`no mount registered for scheme ${scheme}:`)
    let mount: unknown
    try {
      mount = factory(u)
    } catch (err) {
      if (err instanceof DAGStoreError) throw err
      throw new InvalidMountError(`mount factory for ${scheme}: rejected its URL`, { cause: err })
    }
    if (!isMount(mount)) throw new InvalidMountError(`mount factory for ${scheme}: did not return a mount`)
    return mount
  }

  /**
   * The URL `mount` persists as. UnknownMountSchemeError when its scheme is not registered here
   * (it could not be instantiated again after a restart).
   */
  represent (mount: Mount): URL {
    if (!isMount(mount)) throw new InvalidMountError('not a mount: fetch, info, stat and serialize are required')
    let url: unknown
    try {
      url = mount.serialize()
    } catch (err) {
      throw new InvalidMountError('mount.serialize() failed', { cause: err })
    }
    if (!(url instanceof URL)) throw new InvalidMountError('mount.serialize() did not return a URL')
    const scheme = url.protocol.slice(0, -1)
    if (!this.#factories.has(scheme)) throw new UnknownMountSchemeError(`no mount registered for scheme ${scheme}:`)
    return url
  }
}
