/**
 * What `register` and `import` accept, and the keys they derive. Keys must be stable (running
 * the same import twice finds the same keys, so it skips instead of duplicating) and
 * readable: a file's name without `.car`, or its path below the import folder.
 */
import { readdir, stat } from 'node:fs/promises'
import { basename, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CID } from 'multiformats/cid'
import { CODE } from '../../base/errors/codes.js'
import { isMissing } from '../../base/errors/inspect.js'
import { redactUrl } from '../../base/redact.js'
import { unregistrable } from '../mount-policy.js'
import { CliError, EXIT_USAGE, UsageError } from './errors.js'

export interface Target {
  /** As the user typed it. */
  arg: string
  /** The mount URL: file: (absolute) or http(s). */
  url: string
  /** The local file, for file: targets. */
  path?: string
}

const CAR_SUFFIX = /\.car$/i

function stripCar (name: string): string {
  const stripped = name.replace(CAR_SUFFIX, '')
  return stripped === '' ? name : stripped
}

function notFound (path: string, err: unknown, what: string): unknown {
  if (isMissing(err)) return new CliError(CODE.ERR_FILE_NOT_FOUND, `${path}: no such ${what}`)
  return err
}

/** `scheme:` at the start; a one-letter scheme is a Windows drive (`C:\cars\x.car`), a path. */
const SCHEME = /^([a-z][a-z\d+.-]+):/i

/**
 * A path (relative to `cwd`) or an http(s)/file URL; local files must exist (better now than
 * an errored shard). Anything else with a scheme is a URL of a kind register does not take.
 */
export async function parseTarget (arg: string, cwd: string): Promise<Target> {
  const scheme = SCHEME.exec(arg)?.[1]?.toLowerCase()
  if (scheme !== undefined && scheme !== 'file') {
    let url: URL
    try {
      url = new URL(arg)
    } catch {
      throw new UsageError(`invalid URL: ${redactUrl(arg)}`)
    }
    if (scheme === 'http' || scheme === 'https') return { arg, url: url.href }
    const refused = unregistrable(url)
    if (refused !== undefined) throw new CliError(CODE.ERR_MOUNT_SCHEME_NOT_ALLOWED, refused)
    // `deal:1.car` may well be a file: say how to name it.
    const couldBeAFile = !arg.slice(scheme.length + 1).startsWith('//')
    throw new CliError(CODE.ERR_UNKNOWN_MOUNT_SCHEME, `${redactUrl(arg)}: no mount for ${scheme}: URLs (register takes a path, a file: URL or an http(s) URL)`,
      couldBeAFile ? { hint: `for a file of that name, write ./${arg}` } : {})
  }
  let path: string
  if (scheme === 'file') {
    try {
      path = fileURLToPath(arg)
    } catch {
      throw new UsageError(`invalid file URL: ${redactUrl(arg)}`)
    }
  } else {
    path = resolve(cwd, arg)
  }
  const st = await stat(path).catch((err: unknown) => { throw notFound(path, err, 'file') })
  if (!st.isFile()) throw new CliError(CODE.ERR_NOT_A_FILE, `${path} is not a file${st.isDirectory() ? ' (use `dagstore import` for a folder)' : ''}`)
  return { arg, url: pathToFileURL(path).href, path }
}

/** The key `register` uses: the file name (or the URL's last path segment) without `.car`. */
export function keyFor (target: Target): string {
  if (target.path !== undefined) return stripCar(basename(target.path))
  const url = new URL(target.url)
  const segments = url.pathname.split('/').filter((s) => s !== '')
  const last = segments.at(-1)
  if (last === undefined) return url.host
  let name = last
  try {
    name = decodeURIComponent(last)
  } catch {}
  return stripCar(name)
}

export interface CarFile {
  path: string
  /** Its path below the import folder, '/'-separated, without `.car`. */
  key: string
}

/**
 * Every `*.car` file below `root`, in a stable order. `skip` (the repo folder, whose
 * transients are named *.car) is not descended into.
 */
export async function findCars (root: string, skip: string[] = []): Promise<CarFile[]> {
  const top = resolve(root)
  const st = await stat(top).catch((err: unknown) => { throw notFound(top, err, 'folder') })
  if (!st.isDirectory()) throw new CliError(CODE.ERR_NOT_A_DIRECTORY, `${top} is not a folder (use \`dagstore register\` for a file)`)
  const skipped = new Set(skip.map((p) => resolve(p)))
  const out: CarFile[] = []
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true })
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    for (const e of entries) {
      const path = join(dir, e.name)
      let isDir = e.isDirectory()
      let isFile = e.isFile()
      if (e.isSymbolicLink()) {
        const target = await stat(path).catch(() => undefined)
        isFile = target?.isFile() === true
        // Symlinked folders are not followed: they can loop.
        isDir = false
      }
      if (isDir) {
        if (!skipped.has(path)) await walk(path)
      } else if (isFile && CAR_SUFFIX.test(e.name)) {
        out.push({ path, key: stripCar(relative(top, path).split(sep).join('/')) })
      }
    }
  }
  await walk(top)
  return out
}

export function parseCid (arg: string): CID {
  try {
    return CID.parse(arg)
  } catch {
    throw new CliError(CODE.ERR_INVALID_CID, `not a CID: ${arg}`, { exitCode: EXIT_USAGE })
  }
}
