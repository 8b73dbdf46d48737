/**
 * Full indices on disk: one file per shard in go-car's CARv2 MultihashIndexSorted format
 * (multicodec 0x0401), so `car` tooling can read them and vice versa.
 *
 * File names come from a hash of the key (keys are untrusted; never a path). Because a hash
 * cannot be reversed, each index has a small `<hash>.key` sidecar holding the key for keys().
 * Writes are atomic (temp file, fsync, rename, fsync of the folder): a crash leaves the old
 * index or the new one, never half of one. Indices are served as views over the stored bytes
 * (no decode: src/format/index/index-view.ts), kept in an LRU cache bounded by bytes.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { IndexNotFoundError } from '../../base/errors.js'
import { isMissing } from '../../base/errors/inspect.js'
import type { ShardKey } from '../../base/types.js'
import type { FullIndexRepo, ShardIndex } from '../../base/index-types.js'
import { encodeMultihashIndexSorted } from '../../format/index/multihash-index-sorted.js'
import { MultihashIndexSortedView } from '../../format/index/index-view.js'

const FS_INDEX_REPO_VERSION = '1'
const INDEX_SUFFIX = '.full.idx'
const KEY_SUFFIX = '.key'

export interface FsIndexRepoOptions {
  /**
   * Bytes of index files kept in memory, least recently used evicted first. Default 256 MiB:
   * re-reading an index on every acquire would dominate the acquire path. 0 disables the cache.
   */
  cacheBytes?: number
}

/** Writes and fsyncs `bytes` to a temp file in `dir`; returns its path, for `putInPlace`. */
async function writeTemp (dir: string, name: string, bytes: Uint8Array): Promise<string> {
  const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}-${name}`)
  const fh = await open(tmp, 'w')
  try {
    await fh.writeFile(bytes)
    await fh.sync()
  } catch (err) {
    await fh.close()
    await rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  return tmp
}

async function putInPlace (dir: string, tmp: string, name: string): Promise<void> {
  try {
    await rename(tmp, join(dir, name))
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

async function writeAtomic (dir: string, name: string, bytes: Uint8Array): Promise<void> {
  await putInPlace(dir, await writeTemp(dir, name, bytes), name)
}

async function syncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined)
  if (fh === undefined) return
  try { await fh.sync() } catch { /* not every platform syncs folders */ } finally { await fh.close() }
}

/**
 * Entries in a MultihashIndexSorted file, from its bucket headers alone:
 * codec varint, u32 #codes, then per code: u64 code, u32 #widths, then per width:
 * u32 width, u64 byte length, entries.
 */
async function countEntries (path: string): Promise<number> {
  const fh = await open(path, 'r')
  try {
    const head = Buffer.alloc(16)
    const readAt = async (pos: number, len: number): Promise<Buffer> => {
      const { bytesRead } = await fh.read(head, 0, len, pos)
      if (bytesRead < len) throw new IndexNotFoundError(`index file ${path} is truncated at byte ${pos}`)
      return head
    }
    let pos = 2 // varint 0x0401 is two bytes
    const codes = (await readAt(pos, 4)).readUInt32LE(0)
    pos += 4
    let entries = 0
    for (let c = 0; c < codes; c++) {
      const code = (await readAt(pos, 8)).readBigUInt64LE(0)
      const widths = (await readAt(pos + 8, 4)).readUInt32LE(0)
      pos += 12
      for (let w = 0; w < widths; w++) {
        const b = await readAt(pos, 12)
        const width = b.readUInt32LE(0)
        const length = Number(b.readBigUInt64LE(4))
        if (width === 0) throw new IndexNotFoundError(`index file ${path} has a zero-width bucket at byte ${pos}`)
        // Identity entries are never served from an index (the views skip them too).
        if (code !== 0n) entries += length / width
        pos += 12 + length
      }
    }
    return entries
  } finally {
    await fh.close()
  }
}

export class FsIndexRepo implements FullIndexRepo {
  private readonly cache = new Map<ShardKey, { index: ShardIndex, weight: number }>()
  private readonly cacheBytes: number
  private cachedBytes = 0
  /** Bumped by every add/drop: a get that read the file before one must not cache what it read. */
  private epoch = 0
  private ready: Promise<void> | undefined

  constructor (readonly dir: string, options: FsIndexRepoOptions = {}) {
    this.cacheBytes = options.cacheBytes ?? 256 * 1024 * 1024
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
    this.epoch++
    this.forget(key)
    const bytes = encodeMultihashIndexSorted(index)
    // Both files are written and fsynced at once, then renamed key file first: an index file
    // without its key file would be invisible to keys().
    const written = await Promise.allSettled([
      writeTemp(this.dir, base + KEY_SUFFIX, Buffer.from(key, 'utf8')),
      writeTemp(this.dir, base + INDEX_SUFFIX, bytes)
    ])
    const [keyTmp, indexTmp] = written
    if (keyTmp?.status !== 'fulfilled' || indexTmp?.status !== 'fulfilled') {
      for (const w of written) if (w.status === 'fulfilled') await rm(w.value, { force: true })
      const failed = written.find((w) => w.status === 'rejected')
      throw (failed as PromiseRejectedResult).reason
    }
    try {
      await putInPlace(this.dir, keyTmp.value, base + KEY_SUFFIX)
    } catch (err) {
      await rm(indexTmp.value, { force: true })
      throw err
    }
    await putInPlace(this.dir, indexTmp.value, base + INDEX_SUFFIX)
    await syncDir(this.dir)
    this.remember(key, index, bytes.length)
  }

  /** `fromStorage` reads the file even when it is cached, and leaves the cache as it was. */
  async get (key: ShardKey, options: { fromStorage?: boolean } = {}): Promise<ShardIndex> {
    const fromStorage = options.fromStorage === true
    const cached = fromStorage ? undefined : this.cache.get(key)
    if (cached !== undefined) {
      // Refresh its place in the LRU order.
      this.cache.delete(key)
      this.cache.set(key, cached)
      return cached.index
    }
    await this.init()
    const epoch = this.epoch
    let bytes: Uint8Array
    try {
      bytes = await readFile(join(this.dir, this.base(key) + INDEX_SUFFIX))
    } catch (err) {
      if (isMissing(err)) throw new IndexNotFoundError(`index not found for shard ${JSON.stringify(key)}`)
      throw err
    }
    const index = new MultihashIndexSortedView(bytes)
    if (!fromStorage && epoch === this.epoch) this.remember(key, index, bytes.length)
    return index
  }

  async drop (key: ShardKey): Promise<boolean> {
    await this.init()
    this.epoch++
    this.forget(key)
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

  /** `size` is the number of entries, as for every FullIndexRepo; read from bucket headers, not by decoding. */
  async stat (key: ShardKey): Promise<{ exists: boolean, size: number }> {
    const cached = this.cache.get(key)
    if (cached !== undefined) return { exists: true, size: cached.index.size }
    await this.init()
    try {
      return { exists: true, size: await countEntries(join(this.dir, this.base(key) + INDEX_SUFFIX)) }
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

  /**
   * The keys of the indices whose key is not in `known`, reading only their sidecars: a
   * start-up sweep over a repo of many indices hashes the known keys instead of reading a
   * file per index (keys() does).
   */
  async * keysExcept (known: Iterable<ShardKey>): AsyncIterable<ShardKey> {
    await this.init()
    const bases: string[] = []
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(INDEX_SUFFIX) && !name.startsWith('.')) bases.push(name.slice(0, -INDEX_SUFFIX.length))
    }
    if (bases.length === 0) return
    const owned = new Set<string>()
    for (const key of known) owned.add(this.base(key))
    for (const base of bases) {
      if (owned.has(base)) continue
      const key = await readFile(join(this.dir, base + KEY_SUFFIX), 'utf8').catch(() => undefined)
      if (key !== undefined && this.base(key) === base) yield key
    }
  }

  /** Path of the shard's index file (go-car readable). */
  pathOf (key: ShardKey): string {
    return join(this.dir, this.base(key) + INDEX_SUFFIX)
  }

  private remember (key: ShardKey, index: ShardIndex, weight: number): void {
    if (weight > this.cacheBytes) return
    this.forget(key)
    this.cache.set(key, { index, weight })
    this.cachedBytes += weight
    while (this.cachedBytes > this.cacheBytes) {
      const oldest = this.cache.keys().next().value as ShardKey
      this.forget(oldest)
    }
  }

  private forget (key: ShardKey): void {
    const entry = this.cache.get(key)
    if (entry === undefined) return
    this.cache.delete(key)
    this.cachedBytes -= entry.weight
  }
}
