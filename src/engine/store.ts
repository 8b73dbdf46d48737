/**
 * DAGStore: the public API (docs/CONTRACT.md). Calls are validated synchronously, then become tasks
 * for the single event loop; each accepted call gets exactly one result.
 */
import { stat } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { resolve as resolvePath } from 'node:path'
import type { CID } from 'multiformats/cid'
import { Registry } from 'prom-client'
import type { Core } from './loop/core.js'
import { CallTask, isControl, type Task } from './loop/tasks.js'
import { EventBuffer } from './observe/event-buffer.js'
import { StoreMetrics } from './observe/metrics.js'
import { Shard } from './shard/shard.js'
import { Waiter } from './shard/waiter.js'
import { collectGarbage } from './gc/gc.js'
import { boot, type StoreParts } from './boot.js'
import { TransientBudget, validateGCOptions } from '../storage/transients/budget.js'
import { SectionCache } from '../storage/remote/section-cache.js'
import { AllShardsBlockstore, type AllShardsBlockstoreOptions } from '../read/all-shards.js'
import { validateKey } from '../base/keys.js'
import type { Mount } from '../base/mount-types.js'
import type { ShardIndex } from '../base/index-types.js'
import {
  InvalidMountError, ShardExistsError, ShardUnknownError, StoreClosedError, StoreNotStartedError
} from '../base/errors.js'
import {
  SHARD_STATES, COPY_POLICIES, type AcquireOpts, type DestroyOpts, type GCResult, type RegisterOpts, type ResultCallback,
  type ShardAccessor, type ShardDescription, type ShardInfo, type ShardKey, type ShardResult, type ShardState,
  type SignalOpts, type Trace, type ListShardsOptions, type ShardPage, type VerifyOpts, type VerifyReport
} from '../base/types.js'
import { verifyShard } from './verify.js'
import { listShardsPage } from './list-shards.js'
import { DEFAULT_EVENT_BUFFER_SIZE, type DAGStoreOptions, type GCOptions } from './options.js'
import { defaultReport } from '../base/report.js'
import { NotClusteredError } from '../base/errors.js'
import type { ClusterDirectory, ClusterListQuery, ClusterNode } from '../storage/state/cluster.js'
import { listClusterShards, type ClusterListing } from './cluster/listing.js'
import { ClusterShardSource } from './cluster/cluster-source.js'
import { ForeignShards } from './cluster/foreign-shards.js'
import { OwnerBlocks, type OwnerHopTimeouts } from './cluster/owner-blocks.js'
import { adoptShards } from './cluster/adopt.js'

type Phase = 'created' | 'starting' | 'started' | 'closing' | 'closed'

export interface ClusterBlockstoreOptions extends AllShardsBlockstoreOptions {
  /**
   * In a cluster, the timeouts of asking another node for a block only it can read (the
   * gateway passes its proxy timeouts). Ignored by a store that is not clustered.
   */
  owners?: OwnerHopTimeouts
}

function settle<T> (resolve: (value: T) => void, reject: (err: Error) => void, pick: (r: ShardResult) => T): ResultCallback {
  return (result) => {
    if (result.error !== undefined) reject(result.error)
    else resolve(pick(result))
  }
}

export class DAGStore {
  private readonly options: DAGStoreOptions
  private phase: Phase = 'created'
  private readonly parts: StoreParts = { db: undefined, ownsDb: false, backend: undefined, core: undefined, jobs: undefined }
  private closing: Promise<void> | undefined
  private gcTimer: NodeJS.Timeout | undefined
  private readonly budget: TransientBudget | undefined
  /** Remote shards read in place share it: one memory budget for the whole store. */
  private readonly sections: SectionCache
  private readonly storeMetrics: StoreMetrics
  // Created with the store so a subscriber attached before start() sees the restart's traces.
  private readonly traceBuffer: EventBuffer<Trace>
  private readonly failureBuffer: EventBuffer<ShardResult>

  constructor (options: DAGStoreOptions) {
    const o = options ?? {}
    if (o.backend !== undefined) {
      if (o.datastore !== undefined || o.indexRepo !== undefined || o.topLevelIndex !== undefined) {
        throw new TypeError('DAGStore: `backend` provides the datastore, index repo and top-level index; give none of them with it')
      }
      if (o.dir === undefined && o.transientsDir === undefined) throw new TypeError('DAGStore needs `dir` or `transientsDir` for the transients')
    } else if (o.dir === undefined && (o.transientsDir === undefined || o.datastore === undefined || o.indexRepo === undefined)) {
      throw new TypeError('DAGStore needs `dir`, or `transientsDir` + `datastore` + `indexRepo`')
    }
    for (const name of ['maxConcurrentIndex', 'maxConcurrentReadyFetches', 'maxIdleReaders', 'readerRevalidateMs'] as const) {
      const v = o[name]
      if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new RangeError(`${name} must be a non-negative integer`)
    }
    if (o.recoverOnStart !== undefined && !['none', 'on-acquire', 'now'].includes(o.recoverOnStart)) {
      throw new RangeError("recoverOnStart must be 'none', 'on-acquire' or 'now'")
    }
    if (o.verifyHashes !== undefined && o.verifyHashes !== 'remote' && typeof o.verifyHashes !== 'boolean') {
      throw new RangeError("verifyHashes must be 'remote', true or false")
    }
    // Built here so a bad gc setting fails the constructor, not start().
    this.budget = budgetFrom(o.gc, o.onError ?? defaultReport)
    const copy = o.remote?.copy
    if (copy !== undefined && !COPY_POLICIES.includes(copy)) throw new RangeError("remote.copy must be 'auto', 'always' or 'never'")
    this.sections = new SectionCache(o.remote ?? {})
    this.options = o
    const size = o.eventBufferSize ?? DEFAULT_EVENT_BUFFER_SIZE
    this.traceBuffer = new EventBuffer<Trace>(size)
    this.failureBuffer = new EventBuffer<ShardResult>(size)
    this.storeMetrics = new StoreMetrics(o.metrics ?? new Registry(), {
      stats: () => this.phase === 'started' ? this.stats() : Object.fromEntries(SHARD_STATES.map((s) => [s, 0])) as Record<ShardState, number>,
      transients: () => this.budget === undefined
        ? undefined
        : { bytes: this.budget.usedBytes - this.budget.reservedBytes, reserved: this.budget.reservedBytes, limit: this.budget.maxBytes },
      sections: () => this.sections.stats()
    })
  }

  /** The prom-client Registry holding the store's metrics (the one given as `options.metrics`, or its own). */
  get metrics (): Registry {
    return this.storeMetrics.registry
  }

  /** Loads every persisted shard, applies the restart rules (docs/CONTRACT.md), and starts the loop. */
  async start (options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.phase !== 'created') throw new Error(`start() called on a store that is ${this.phase}`)
    this.phase = 'starting'
    const { signal } = options
    try {
      await boot(this.options, this.parts, {
        traces: this.traceBuffer,
        failures: this.failureBuffer,
        metrics: this.storeMetrics,
        budget: this.budget,
        sections: this.sections,
        abandon: (task) => { this.abandon(task) }
      }, signal)
      this.startGcTimer()
      this.phase = 'started'
    } catch (err) {
      this.phase = 'closing'
      await this.shutdown()
      throw err
    }
  }

  private startGcTimer (): void {
    const intervalMs = this.options.gc?.intervalMs ?? 0
    if (intervalMs <= 0) return
    const budget = this.budget
    const report = this.options.onError ?? defaultReport
    // With a space bound, periodic GC keeps to the watermarks; without one it reclaims every idle transient.
    this.gcTimer = setInterval(() => {
      if (budget !== undefined) budget.collectIfHigh()
      else this.gc().catch((err: unknown) => { report(err, 'periodic gc failed') })
    }, intervalMs)
    this.gcTimer.unref()
  }

  private abandon (task: Task): void {
    if (isControl(task)) {
      task.abandon?.()
      return
    }
    task.waiter?.deliver(task.op === 'release' ? { key: task.key } : { key: task.key, error: new StoreClosedError() })
  }

  /** Idempotent. Aborts fetch/index jobs (not recorded as failures), fails pending results with StoreClosedError. */
  async close (): Promise<void> {
    if (this.phase === 'created') {
      this.phase = 'closed'
      return
    }
    this.closing ??= (async () => {
      // A start() in progress finishes (or fails) first; its failure path closes everything.
      while (this.phase === 'starting') await new Promise((resolve) => setTimeout(resolve, 5))
      if (this.phase === 'closed') return
      this.phase = 'closing'
      await this.shutdown()
    })()
    await this.closing
  }

  private async shutdown (): Promise<void> {
    clearInterval(this.gcTimer)
    const { core, jobs } = this.parts
    if (core !== undefined) {
      core.closing = true
      const closed = new StoreClosedError()
      jobs?.abortAll(closed)
      await core.loop.stop()
      for (const shard of core.shards.values()) {
        const extra = shard.extra
        if (extra === undefined) continue
        for (const w of extra.register ?? []) w.deliver({ key: shard.key, error: closed })
        extra.recover?.deliver({ key: shard.key, error: closed })
        for (const w of extra.parked ?? []) w.deliver({ key: shard.key, error: closed })
        for (const w of extra.drain ?? []) w.deliver({ key: shard.key, error: closed })
        extra.register = extra.parked = extra.recover = extra.drain = undefined
      }
      await jobs?.settled()
      // Downloads outlive the jobs that started them (accessors read them too): stop them all.
      await core.transients.abortDownloads()
      await Promise.allSettled([...core.barriers.values()])
      await core.readers.closeAll()
    }
    this.traceBuffer.close()
    this.failureBuffer.close()
    if (this.parts.ownsDb) await this.parts.db?.close()
    await this.parts.backend?.close().catch((err: unknown) => { (this.options.onError ?? defaultReport)(err, 'closing the storage backend failed') })
    this.phase = 'closed'
  }

  private running (): Core {
    if (this.phase === 'started' && this.parts.core !== undefined) return this.parts.core
    if (this.phase === 'closing' || this.phase === 'closed') throw new StoreClosedError()
    throw new StoreNotStartedError('dag store not started: call start() first')
  }

  private known (core: Core, key: ShardKey): Shard {
    const shard = core.shards.get(key)
    if (shard === undefined) throw new ShardUnknownError(`shard ${JSON.stringify(key)} not found`)
    return shard
  }

  private waiter (key: ShardKey, out: ResultCallback | null | undefined, signal: AbortSignal | undefined): Waiter {
    return new Waiter(key, out, signal, (this.parts.core as Core).report)
  }

  registerShard (key: ShardKey, mount: Mount, out?: ResultCallback | null, opts: RegisterOpts = {}): void {
    validateKey(key)
    const core = this.running()
    if (mount == null || typeof mount.fetch !== 'function' || typeof mount.serialize !== 'function') {
      throw new InvalidMountError('registerShard needs a Mount')
    }
    if (opts.copy !== undefined && !COPY_POLICIES.includes(opts.copy)) throw new RangeError("copy must be 'auto', 'always' or 'never'")
    const url = core.mounts.represent(mount).href
    if (core.shards.has(key)) throw new ShardExistsError(`${JSON.stringify(key)}: shard already exists`)
    const existing = opts.existingTransient !== undefined ? resolvePath(opts.existingTransient) : undefined
    // An idle lazy shard needs no mount object when its URL makes the same one again (a million must fit).
    const keep = opts.lazy !== true || mount.describedByUrl !== true
    const shard = new Shard(key, url, opts.lazy === true, 'new', keep ? mount : undefined, existing, opts.copy)
    core.shards.set(key, shard)
    core.counts.new++
    core.loop.submit({ op: 'register', key, shard, waiter: this.waiter(key, out, opts.signal) })
  }

  acquireShard (key: ShardKey, out: ResultCallback | null, opts: AcquireOpts = {}): void {
    const core = this.running()
    // A registered key was validated when it was registered.
    const shard = core.shards.get(key) ?? this.known(core, (validateKey(key), key))
    core.loop.submit(new CallTask('acquire', key, shard, this.waiter(key, out, opts.signal)))
  }

  recoverShard (key: ShardKey, out?: ResultCallback | null, opts: SignalOpts = {}): void {
    validateKey(key)
    const core = this.running()
    const shard = this.known(core, key)
    core.loop.submit({ op: 'recover', key, shard, waiter: this.waiter(key, out, opts.signal) })
  }

  /**
   * Destroys the shard: its record, full index, top-level entries and store-owned transient. A
   * shard in use is refused (ShardInUseError) unless `opts.drain`: then new acquires fail with
   * ShardDrainingError at once and the destroy runs when the last accessor closes (an abort
   * of `opts.signal` before that leaves the shard serving).
   */
  destroyShard (key: ShardKey, out?: ResultCallback | null, opts: DestroyOpts = {}): void {
    validateKey(key)
    const core = this.running()
    const shard = this.known(core, key)
    core.loop.submit({ op: 'destroy', key, shard, waiter: this.waiter(key, out, opts.signal), drain: opts.drain === true })
  }

  async register (key: ShardKey, mount: Mount, opts?: RegisterOpts): Promise<void> {
    await new Promise<void>((resolve, reject) => { this.registerShard(key, mount, settle(resolve, reject, () => undefined), opts) })
  }

  // Not async (a throw in the executor still rejects): one promise per acquire, on the hot path.
  acquire (key: ShardKey, opts?: AcquireOpts): Promise<ShardAccessor> {
    return new Promise<ShardAccessor>((resolve, reject) => {
      this.acquireShard(key, settle(resolve, reject, (r) => r.accessor as ShardAccessor), opts)
    })
  }

  async recover (key: ShardKey, opts?: SignalOpts): Promise<void> {
    await new Promise<void>((resolve, reject) => { this.recoverShard(key, settle(resolve, reject, () => undefined), opts) })
  }

  async destroy (key: ShardKey, opts?: DestroyOpts): Promise<void> {
    await new Promise<void>((resolve, reject) => { this.destroyShard(key, settle(resolve, reject, () => undefined), opts) })
  }

  getShardInfo (key: ShardKey): ShardInfo {
    const core = this.running()
    return this.known(core, key).info()
  }

  /**
   * More than getShardInfo, for listings (CLI, admin API): the mount URL, the local copy, its
   * size in bytes (the transient's, or a file: mount's file) and the number of indexed blocks.
   * Costs a stat and an index-repo stat; ShardUnknownError for an unknown key.
   */
  async describeShard (key: ShardKey): Promise<ShardDescription> {
    const core = this.running()
    const shard = this.known(core, key)
    const out: ShardDescription = { key, ...shard.info(), url: shard.url }
    if (shard.transient !== undefined) out.transient = shard.transient
    const local = shard.transient ?? fileOf(shard.url)
    if (local !== undefined) {
      const size = await stat(local).then((st) => st.size, () => undefined)
      if (size !== undefined) out.size = size
    }
    if (fileOf(shard.url) !== undefined) out.placement = 'local'
    else if (shard.inPlace === true) out.placement = 'in-place'
    else if (shard.transient !== undefined || shard.inPlace === false) out.placement = 'copy'
    if (shard.copy !== undefined) out.copy = shard.copy
    if (this.parts.cluster !== undefined) out.node = this.parts.cluster.node
    const progress = shard.extra?.job?.progress
    if (progress !== undefined) out.progress = { ...progress }
    const indexed = await core.indexRepo.stat(key).catch(() => undefined)
    if (indexed?.exists === true) out.blocks = indexed.size
    return out
  }

  allShardsInfo (): Map<ShardKey, ShardInfo> {
    const core = this.running()
    const out = new Map<ShardKey, ShardInfo>()
    for (const [key, shard] of core.shards) out.set(key, shard.info())
    return out
  }

  /**
   * One page of shards in key order (JS string order), filtered by state and key prefix; pass
   * the page's `next` as `after` for the following one. Costs O(log n + keys examined), never
   * a pass over every shard: a call examines a bounded number of keys (see ShardPage.next).
   */
  listShards (options?: ListShardsOptions): ShardPage {
    return listShardsPage(this.running().shards, options)
  }

  /**
   * In a cluster, one page of every node's shards (docs/CLUSTER.md): this node's described as
   * describeShard does, the others' from the database (their owner's restart form), each with
   * its `node`. In the database's key order; bounded work per page, which may come back short
   * with a `next`. @throws NotClusteredError without a shared backend.
   */
  async listClusterShards (query: ClusterListQuery): Promise<ClusterListing> {
    const core = this.running()
    return await listClusterShards({ has: (key) => core.shards.has(key), describe: async (key) => await this.describeShard(key) },
      this.clusterOf(), query)
  }

  stats (): Record<ShardState, number> {
    return { ...this.running().counts }
  }

  async shardsContainingMultihash (multihash: Uint8Array, _opts?: SignalOpts): Promise<ShardKey[]> {
    return await this.running().topLevelIndex.shardsForMultihash(multihash)
  }

  async shardsContainingCid (cid: CID, opts?: SignalOpts): Promise<ShardKey[]> {
    return await this.shardsContainingMultihash(cid.multihash.bytes, opts)
  }

  /**
   * Re-reads the shard (acquired meanwhile, so it cannot be destroyed under the check) with
   * every block hashed against its CID, and compares the stored full index and the top-level
   * entries with what the data holds. `repair` rewrites both when the data is sound and they
   * disagree with it. A shard that cannot be read (errored) is a problem in the report;
   * ShardUnknownError for an unknown key.
   */
  async verifyShard (key: ShardKey, opts: VerifyOpts = {}): Promise<VerifyReport> {
    validateKey(key)
    const core = this.running()
    const shard = this.known(core, key)
    return await verifyShard(core, shard, async (k, signal) => await this.acquire(k, signal === undefined ? {} : { signal }), opts)
  }

  /** @throws IndexNotFoundError when the shard has no index (yet). */
  async getIterableIndex (key: ShardKey): Promise<ShardIndex> {
    validateKey(key)
    return await this.running().indexRepo.get(key)
  }

  /**
   * Blocks of every shard by CID, through the top-level index. Acquired shards stay cached
   * (LRU of `maxAccessors`, released after `ttlMs` idle, on eviction and on its `close()`);
   * a cached shard counts as in use, so `evict(key)` it before destroying it. In a cluster
   * (a shared backend), one made after start() answers for every node's shards (docs/CLUSTER.md).
   */
  blockstore (opts: ClusterBlockstoreOptions = {}): AllShardsBlockstore {
    const { owners, ...rest } = opts
    const options = { onError: this.options.onError ?? defaultReport, ...rest }
    const cluster = this.parts.cluster
    if (cluster === undefined) return new AllShardsBlockstore(this, options)
    // In a cluster: own shards first, then other nodes' shards read in place, then ShardElsewhereError.
    const core = this.running()
    const local = {
      has: (key: ShardKey) => core.shards.has(key),
      acquire: async (key: ShardKey) => await this.acquire(key),
      getShardInfo: (key: ShardKey) => this.getShardInfo(key),
      allShardsInfo: () => this.allShardsInfo(),
      getIterableIndex: async (key: ShardKey) => await this.getIterableIndex(key)
    }
    const source = new ClusterShardSource(local, cluster, new ForeignShards(this.sections, core.indexRepo),
      new OwnerBlocks({ ...owners, node: cluster.node }))
    return new AllShardsBlockstore(source, options)
  }

  /** This node's name when the store's backend is shared by a cluster (DESIGN §12); undefined otherwise. */
  get node (): string | undefined {
    return this.parts.cluster?.node
  }

  /** The cluster's nodes, with their leases and shard counts. @throws NotClusteredError without a shared backend. */
  async nodes (): Promise<ClusterNode[]> {
    this.running()
    return await this.clusterOf().nodes()
  }

  /**
   * Takes over the http/https-mounted shards of a dead node (docs/CLUSTER.md): they are owned
   * and served here from now on. Returns their keys. @throws NodeAliveError while that node's
   * lease is current; NodeUnknownError; NotClusteredError without a shared backend.
   */
  async adopt (from: string): Promise<ShardKey[]> {
    const core = this.running()
    return await adoptShards(core, this.clusterOf(), from)
  }

  private clusterOf (): ClusterDirectory {
    const cluster = this.parts.cluster
    if (cluster === undefined) throw new NotClusteredError('this store has no shared database (backend): it is not part of a cluster')
    return cluster
  }

  /** Reclaims transients of idle shards (available or errored, refs 0, nobody parked, past graceMs). */
  async gc (opts: SignalOpts = {}): Promise<GCResult> {
    const core = this.running()
    opts.signal?.throwIfAborted()
    return await new Promise<GCResult>((resolve, reject) => {
      core.loop.submit({
        control: (tx) => { collectGarbage(core, tx, resolve) },
        abandon: () => { reject(new StoreClosedError()) }
      })
    })
  }

  /**
   * One trace per processed op, published once the op's state is durable. May be called
   * before start() to observe the restart's re-registrations and recoveries.
   */
  traces (opts: SignalOpts = {}): AsyncIterableIterator<Trace> {
    if (this.phase === 'closed') throw new StoreClosedError()
    return this.traceBuffer.subscribe(opts)
  }

  /** `{key, error}` for every transition into errored. May be called before start(). */
  failures (opts: SignalOpts = {}): AsyncIterableIterator<ShardResult> {
    if (this.phase === 'closed') throw new StoreClosedError()
    return this.failureBuffer.subscribe(opts)
  }
}

/** Automated GC's budget when `gc.maxTransientsBytes` is set. */
function budgetFrom (gc: GCOptions | undefined, report: (err: unknown, context: string) => void): TransientBudget | undefined {
  validateGCOptions(gc)
  if (gc?.maxTransientsBytes === undefined) return undefined
  return new TransientBudget({
    maxBytes: gc.maxTransientsBytes,
    highWatermark: gc.highWatermark,
    lowWatermark: gc.lowWatermark,
    stepBytes: gc.reservationBytes
  }, (err) => { report(err, 'automated gc failed') })
}

/** The local path behind a file: mount URL; undefined for other schemes. */
function fileOf (url: string): string | undefined {
  if (!url.startsWith('file:')) return undefined
  try {
    return fileURLToPath(url)
  } catch {
    return undefined
  }
}
