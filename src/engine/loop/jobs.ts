/**
 * Async work started by the loop: fetch + index (initialize, recover) and opening accessors.
 *
 * A job never touches a shard: it reads what it was given at start and posts a completion
 * task (makeAvailable / fail / release) for the loop to apply. Every job takes an
 * AbortSignal; close() aborts them all and waits for them.
 */
import { awaitBarrier, mountOf, raiseBarrier, verifiesHashes, type Core } from './core.js'
import { openInPlace } from './placement.js'
import { finishUnfinishedDestroy, removeShardIndices, storeShardIndices } from './cleanup.js'
import type { Drain } from './drain.js'
import { CallTask } from './tasks.js'
import type { Shard, Job, PayloadSpan } from '../shard/shard.js'
import { Waiter } from '../shard/waiter.js'
import { ShardAccessorImpl } from '../accessor/accessor.js'
import { readCarLayout } from '../../format/car/layout.js'
import { ShardErroredError, ShardUnknownError, StoreClosedError, raceAbort } from '../../base/errors.js'
import { codeOf, toError } from '../../base/errors/inspect.js'
import { CODE } from '../../base/errors/codes.js'
import type { Mount, MountReader } from '../../base/mount-types.js'
import { adoptEmbeddedIndex } from '../../format/car/remote-index.js'
import { SectionLengths } from '../../format/index/section-lengths.js'
import type { InPlaceReads } from '../accessor/accessor.js'
import type { ReaderLease } from '../accessor/reader-pool.js'
import type { ShardIndex } from '../../base/index-types.js'
import type { ShardKey, ShardProgress } from '../../base/types.js'
import { observedMount, observedReader, type ReadProgress } from '../../storage/mount/observed.js'

export class Jobs {
  private nextId = 1
  private readonly inflight = new Set<Promise<void>>()
  private readonly controllers = new Set<AbortController>()
  /** One controller for every accessor open: a controller per acquire showed up in profiles. */
  private readonly opens = new AbortController()
  /** Re-fetches in flight (by shard key): their readers get no pooled index until the file is whole. */
  private readonly downloading = new Map<ShardKey, Promise<unknown>>()
  /** Index rebuilds on acquire in flight, by shard key. */
  private readonly rebuilds = new Map<ShardKey, Promise<ShardIndex>>()
  /** Block lengths of loaded indices of shards read in place: computed once per index. */
  private readonly lengths = new WeakMap<ShardIndex, SectionLengths>()

  constructor (private readonly core: Core) {}

  /**
   * Registers a fetch+index job on the shard now (so a destroy in the same drain can abort
   * it) and starts it once the drain is durable. `linked` signals (an eager register's
   * caller) abort it too; the shard then fails with the AbortError.
   */
  startIndexing (shard: Shard, tx: Drain, mode: 'initialize' | 'recover', linked: AbortSignal[]): void {
    const controller = new AbortController()
    const job: Job = { id: this.nextId++, controller }
    shard.x().job = job
    const transient = shard.transient
    tx.afterCommit(() => {
      const signal = linked.length > 0 ? AbortSignal.any([controller.signal, ...linked]) : controller.signal
      job.done = this.track(controller, this.index(shard, job, mode, transient, signal))
    }, shard)
  }

  /** Opens the local copy and hands the waiter an accessor; the ref was taken by the loop. */
  openAccessor (shard: Shard, waiter: Waiter): void {
    if (!this.openPooled(shard, waiter)) this.track(undefined, this.open(shard, waiter, this.opens.signal))
  }

  /**
   * The hot path (docs/CONTRACT.md): a shard whose reader is pooled with its index and whose
   * payload span is known gets its accessor now, with no promise and no I/O.
   */
  private openPooled (shard: Shard, waiter: Waiter): boolean {
    const { core } = this
    if (core.barriers.has(shard.key)) return false
    const ready = core.readers.leaseReady(shard.key)
    if (ready === undefined) return false
    const accessor = new ShardAccessorImpl(shard.key, ready.lease, ready.index, ready.payload, () => release(core, shard))
    waiter.deliver({ key: shard.key, accessor })
    return true
  }

  /** How an accessor of a shard read in place reads and checks blocks, and fails the shard. */
  private inPlaceReads (shard: Shard, reader: ReaderLease, index: ShardIndex, payload: PayloadSpan): InPlaceReads | undefined {
    if (!reader.closeWhenIdle) return undefined
    const { core } = this
    const { key, epoch } = shard
    const payloadSize = payload.size ?? (reader.size !== undefined ? reader.size - payload.offset : undefined)
    if (payloadSize === undefined) return undefined
    let lengths = this.lengths.get(index)
    if (lengths === undefined) {
      lengths = new SectionLengths(index, payloadSize, payload.offset)
      this.lengths.set(index, lengths)
    }
    return {
      lengths,
      fail: (error) => {
        if (!core.closing) core.loop.complete({ op: 'fail', key, shard, error, epoch })
      }
    }
  }

  /** Records whether the shard is read in place (for describeShard); only the loop writes a shard. */
  private notePlacement (shard: Shard, epoch: number, inPlace: boolean): void {
    if (shard.inPlace === inPlace) return
    const { core } = this
    core.loop.complete({
      control: (tx) => {
        if (core.shards.get(shard.key) !== shard || shard.epoch !== epoch || shard.inPlace === inPlace) return
        shard.inPlace = inPlace
        tx.markDirty(shard)
      }
    })
  }

  abortAll (reason: Error): void {
    this.opens.abort(reason)
    for (const c of this.controllers) c.abort(reason)
  }

  async settled (): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
  }

  async settledJob (job: Job): Promise<void> {
    await job.done
  }

  private track (controller: AbortController | undefined, work: Promise<void>): Promise<void> {
    if (controller !== undefined) this.controllers.add(controller)
    const p = work.catch((err: unknown) => { this.core.report(err, 'job failed unexpectedly') })
      .finally(() => { this.inflight.delete(p); if (controller !== undefined) this.controllers.delete(controller) })
    this.inflight.add(p)
    return p
  }

  private async index (shard: Shard, job: Job, mode: 'initialize' | 'recover', transient: string | undefined, signal: AbortSignal): Promise<void> {
    const { core } = this
    const { key } = shard
    let kept: string | undefined = transient
    try {
      // Raced: a destroy of this shard aborts the job and then raises a barrier that waits for it.
      await raceAbort(awaitBarrier(core, key), signal)
      await finishUnfinishedDestroy(core, key)
      signal.throwIfAborted()
      if (mode === 'recover') {
        await removeShardIndices(core, key)
        if (transient !== undefined && core.transients.isOwned(transient)) {
          await core.transients.delete(transient)
          kept = undefined
        }
      } else if ((await core.indexRepo.stat(key)).exists) {
        core.loop.complete({ op: 'makeAvailable', key, shard, jobId: job.id })
        return
      }
      signal.throwIfAborted()
      const mount = mountOf(core, shard)
      const progress = progressOf(job)
      const inPlace = await openInPlace(core, shard, mount, kept, signal)
      if (inPlace !== undefined) {
        await this.indexInPlace(key, mount, observedReader(inPlace, progress), signal)
        signal.throwIfAborted()
        core.loop.complete({ op: 'makeAvailable', key, shard, jobId: job.id, transient: null, inPlace: true })
        return
      }
      // Fetch and index are one pass: the indexer reads a downloading transient as it arrives.
      // Progress is the download's while there is one (the indexer follows it), else the indexer's.
      const opened = await core.transients.open(key, observedMount(mount, progress), kept, signal)
      kept = opened.transient
      const context = { verifyHashes: verifiesHashes(core, mount) }
      const source = observedReader(opened.reader, progress)
      let persisted: Promise<void> | undefined
      try {
        const run = async (): Promise<ShardIndex> => {
          const startedAt = performance.now()
          try {
            const index = await core.indexer(key, source, signal, context)
            core.metrics.indexed(index.size, (performance.now() - startedAt) / 1000, true)
            return index
          } catch (err) {
            core.metrics.indexed(0, (performance.now() - startedAt) / 1000, false)
            throw err
          }
        }
        const index = core.indexThrottle !== undefined ? await core.indexThrottle.add(run) : await run()
        signal.throwIfAborted()
        // The index is stored while the download's last bytes are fsynced (the two are the
        // tail of a register's time).
        persisted = storeShardIndices(core, key, index)
        persisted.catch(() => {})
        // Indexed bytes count only once the whole file is on disk: a download that fails after
        // the last block (a length mismatch, a failed fsync) fails the shard, and its index goes.
        kept = await raceAbort(opened.complete, signal)
        await persisted
      } catch (err) {
        if (persisted !== undefined) {
          await persisted.catch(() => {})
          await removeShardIndices(core, key).catch((e: unknown) => { core.report(e, `dropping the index of failed shard ${JSON.stringify(key)}`) })
        }
        throw err
      } finally {
        await opened.reader.close()
      }
      signal.throwIfAborted()
      core.loop.complete({ op: 'makeAvailable', key, shard, jobId: job.id, transient: kept ?? null, inPlace: false })
    } catch (err) {
      // close() aborts jobs without recording a failure: the shard resumes at the next start.
      if (core.closing) return
      core.loop.complete({ op: 'fail', key, shard, jobId: job.id, error: toError(err), transient: kept ?? null })
    }
  }

  /**
   * Indexes a shard read in place, keeping none of its bytes: a CARv2's embedded index is
   * adopted with two ranged reads (its structure checked; every block read later is
   * hash-verified), anything else is indexed by one streaming pass through the section cache.
   */
  private async indexInPlace (key: ShardKey, mount: Mount, reader: MountReader, signal: AbortSignal): Promise<void> {
    const { core } = this
    let stored = false
    try {
      const run = async (): Promise<ShardIndex> => await this.measured(async () => {
        const size = reader.size
        const read = reader.read
        if (size !== undefined && read !== undefined) {
          const adopted = await adoptEmbeddedIndex(async (position, length) => await read.call(reader, position, length), size, { signal })
          if (adopted.kind === 'adopted') return adopted.index
        }
        return await core.indexer(key, streamOnly(reader), signal, { verifyHashes: verifiesHashes(core, mount) })
      })
      const index = core.indexThrottle !== undefined ? await core.indexThrottle.add(run) : await run()
      signal.throwIfAborted()
      stored = true
      await storeShardIndices(core, key, index)
    } catch (err) {
      if (stored) {
        await removeShardIndices(core, key).catch((e: unknown) => { core.report(e, `dropping the index of failed shard ${JSON.stringify(key)}`) })
      }
      throw err
    } finally {
      await reader.close()
    }
  }

  /** Runs an indexing pass, counting it in the metrics. */
  private async measured (run: () => Promise<ShardIndex>): Promise<ShardIndex> {
    const startedAt = performance.now()
    try {
      const index = await run()
      this.core.metrics.indexed(index.size, (performance.now() - startedAt) / 1000, true)
      return index
    } catch (err) {
      this.core.metrics.indexed(0, (performance.now() - startedAt) / 1000, false)
      throw err
    }
  }

  /**
   * An acquire found no index for an available shard (dropped behind the store, or lost):
   * it is rebuilt from the shard's bytes instead of failing the shard (Go dagstore #83).
   * Concurrent acquirers share one rebuild; it holds the key's barrier, so a destroy cleans up
   * after it and a new shard of the key never sees its writes.
   */
  private async rebuildIndex (shard: Shard, reader: ReaderLease, signal: AbortSignal): Promise<ShardIndex> {
    const { core } = this
    const { key } = shard
    let pending = this.rebuilds.get(key)
    if (pending === undefined) {
      let result!: Promise<ShardIndex>
      const barrier = raiseBarrier(core, key, async () => {
        result = (async () => {
          const context = { verifyHashes: verifiesHashes(core, mountOf(core, shard)) }
          const source = reader.closeWhenIdle ? streamOnly(reader) : reader
          const index = await this.measured(async () => await core.indexer(key, source, signal, context))
          if (core.shards.get(key) !== shard) throw new ShardUnknownError(`shard ${JSON.stringify(key)} was destroyed`)
          await storeShardIndices(core, key, index)
          return index
        })()
        await result.then(() => {}, () => {})
      })
      const started = barrier.start()
      pending = started.then(async () => await result)
      this.rebuilds.set(key, pending)
      const done = pending
      done.then(() => {}, () => {}).finally(() => { if (this.rebuilds.get(key) === done) this.rebuilds.delete(key) })
    }
    return await pending
  }

  private async open (shard: Shard, waiter: Waiter, signal: AbortSignal): Promise<void> {
    const { core } = this
    const { key, epoch } = shard
    let reader: ReaderLease | undefined
    try {
      await awaitBarrier(core, key)
      // The open is shared by concurrent acquirers, so only the store's signal may cancel it.
      reader = await core.readers.lease(key, async () => {
        const mount = mountOf(core, shard)
        const inPlace = await openInPlace(core, shard, mount, shard.transient, signal)
        this.notePlacement(shard, epoch, inPlace !== undefined)
        // No idle pooling in place: the section cache keeps the bytes, and its keep-after-close
        // clock must start when the last accessor closes.
        if (inPlace !== undefined) return { reader: inPlace, closeWhenIdle: true }
        const opened = await core.transients.open(key, mount, shard.transient, signal)
        if (opened.transient !== shard.transient) {
          // A re-fetch, read by accessors as it arrives. Its path is recorded now: should the
          // store stop before the download ends, a restart finds no file there and fetches
          // again, and the .partial counts as an orphan.
          const transient = opened.transient
          core.loop.complete({
            control: (tx) => {
              if (core.shards.get(key) !== shard || shard.epoch !== epoch || shard.transient === transient) return
              shard.transient = transient
              tx.markDirty(shard)
            }
          })
          // A download that never completes fails the shard (its accessors' reads fail too).
          opened.complete.catch((err: unknown) => {
            if (!core.closing) core.loop.complete({ op: 'fail', key, shard, error: toError(err), epoch })
          })
          const complete = opened.complete
          this.downloading.set(key, complete)
          complete.then(undefined, () => {}).finally(() => { if (this.downloading.get(key) === complete) this.downloading.delete(key) })
        }
        return { reader: opened.reader }
      })
      const index = await core.indexRepo.get(key).catch(async (err: unknown) => {
        if (codeOf(err) !== CODE.ERR_INDEX_NOT_FOUND || reader === undefined) throw err
        return await this.rebuildIndex(shard, reader, signal)
      })
      let payload = reader.payload
      if (payload === undefined) {
        const layout = await readCarLayout(reader, signal)
        payload = layout.payloadSize === undefined
          ? { offset: layout.payloadOffset }
          : { offset: layout.payloadOffset, size: layout.payloadSize }
      }
      // Acquires of a shard still being fetched take this path: a download that fails must be seen by them.
      if (!this.downloading.has(key)) core.readers.keep(reader, index, payload)
      const inPlace = this.inPlaceReads(shard, reader, index, payload)
      const accessor = new ShardAccessorImpl(key, reader, index, payload, () => release(core, shard), inPlace)
      reader = undefined
      waiter.deliver({ key, accessor })
    } catch (err) {
      await reader?.close().catch(() => {})
      const error = toError(err)
      if (core.closing) {
        waiter.deliver({ key, error: new StoreClosedError() })
        return
      }
      core.loop.complete({ op: 'release', key, shard })
      core.loop.complete({ op: 'fail', key, shard, error, epoch })
      // A recovery started meanwhile (it drops the index, replaces the bytes): what this open
      // tripped over is a symptom; the shard's own error says why (the fail above is dropped).
      const cause = shard.epoch !== epoch ? (shard.error ?? error) : error
      waiter.deliver({ key, error: new ShardErroredError(`failed to acquire shard: ${cause.message}`, { cause }) })
    }
  }
}

/**
 * A reader in place seen through its stream only: the indexer then makes one sequential pass
 * of sections with read-ahead, where positional reads would cost a request per block.
 */
function streamOnly (reader: MountReader): MountReader {
  return { size: reader.size, stream: (start?: number) => reader.stream(start), close: async () => {} }
}

/**
 * Posts a release and resolves once it is durable (or at once if the store is closing). Not
 * async: one promise per release, on the hot path.
 */
function release (core: Core, shard: Shard): Promise<void> {
  if (core.closing) return Promise.resolve()
  return new Promise<void>((resolve) => {
    core.loop.submit(new CallTask('release', shard.key, shard, new Waiter(shard.key, () => { resolve() }, undefined, core.report)))
  })
}

/** Where the job's reads of the shard's bytes are counted: the furthest byte any has reached. */
function progressOf (job: Job): ReadProgress {
  const progress: ShardProgress = { bytes: 0 }
  job.progress = progress
  return (position, total) => {
    if (position > progress.bytes) progress.bytes = position
    if (total !== undefined) progress.size = total
  }
}
