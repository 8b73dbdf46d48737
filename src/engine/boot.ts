/**
 * Start-up: opens the state DB and the transients dir, wires the loop's core, applies the
 * restart rules and starts the loop. What it has opened is recorded in `parts` as it goes, so
 * the store's shutdown can close it even when a later step fails.
 */
import { mkdir } from 'node:fs/promises'
import { join, resolve as resolvePath } from 'node:path'
import { Level } from 'level'
import PQueue from 'p-queue'
import { EventLoop } from './loop/loop.js'
import { Interpreter } from './loop/interpreter.js'
import { Jobs } from './loop/jobs.js'
import type { Core } from './loop/core.js'
import type { Task } from './loop/tasks.js'
import type { EventBuffer } from './observe/event-buffer.js'
import type { StoreMetrics } from './observe/metrics.js'
import { ReaderPool } from './accessor/reader-pool.js'
import { evictTransients } from './gc/gc.js'
import { restore } from './restore.js'
import { finishDestroys, removeOrphanIndices } from './leftovers.js'
import { Tombstones } from './loop/tombstones.js'
import { LevelStateStore, type AnyLevel, type StateStore } from '../storage/state/state-store.js'
import type { BackendSeams, StoreBackend } from '../storage/state/backend.js'
import type { TransientBudget } from '../storage/transients/budget.js'
import type { SectionCache } from '../storage/remote/section-cache.js'
import { Transients } from '../storage/transients/transients.js'
import { MountRegistry } from '../storage/mount/registry.js'
import { FsIndexRepo } from '../storage/index/fs-repo.js'
import { LevelTopLevelIndex } from '../storage/index/level-top-level.js'
import { defaultShardIndexer } from '../format/car/indexer.js'
import { SHARD_STATES, type ShardKey, type ShardResult, type ShardState, type Trace } from '../base/types.js'
import { defaultReport } from '../base/report.js'
import { DEFAULT_MAX_IDLE_READERS, DEFAULT_READER_REVALIDATE_MS, type DAGStoreOptions } from './options.js'
import { ShardMap } from './shard/shard-map.js'

/** What a started store holds; filled in by boot() step by step. */
export interface StoreParts {
  db: AnyLevel | undefined
  ownsDb: boolean
  /** The options' backend once opened: closed with the store. */
  backend: StoreBackend | undefined
  core: Core | undefined
  jobs: Jobs | undefined
}

export interface BootDeps {
  traces: EventBuffer<Trace>
  failures: EventBuffer<ShardResult>
  metrics: StoreMetrics
  budget: TransientBudget | undefined
  sections: SectionCache
  /** What happens to a task the loop will never process (it is closing). */
  abandon: (task: Task) => void
}

export async function boot (o: DAGStoreOptions, parts: StoreParts, deps: BootDeps, signal: AbortSignal | undefined): Promise<void> {
  const dir = o.dir !== undefined ? resolvePath(o.dir) : undefined
  if (dir !== undefined) await mkdir(dir, { recursive: true })
  const report = o.onError ?? defaultReport
  let seams: BackendSeams | undefined
  let stateStore: StateStore
  let db: AnyLevel | undefined
  if (o.backend !== undefined) {
    parts.backend = o.backend
    seams = await o.backend.open(signal !== undefined ? { signal } : {})
    stateStore = seams.stateStore
  } else {
    if (o.datastore !== undefined) {
      parts.db = o.datastore
    } else {
      parts.db = new Level(join(dir as string, 'state')) as unknown as AnyLevel
      parts.ownsDb = true
    }
    db = parts.db
    await db.open()
    stateStore = new LevelStateStore(db)
  }
  signal?.throwIfAborted()
  const { budget, metrics } = deps
  const readyFetches = o.maxConcurrentReadyFetches ?? 0
  const maxIndexing = o.maxConcurrentIndex ?? 0
  const transients = new Transients({
    dir: resolvePath(o.transientsDir ?? join(dir as string, 'transients')),
    readyFetchQueue: readyFetches > 0 ? new PQueue({ concurrency: readyFetches }) : undefined,
    budget,
    onDownload: (bytes, seconds, ok) => { metrics.fetched(bytes, seconds, ok) }
  })
  await transients.init()
  const indexRepo = seams?.indexRepo ?? o.indexRepo ?? new FsIndexRepo(join(dir as string, 'index'))
  // Only an index repo the store made is its own to sweep for orphans.
  const ownIndexRepo = o.indexRepo === undefined && indexRepo instanceof FsIndexRepo ? indexRepo : undefined
  const counts = Object.fromEntries(SHARD_STATES.map((s) => [s, 0])) as Record<ShardState, number>
  let interpreter: Interpreter | undefined
  const loop = new EventLoop({
    process: (task, tx) => { interpreter?.process(task, tx) },
    store: stateStore,
    report,
    abandon: deps.abandon,
    refused: (shard, waiters) => { interpreter?.refuse(shard, waiters) }
  })
  const core: Core = {
    shards: new ShardMap(),
    counts,
    loop,
    traces: deps.traces,
    failures: deps.failures,
    transients,
    indexRepo,
    topLevelIndex: seams?.topLevelIndex ?? o.topLevelIndex ?? new LevelTopLevelIndex(db as AnyLevel),
    indexer: o.shardIndexer ?? defaultShardIndexer,
    verifyHashes: o.verifyHashes ?? 'remote',
    indexThrottle: maxIndexing > 0 ? new PQueue({ concurrency: maxIndexing }) : undefined,
    mounts: o.mounts ?? new MountRegistry(),
    readers: new ReaderPool({
      maxIdle: o.maxIdleReaders ?? DEFAULT_MAX_IDLE_READERS,
      revalidateMs: o.readerRevalidateMs ?? DEFAULT_READER_REVALIDATE_MS,
      report
    }),
    report,
    metrics,
    graceMs: o.gc?.graceMs ?? 0,
    sections: deps.sections,
    copyPolicy: o.remote?.copy ?? 'auto',
    closing: false,
    barriers: new Map(),
    tombstones: new Tombstones()
  }
  parts.core = core
  const jobs = parts.jobs = new Jobs(core)
  interpreter = new Interpreter(core, jobs)

  await finishDestroys(core, stateStore, signal)
  const { reRegister, recoverNow } = await restore(core, stateStore, o.recoverOnStart ?? 'none', signal)
  signal?.throwIfAborted()
  const orphanIndices = ownIndexRepo !== undefined ? await removeOrphanIndices(core, ownIndexRepo) : []
  if (orphanIndices.length > 0) report(new Error(`removed ${orphanIndices.length} orphaned index(es)`), 'index cleanup')
  const owned = new Set<string>()
  for (const shard of core.shards.values()) if (shard.transient !== undefined) owned.add(shard.transient)
  const removed = await transients.removeOrphans(owned)
  if (removed.length > 0) report(new Error(`removed ${removed.length} orphaned file(s)`), 'transients cleanup')
  if (budget !== undefined) {
    const tracked: Array<[string, ShardKey]> = []
    for (const shard of core.shards.values()) if (shard.transient !== undefined) tracked.push([shard.transient, shard.key])
    await transients.account(tracked)
    budget.setEvictor(async (bytes) => await new Promise<number>((resolve) => {
      loop.submit({
        control: (tx) => { evictTransients(core, tx, bytes, (r) => { resolve(r.reclaimedBytes) }) },
        abandon: () => { resolve(0) }
      })
    }))
  }
  loop.start()
  budget?.collectIfHigh()
  for (const shard of reRegister) loop.submit({ op: 'register', key: shard.key, shard, eager: true })
  for (const shard of recoverNow) loop.submit({ op: 'recover', key: shard.key, shard })
}
