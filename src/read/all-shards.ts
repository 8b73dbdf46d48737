/**
 * One blockstore over every shard of a store (the role of Go's IndexBackedBlockstore): a CID
 * is looked up in the top-level index, one of the shards holding it is acquired, and the
 * accessor is kept in a small LRU + TTL cache so the next block of that shard costs no acquire.
 */
import type { CID } from 'multiformats/cid'
import { BlockNotFoundError, ShardErroredError, ShardUnknownError } from '../base/errors.js'
import type { ShardIndex } from '../base/index-types.js'
import type { ReadBlockstore, ShardAccessor, ShardInfo, ShardKey } from '../base/types.js'
import { BlockstoreClosedError } from './errors.js'
import { CODE } from '../base/errors/codes.js'
import { codeOf, toError } from '../base/errors/inspect.js'
import { defaultReport } from '../base/report.js'
import { IDENTITY_CODE } from '../format/multihash.js'
import { LeaseCache, type Lease } from './lease-cache.js'

const DEFAULT_MAX_ACCESSORS = 64
const DEFAULT_TTL_MS = 60_000

export interface AllShardsBlockstoreOptions {
  /**
   * Picks the shard to read `cid` from among `shards` (all hold it, per the top-level index),
   * or undefined to give up (BlockNotFoundError). Called again with the shards left when the
   * picked one cannot be acquired or does not serve the block. Must return one of `shards`.
   * Default: a shard whose accessor is cached, else the first available or serving one, else
   * the first.
   */
  select?: (cid: CID, shards: ShardKey[]) => ShardKey | undefined
  /** Accessors kept acquired at once (least recently used are released first). Default 64. */
  maxAccessors?: number
  /** An accessor idle this long is released. Default 60,000; Infinity keeps them until evicted. */
  ttlMs?: number
  /** Errors with no caller to go to (a failing accessor close). Default: one line on stderr. */
  onError?: (err: unknown, context: string) => void
}

/** What the blockstore needs from a store; DAGStore provides it. */
export interface ShardSource {
  shardsContainingCid: (cid: CID) => Promise<ShardKey[]>
  acquire: (key: ShardKey) => Promise<ShardAccessor>
  getShardInfo: (key: ShardKey) => ShardInfo
  allShardsInfo: () => Map<ShardKey, ShardInfo>
  /** Lets the default selection answer from cached shards without a top-level lookup. */
  getIterableIndex?: (key: ShardKey) => Promise<ShardIndex>
  /**
   * A block none of the source's shards could serve, asked of whoever else holds it (in a
   * cluster: the node owning the shard), given what the holders failed with. Resolves with
   * bytes verified against the CID, or undefined when nobody else can be asked.
   */
  fetchElsewhere?: (cid: CID, failure: BlockNotFoundError) => Promise<Uint8Array | undefined>
}

// Errors that say nothing about one shard, so trying another would only hide them.
const FATAL_CODES = new Set<string | undefined>([CODE.ERR_STORE_CLOSED, CODE.ERR_STORE_NOT_STARTED, BlockstoreClosedError.code])

function isFatal (err: unknown): boolean {
  return FATAL_CODES.has(codeOf(err))
}

function push (list: Error[] | undefined, err: unknown): Error[] {
  const out = list ?? []
  out.push(toError(err))
  return out
}

/**
 * `has` answers from the cached shards' indices or the top-level index (it never acquires);
 * `get`/`getSize` read from a shard that holds the block, falling back to the other holders
 * when one fails; identity CIDs are answered from the CID. A cached shard counts as in use: `destroy` of it fails with
 * ShardInUseError until it is evicted, expires, or `evict(key)` / `close()` releases it.
 */
export class AllShardsBlockstore implements ReadBlockstore {
  private readonly source: ShardSource
  private readonly select: ((cid: CID, shards: ShardKey[]) => ShardKey | undefined) | undefined
  private readonly report: (err: unknown, context: string) => void
  private readonly cache: LeaseCache
  /** Accessors of allKeys() listings in progress. */
  private readonly listings = new Set<ShardAccessor>()
  private closed = false

  constructor (source: ShardSource, options: AllShardsBlockstoreOptions = {}) {
    const { select, maxAccessors = DEFAULT_MAX_ACCESSORS, ttlMs = DEFAULT_TTL_MS } = options
    if (select !== undefined && typeof select !== 'function') throw new TypeError('select must be a function')
    if (!Number.isSafeInteger(maxAccessors) || maxAccessors < 1) {
      throw new RangeError(`maxAccessors must be a positive integer, got ${String(maxAccessors)}`)
    }
    if (typeof ttlMs !== 'number' || Number.isNaN(ttlMs) || ttlMs < 0) {
      throw new RangeError(`ttlMs must be a non-negative number, got ${String(ttlMs)}`)
    }
    this.source = source
    this.select = select
    this.report = options.onError ?? defaultReport
    this.cache = new LeaseCache({
      acquire: async (key) => await source.acquire(key),
      indexOf: source.getIterableIndex === undefined
        ? undefined
        : async (key) => await (source.getIterableIndex as (key: ShardKey) => Promise<ShardIndex>)(key),
      maxAccessors,
      ttlMs,
      report: this.report
    })
  }

  /** True when a cached shard's index or the top-level index lists a holder (nothing is acquired). */
  async has (cid: CID): Promise<boolean> {
    this.checkOpen()
    if (cid.multihash.code === IDENTITY_CODE) return true
    if (this.cache.holderOf(cid.multihash.bytes) !== undefined) return true
    return (await this.source.shardsContainingCid(cid)).length > 0
  }

  /** @throws BlockNotFoundError when no shard serves it (`cause`: what the holders failed with) */
  async get (cid: CID): Promise<Uint8Array> {
    this.checkOpen()
    // A copy: the digest may be a view into a buffer the caller owns.
    if (cid.multihash.code === IDENTITY_CODE) return new Uint8Array(cid.multihash.digest)
    return await this.serve(cid, async (bs) => await bs.get(cid))
  }

  /**
   * get(), and when no shard this store can read serves the block, the block fetched from
   * where the source says it is (another node of a cluster, hash-verified). Without such a
   * source, the same as get(). @throws BlockNotFoundError, or what the fetch failed with
   */
  async getAnywhere (cid: CID): Promise<Uint8Array> {
    try {
      return await this.get(cid)
    } catch (err) {
      if (!(err instanceof BlockNotFoundError) || this.source.fetchElsewhere === undefined) throw err
      this.checkOpen()
      const fetched = await this.source.fetchElsewhere(cid, err)
      if (fetched === undefined) throw err
      return fetched
    }
  }

  /** @throws BlockNotFoundError */
  async getSize (cid: CID): Promise<number> {
    this.checkOpen()
    if (cid.multihash.code === IDENTITY_CODE) return cid.multihash.digest.length
    return await this.serve(cid, async (bs) => await bs.getSize(cid))
  }

  /**
   * Every shard's keys, shard after shard (in registration order), each in CAR order: a block
   * held by several shards is yielded once per shard. Errored shards and shards destroyed
   * meanwhile are skipped; lazy shards are initialized by it. Each shard is acquired for its
   * turn only, outside the cache: a listing neither flushes the cache nor, paused by its
   * consumer, holds up close() (which releases it; its next step then rejects).
   */
  async * allKeys (): AsyncIterable<CID> {
    this.checkOpen()
    for (const [key, info] of this.source.allShardsInfo()) {
      if (info.state === 'errored') continue
      this.checkOpen()
      let accessor: ShardAccessor
      try {
        accessor = await this.source.acquire(key)
      } catch (err) {
        if (err instanceof ShardUnknownError || err instanceof ShardErroredError) continue
        throw err
      }
      this.listings.add(accessor)
      try {
        this.checkOpen()
        for await (const cid of accessor.blockstore().allKeys()) {
          this.checkOpen()
          yield cid
        }
      } catch (err) {
        if (this.closed && !(err instanceof BlockstoreClosedError)) {
          throw new BlockstoreClosedError('all-shards blockstore closed during allKeys()', { cause: err })
        }
        throw err
      } finally {
        this.listings.delete(accessor)
        await accessor.close()
      }
    }
  }

  /**
   * Releases the cached accessor of `key` (once gets using it finish), e.g. before destroying
   * the shard. Resolves when it is released; at once when nothing is cached.
   */
  async evict (key: ShardKey): Promise<void> {
    await this.cache.evictKey(key)
  }

  /** Keys of the shards cached right now, least recently used first. */
  cachedShards (): ShardKey[] {
    return this.cache.keys()
  }

  /**
   * Idempotent. Releases every cached accessor (those in use once their gets finish) and
   * resolves when all are released; later calls reject with BlockstoreClosedError.
   */
  async close (): Promise<void> {
    this.closed = true
    const released = this.cache.close()
    const listings = [...this.listings].map(async (accessor) => {
      await accessor.close().catch((err: unknown) => { this.report(err, `releasing shard ${JSON.stringify(accessor.key)} failed`) })
    })
    await released
    await Promise.all(listings)
  }

  private checkOpen (): void {
    if (this.closed) throw new BlockstoreClosedError('all-shards blockstore is closed')
  }

  private async serve<T> (cid: CID, op: (bs: ReadBlockstore) => Promise<T>): Promise<T> {
    let failures: Error[] | undefined
    // The default selection prefers a cached holder anyway; finding one in the cached indices
    // skips the top-level lookup, a LevelDB range read that costs several times the block read.
    const cached = this.select === undefined ? this.cache.holderOf(cid.multihash.bytes) : undefined
    if (cached !== undefined) {
      this.cache.touch(cached)
      try {
        return await op((cached.accessor as ShardAccessor).blockstore())
      } catch (err) {
        if (isFatal(err)) throw err
        failures = push(failures, err)
        if (!(err instanceof BlockNotFoundError)) this.cache.evict(cached)
      } finally {
        this.cache.unlease(cached)
      }
    }
    let remaining = await this.source.shardsContainingCid(cid)
    if (cached !== undefined) remaining = remaining.filter((k) => k !== cached.key)
    while (remaining.length > 0) {
      this.checkOpen()
      const key = this.pick(cid, remaining)
      if (key === undefined) break
      remaining = remaining.length === 1 ? [] : remaining.filter((k) => k !== key)
      let entry: Lease
      try {
        this.checkOpen()
        entry = await this.cache.lease(key)
      } catch (err) {
        if (isFatal(err)) throw err
        failures = push(failures, err)
        continue
      }
      try {
        return await op((entry.accessor as ShardAccessor).blockstore())
      } catch (err) {
        if (isFatal(err)) throw err
        failures = push(failures, err)
        // A block the index promised but the shard lacks says nothing about the shard; any
        // other failure (bytes gone or changed, reader closed) does: do not keep serving from it.
        if (!(err instanceof BlockNotFoundError)) this.cache.evict(entry)
      } finally {
        this.cache.unlease(entry)
      }
    }
    const cause = failures === undefined
      ? undefined
      : failures.length === 1 ? failures[0] : new AggregateError(failures, `every shard holding ${cid.toString()} failed`)
    throw new BlockNotFoundError(`block not found: ${cid.toString()}`, cause === undefined ? undefined : { cause })
  }

  private pick (cid: CID, shards: ShardKey[]): ShardKey | undefined {
    if (this.select !== undefined) {
      const key = this.select(cid, shards.slice())
      if (key !== undefined && !shards.includes(key)) {
        throw new TypeError(`select returned ${JSON.stringify(key)}, which is not one of the shards holding ${cid.toString()}`)
      }
      return key
    }
    if (shards.length === 1) return shards[0]
    // A cached shard costs no acquire and keeps duplicated blocks from pinning a second shard.
    for (const key of shards) if (this.cache.has(key)) return key
    for (const key of shards) {
      let state: string | undefined
      try {
        state = this.source.getShardInfo(key).state
      } catch {
        continue // destroyed since the index was read
      }
      if (state === 'available' || state === 'serving') return key
    }
    return shards[0]
  }
}
