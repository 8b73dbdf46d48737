/**
 * Which local files POST /shards may mount: only regular files below the configured folders,
 * checked on the real path (symlinks resolved), so the API cannot be used to read anything else.
 */
import { realpath, stat } from 'node:fs/promises'
import { isAbsolute, relative, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { HttpError } from './http-util.js'
import { CODE } from '../../base/errors/codes.js'

function inside (child: string, root: string): boolean {
  const rel = relative(root, child)
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel))
}

function forbidden (message: string): HttpError {
  return new HttpError(CODE.ERR_FORBIDDEN_PATH, message)
}

function invalid (message: string, cause?: unknown): HttpError {
  return new HttpError(CODE.ERR_INVALID_MOUNT, message, { cause })
}

export class AllowRoots {
  /** As given (resolved) and as real paths: a request may name a file through either. */
  private readonly given: string[]
  private readonly real: string[]

  private constructor (given: string[], real: string[]) {
    this.given = given
    this.real = real
  }

  /** Every root must be an existing folder (a typo should fail `serve`, not every later request). */
  static async resolve (roots: readonly string[]): Promise<AllowRoots> {
    const given: string[] = []
    const real: string[] = []
    for (const root of roots) {
      if (typeof root !== 'string' || root === '') throw new TypeError('allowRoots entries must be non-empty paths')
      const abs = resolve(root)
      const r = await realpath(abs)
      if (!(await stat(r)).isDirectory()) throw new TypeError(`allow root ${root} is not a folder`)
      given.push(abs)
      real.push(r)
    }
    return new AllowRoots(given, real)
  }

  get size (): number {
    return this.real.length
  }

  /**
   * The canonical `file:` URL (real path) to mount for `raw`, or 403/400. Mounting the real
   * path means a symlink swapped later inside a root cannot redirect the shard elsewhere.
   */
  async check (raw: string, url: URL): Promise<URL> {
    if (this.real.length === 0) throw forbidden('file: URLs are refused (the server allows no local folders)')
    // URL parsing already folds '..' away; refusing it outright keeps intent obvious and covers %2e%2e.
    let decoded = raw
    try { decoded = decodeURIComponent(raw) } catch {}
    if (/(^|[/\\])\.\.([/\\]|$)/.test(decoded)) throw forbidden("'..' is not allowed in file: URLs")
    let path: string
    try {
      path = fileURLToPath(url)
    } catch (err) {
      throw invalid(`invalid file: URL: ${(err as Error).message}`, err)
    }
    // Nothing outside the roots is touched on disk, so the answer says nothing about what exists there.
    if (!this.given.some((r) => inside(path, r)) && !this.real.some((r) => inside(path, r))) {
      throw forbidden(`${path} is not below an allowed folder`)
    }
    let real: string
    try {
      real = await realpath(path)
    } catch (err) {
      throw invalid(`cannot mount ${path}: ${(err as Error).message}`, err)
    }
    if (!this.real.some((r) => inside(real, r))) throw forbidden(`${path} resolves outside the allowed folders`)
    const st = await stat(real)
    if (!st.isFile()) throw invalid(`${path} is not a regular file`)
    return pathToFileURL(real)
  }
}

/**
 * A file: URL from a caller trusted with any local file (a loopback server's token holder):
 * the real path of an existing regular file, or ERR_INVALID_MOUNT.
 */
export async function localFile (url: URL): Promise<URL> {
  let path: string
  try {
    path = fileURLToPath(url)
  } catch (err) {
    throw invalid(`invalid file: URL: ${(err as Error).message}`, err)
  }
  let real: string
  try {
    real = await realpath(path)
  } catch (err) {
    throw invalid(`cannot mount ${path}: ${(err as Error).message}`, err)
  }
  if (!(await stat(real)).isFile()) throw invalid(`${path} is not a regular file`)
  return pathToFileURL(real)
}
