import { stat as fsStat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { InvalidMountError, abortErrorFrom } from '../../base/errors.js'
import { isMissing } from '../../base/errors/inspect.js'
import { openFileReader } from '../transients/file-reader.js'
import type { Mount, MountInfo, MountReader, MountStat } from '../../base/mount-types.js'

const FILE_INFO: MountInfo = Object.freeze({ kind: 'local', sequential: true, seek: true, random: true })

/**
 * A CAR file on the local filesystem, read in place (it has random access, so the store keeps
 * no transient copy of it).
 */
export class FileMount implements Mount {
  /** The absolute path, resolved when the mount was made (a later chdir does not move it). */
  readonly path: string

  constructor (path: string) {
    if (typeof path !== 'string' || path === '') throw new InvalidMountError('FileMount needs a non-empty path')
    if (path.includes('\0')) throw new InvalidMountError('FileMount path contains a NUL byte')
    this.path = resolve(path)
  }

  /** The mount a `file:` URL (as made by `serialize()`) stands for. */
  static fromURL (url: URL | string): FileMount {
    let path: string
    try {
      const u = typeof url === 'string' ? new URL(url) : url
      if (u.protocol !== 'file:') throw new TypeError(`not a file: URL: ${u.href}`)
      path = fileURLToPath(u)
    } catch (err) {
      throw new InvalidMountError(`invalid file mount URL: ${String(url)}`, { cause: err })
    }
    return new FileMount(path)
  }

  /** A path is all there is to it: the URL makes the same mount again. */
  get describedByUrl (): boolean { return true }

  info (): MountInfo {
    return { ...FILE_INFO }
  }

  async stat (signal?: AbortSignal): Promise<MountStat> {
    if (signal?.aborted === true) throw abortErrorFrom(signal)
    try {
      const st = await fsStat(this.path)
      if (st.isDirectory()) return { exists: false, ready: true }
      return { exists: true, size: st.size, ready: true }
    } catch (err) {
      if (isMissing(err)) return { exists: false, ready: true }
      throw err
    }
  }

  async fetch (signal?: AbortSignal): Promise<MountReader> {
    return await openFileReader(this.path, signal)
  }

  /** A standard `file:` URL: `fileURLToPath(serialize())` gives back `path` exactly. */
  serialize (): URL {
    return pathToFileURL(this.path)
  }
}
