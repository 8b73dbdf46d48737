/**
 * Full indices on disk: one file per shard in go-car's CARv2 MultihashIndexSorted format
 * (multicodec 0x0401), so `car` tooling can read them and vice versa.
 *
 * File names come from a hash of the key (keys are untrusted; never a path). Because a hash
 * cannot be reversed, each index has a small `<hash>.key` sidecar holding the key for keys().
 * Writes are atomic (temp file, fsync, rename, fsync of the folder): a crash leaves the old
 * index or the new one, never half of one. Decoded indices stay in a bounded LRU cache.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { IndexNotFoundError } from '../errors.js'
import type { ShardKey } from '../types.js'
import type { FullIndexRepo, ShardIndex } from './types.js'
import { decodeCarIndex, encodeMultihashIndexSorted } from './multihash-index-sorted.js'

export const FS_INDEX_REPO_VERSION = '1'
const INDEX_SUFFIX = '.full.idx'
const KEY_SUFFIX = '.key'

export interface FsIndexRepoOptions {
  /** Decoded indices kept in memory (least recently used evicted). Default 64. */
  cacheSize?: number
}

function isMissing (err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'ENOENT'
}

async function writeAtomic (dir: string, name: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}-${name}`)
  const fh = await open(tmp, 'w')
  try {
    await fh.writeFile(bytes)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, join(dir, name))
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

async function syncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined)
  if (fh === undefined) return
  try { await fh.sync() } catch { /* not every platform syncs folders */ } finally { await fh.close() }
}

export class FsIndexRepo implements FullIndexRepo {
  private readonly cache = new Map<ShardKey, ShardIndex>()
  private readonly cacheSize: number
  private ready: Promise<void> | undefined

  constructor (readonly dir: string, options: FsIndexRepoOptions = {}) {
    this.cacheSize = options.cacheSize ?? 64
  }

  /** Creates the folder and checks its format version. Called by every method; idempotent. */
  async init (): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.dir, { recursive: true })
      const versionFile = join(this.dir, '.version')
      const found = await readFile(versionFile, 'utf8').catch((err: unknown) => { if (isMissing(err)) return undefined; throw err })
      if (found === undefined) await writeAtomic(this.dir, '.version', Buffer.from(FS_INDEX_REPO_VERSION))
      else if (found.trim() !== FS_INDEX_REPO_VERSION) throw new Error(`index repo ${this.dir} has format version ${found.trim()}; this dagstore reads version ${FS_INDEX_REPO_VERSION}`)
    })()
    await this.ready
  }

  private base (key: ShardKey): string {
    return createHash('sha256').update(key, 'utf8').digest('hex')
  }

  async add (key: ShardKey, index: ShardIndex): Promise<void> {
    await this.init()
    const base = this.base(key)
    // Dropped first, so a reader never pairs the old cache entry with the new file.
    this.cache.delete(key)
    await writeAtomic(this.dir, base + KEY_SUFFIX, Buffer.from(key, 'utf8'))
    await writeAtomic(this.dir, base + INDEX_SUFFIX, encodeMultihashIndexSorted(index))
    await syncDir(this.dir)
    this.remember(key, index)
  }

  async get (key: ShardKey): Promise<ShardIndex> {
    const cached = this.cache.get(key)
    if (cached !== undefined) {
      // Refresh its place in the LRU order.
      this.cache.delete(key)
      this.cache.set(key, cached)
      return cached
    }
    await this.init()
    let bytes: Uint8Array
    try {
      bytes = await readFile(join(this.dir, this.base(key) + INDEX_SUFFIX))
    } catch (err) {
      if (isMissing(err)) throw new IndexNotFoundError(`index not found for shard ${JSON.stringify(key)}`)
      throw err
    }
    const index = decodeCarIndex(bytes, { skipIdentity: true })
    this.remember(key, index)
    return index
  }

  async drop (key: ShardKey): Promise<boolean> {
    await this.init()
    this.cache.delete(key)
    const base = this.base(key)
    let removed = true
    try {
      await unlink(join(this.dir, base + INDEX_SUFFIX))
    } catch (err) {
      if (!isMissing(err)) throw err
      removed = false
    }
    await rm(join(this.dir, base + KEY_SUFFIX), { force: true })
    return removed
  }

  async stat (key: ShardKey): Promise<{ exists: boolean, size: number }> {
    await this.init()
    try {
      const s = await stat(join(this.dir, this.base(key) + INDEX_SUFFIX))
      return { exists: true, size: s.size }
    } catch (err) {
      if (isMissing(err)) return { exists: false, size: 0 }
      throw err
    }
  }

  async * keys (): AsyncIterable<ShardKey> {
    await this.init()
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(INDEX_SUFFIX) || name.startsWith('.')) continue
      const base = name.slice(0, -INDEX_SUFFIX.length)
      const key = await readFile(join(this.dir, base + KEY_SUFFIX), 'utf8').catch(() => undefined)
      // A key file that does not hash to its name is not ours (or was tampered with).
      if (key !== undefined && this.base(key) === base) yield key
    }
  }

  /** Path of the shard's index file (go-car readable). */
  pathOf (key: ShardKey): string {
    return join(this.dir, this.base(key) + INDEX_SUFFIX)
  }

  private remember (key: ShardKey, index: ShardIndex): void {
    if (this.cacheSize <= 0) return
    this.cache.set(key, index)
    while (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next().value as ShardKey
      this.cache.delete(oldest)
    }
  }
}
