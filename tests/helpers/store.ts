import { suite, type Test } from 'uvu'
import { DAGStore } from '../../src/engine/store.js'
import { MemoryIndexRepo } from '../../src/storage/index/memory-repo.js'
import { tempDir } from './fixtures.js'
import { MountRegistry } from '../../src/storage/mount/registry.js'
import { defaultShardIndexer } from '../../src/format/car/indexer.js'
import type { DAGStoreOptions } from '../../src/engine/options.js'
import type { ShardIndexer } from '../../src/base/index-types.js'
import type { ShardResult, Trace } from '../../src/base/types.js'
import { registerStreamMount, type StreamMountFactoryOptions } from './stream-mount.js'

/** Errors the store could not hand to a caller; tests assert on them instead of printing. */
export interface Reported { err: unknown, context: string }

export interface TestStore {
  store: DAGStore
  reported: Reported[]
}

/** A real store: LevelDB in `dir`, the built-in mounts plus `stream:`. */
export async function openStore (
  dir: string, options: Partial<DAGStoreOptions> & { stream?: StreamMountFactoryOptions, beforeStart?: (store: DAGStore) => void } = {}
): Promise<TestStore> {
  const reported: Reported[] = []
  const { stream, beforeStart, ...rest } = options
  const store = new DAGStore({
    dir,
    mounts: registerStreamMount(new MountRegistry(), stream),
    onError: (err, context) => { reported.push({ err, context }) },
    // Tests fail shards by deleting or replacing their files behind the store: the next acquire
    // must see it (the default window is tested in tests/reader-pool.test.ts).
    readerRevalidateMs: 0,
    ...rest
  })
  beforeStart?.(store)
  await store.start()
  return { store, reported }
}

/** Records every trace from now on. */
export function recordTraces (
  store: DAGStore
): { traces: Trace[], ops: (key?: string) => string[], stop: () => Promise<void>, ended: Promise<void> } {
  const traces: Trace[] = []
  const it = store.traces()
  const pump = (async () => { for await (const t of it) traces.push(t) })().catch(() => {})
  return {
    traces,
    ops: (key) => traces.filter((t) => key === undefined || t.key === key).map((t) => `${t.op}:${t.after.state}`),
    stop: async () => { await it.return?.(); await pump },
    /** Resolves once the store has closed, with every trace it published in `traces`. */
    ended: pump
  }
}

export function recordFailures (store: DAGStore): { failures: ShardResult[], stop: () => Promise<void> } {
  const failures: ShardResult[] = []
  const it = store.failures()
  const pump = (async () => { for await (const f of it) failures.push(f) })().catch(() => {})
  return { failures, stop: async () => { await it.return?.(); await pump } }
}

/** Polls `predicate` until true; fails after `timeoutMs` with `what`. */
export async function until (predicate: () => boolean, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/** Holds indexing jobs at their start until opened: keeps shards in initializing/recovering. */
export class Gate {
  private opened: Promise<void> = Promise.resolve()
  private release: (() => void) | undefined
  waiting = 0

  close (): void {
    if (this.release !== undefined) return
    this.opened = new Promise<void>((resolve) => { this.release = resolve })
  }

  open (): void {
    this.release?.()
    this.release = undefined
  }

  async pass (signal?: AbortSignal): Promise<void> {
    this.waiting++
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => { reject(signal?.reason) }
        signal?.addEventListener('abort', onAbort, { once: true })
        this.opened.then(() => { signal?.removeEventListener('abort', onAbort); resolve() }, reject)
      })
    } finally {
      this.waiting--
    }
  }
}

export interface GatedIndexer extends ShardIndexer {
  /** Calls so far. */
  calls: number
  /** The signal of each call, in call order. */
  signals: AbortSignal[]
  /** Calls in progress, and the most there ever were at once. */
  active: number
  mostActive: number
}

/** The real default indexer behind a gate; counts calls. */
export function gatedIndexer (gate: Gate): GatedIndexer {
  type Reader = Parameters<ShardIndexer>[1]
  type Context = Parameters<ShardIndexer>[3]
  const indexer = Object.assign(async (key: string, reader: Reader, signal: AbortSignal, context?: Context) => {
    indexer.calls++
    indexer.signals.push(signal)
    indexer.mostActive = Math.max(indexer.mostActive, ++indexer.active)
    try {
      await gate.pass(signal)
      return await defaultShardIndexer(key, reader, signal, context)
    } finally {
      indexer.active--
    }
  }, { calls: 0, signals: [] as AbortSignal[], active: 0, mostActive: 0 })
  return indexer
}

/** Result of a callback-style call as a promise (never rejects). */
export function result (call: (out: (r: ShardResult) => void) => void): Promise<ShardResult> {
  return new Promise((resolve) => { call(resolve) })
}

export interface DirContext {
  dir: string
  cleanup: () => Promise<void>
  /** Outlives a store instance, as an on-disk repo would: pass it to every store of a restart test. */
  indexRepo: MemoryIndexRepo
}

/** A uvu suite whose every test gets a fresh temp folder (removed after) and index repo. */
export function dirSuite (name: string): Test<DirContext> {
  const s = suite<DirContext>(name)
  s.before.each(async (ctx) => {
    const t = await tempDir()
    ctx.dir = t.dir
    ctx.cleanup = t.cleanup
    ctx.indexRepo = new MemoryIndexRepo()
  })
  s.after.each(async (ctx) => { await ctx.cleanup() })
  return s
}
