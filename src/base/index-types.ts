import type { ShardKey } from './types.js'
import type { MountReader } from './mount-types.js'

export interface IndexEntry { multihash: Uint8Array, offset: number }

/** multihash → offset of the section (its length varint) from the CARv1 payload start. */
export interface ShardIndex extends Iterable<IndexEntry> {
  get: (multihash: Uint8Array) => number | undefined
  readonly size: number
}

/** Full per-shard indices. Every implementation runs the FullIndexRepo conformance suite. */
export interface FullIndexRepo {
  add: (key: ShardKey, index: ShardIndex) => Promise<void>
  /**
   * With `fromStorage`, the index as stored now, never a copy kept in memory: verifyShard
   * compares the data with it, so damage done to the storage behind a running store is seen.
   * A repo that keeps no copy may ignore the option.
   * @throws IndexNotFoundError when absent
   */
  get: (key: ShardKey, options?: { fromStorage?: boolean }) => Promise<ShardIndex>
  /** True if something was removed; takes effect at once, caches included. */
  drop: (key: ShardKey) => Promise<boolean>
  stat: (key: ShardKey) => Promise<{ exists: boolean, size: number }>
  keys: () => AsyncIterable<ShardKey>
}

export interface AddMultihashesOptions {
  /**
   * No pair may be written before this fulfils; if it rejects, none is written and the add
   * rejects with its reason. The pairs may be prepared meanwhile. The store passes the write of
   * the shard's full index, so that top-level entries never exist without the full index that
   * names them (the crash-safe cleanup relies on it) while the two writes still overlap.
   */
  after?: Promise<unknown>
}

/** multihash → shards holding it. */
export interface TopLevelIndex {
  addMultihashesForShard: (key: ShardKey, multihashes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options?: AddMultihashesOptions) => Promise<void>
  removeShard: (key: ShardKey, multihashes?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) => Promise<void>
  /**
   * True when removeShard(key) without the multihashes costs no more than with them (entries
   * stored by shard): the store then does not read the shard's full index to list them.
   */
  readonly removesByShard?: boolean
  shardsForMultihash: (multihash: Uint8Array) => Promise<ShardKey[]>
}

/**
 * Which shards' block data a store hashes while indexing them: `'remote'` those whose mount's
 * info().kind is 'remote' (the bytes came over a network), `true` all, `false` none.
 */
export type VerifyHashes = 'remote' | boolean

/** What the store tells its indexer about the shard being indexed. */
export interface ShardIndexContext {
  /** The store's verifyHashes, decided for this shard's mount: hash every block against its CID. */
  verifyHashes: boolean
}

/** `context` is always given by the store; an indexer may ignore it (and then verifies as it sees fit). */
export type ShardIndexer = (key: ShardKey, reader: MountReader, signal: AbortSignal, context?: ShardIndexContext) => Promise<ShardIndex>
