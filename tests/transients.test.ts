import { existsSync } from 'node:fs'
import { copyFile, lstat, mkdir, readdir, readFile, stat, symlink, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { isAbortError } from '../src/base/errors.js'
import { FileMount } from '../src/storage/mount/file.js'
import { Transients } from '../src/storage/transients/transients.js'
import type { MountReader, MountStat } from '../src/base/mount-types.js'
import { fixture, tempDir } from './helpers/fixtures.js'
import { StreamMount } from './helpers/stream-mount.js'
import { until } from './helpers/store.js'

const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)

interface Ctx { root: string, dir: string, t: Transients, cleanup: () => Promise<void> }

const test = suite<Ctx>('Transients', {} as Ctx)

test.before.each(async (ctx) => {
  const { dir, cleanup } = await tempDir()
  ctx.root = dir
  ctx.dir = join(dir, 'transients')
  ctx.t = new Transients({ dir: ctx.dir })
  await ctx.t.init()
  ctx.cleanup = cleanup
})

test.after.each(async (ctx) => {
  await ctx.t.abortDownloads()
  await ctx.cleanup()
})

async function readAll (reader: MountReader): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of reader.stream()) parts.push(c)
  await reader.close()
  return Buffer.concat(parts)
}

/** Opens and reads the whole shard, as the indexer would: waits for the download to the end. */
async function openAndRead (t: Transients, key: string, mount: StreamMount, signal?: AbortSignal): Promise<Buffer> {
  const { reader } = await t.open(key, mount, undefined, signal)
  return await readAll(reader)
}

async function exists (path: string): Promise<boolean> {
  try { await lstat(path); return true } catch { return false }
}

async function rejection (p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  assert.unreachable('expected a rejection')
}

test('transient names are hashes of the key, always inside dir', async ({ t, dir }) => {
  const keys = ['../../etc/passwd', '/abs/path', 'a/b/c', 'nul\0byte', '..', '.', 'x'.repeat(1024), 'ключ 🙂', 'C:\\win']
  const names = new Set<string>()
  for (const key of keys) {
    const p = t.pathFor(key)
    assert.is(dirname(p), dir, key)
    assert.match(basename(p), /^[0-9a-f]{64}\.car$/)
    assert.ok(t.isOwned(p))
    names.add(p)
  }
  assert.is(names.size, keys.length)
  assert.is(t.pathFor('k'), t.pathFor('k'), 'stable')

  const mount = new StreamMount(new Uint8Array([1, 2, 3]))
  const { reader, transient, complete } = await t.open('../../etc/passwd', mount, undefined)
  assert.is(await complete, transient)
  await reader.close()
  assert.is(transient, t.pathFor('../../etc/passwd'))
  assert.equal(await readdir(dir), [basename(transient!)])
})

test('random-access mounts are read in place', async ({ t, dir }) => {
  const mount = new FileMount(SAMPLE)
  assert.not.ok(t.needsTransient(mount))
  assert.ok(t.needsTransient(new StreamMount(SAMPLE)))
  const { reader, transient } = await t.open('k', mount, undefined)
  assert.is(transient, undefined)
  assert.ok((await readAll(reader)).equals(sampleBytes))
  assert.equal(await readdir(dir), [])
})

test('16 concurrent opens share one download', async ({ root }) => {
  let queued = 0
  const t = new Transients({
    dir: join(root, 'q'),
    readyFetchQueue: { add: async (fn) => { queued++; return await fn() } }
  })
  await t.init()
  const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024, delayMs: 1 })
  const opened = await Promise.all(Array.from({ length: 16 }, async () => await t.open('shared', mount, undefined)))
  assert.is(mount.fetchCount, 1)
  assert.is(queued, 1, 'a ready mount goes through the ready-fetch queue once')
  const readers = new Set(opened.map((o) => o.reader))
  assert.is(readers.size, 16, 'each caller has its own reader')
  for (const { reader, transient } of opened) {
    assert.is(transient, t.pathFor('shared'))
    assert.type(reader.read, 'function')
    assert.ok((await readAll(reader)).equals(sampleBytes))
  }
  assert.equal(await readdir(t.dir), [basename(t.pathFor('shared'))])
  assert.is((await stat(t.pathFor('shared'))).size, sampleBytes.byteLength)
})

test('mounts that are not ready bypass the ready-fetch queue', async ({ root }) => {
  let queued = 0
  const t = new Transients({ dir: join(root, 'q2'), readyFetchQueue: { add: async (fn) => { queued++; return await fn() } } })
  await t.init()
  const { reader } = await t.open('k', new StreamMount(SAMPLE, { ready: false }), undefined)
  assert.ok((await readAll(reader)).equals(sampleBytes))
  assert.is(queued, 0)
})

test('a failed download removes the .partial, rejects every waiter with the cause; the next open re-fetches', async ({ t, dir }) => {
  const cause = Object.assign(new Error('link dropped'), { code: 'ECONNRESET' })
  const partial = t.pathFor('k') + '.partial'
  let sawPartial = false
  const mount = new StreamMount(SAMPLE, {
    chunkSize: 16 * 1024,
    failAfter: 200_000,
    failWith: cause,
    onChunk: (served) => { if (served > 0) sawPartial ||= existsSync(partial) }
  })
  const errors = await Promise.all(Array.from({ length: 5 }, async () => await rejection(openAndRead(t, 'k', mount))))
  for (const err of errors) assert.is(err, cause)
  assert.is(mount.fetchCount, 1)
  assert.ok(sawPartial, 'the download was written to a .partial')
  assert.equal(await readdir(dir), [], 'no .partial, no transient')

  mount.options.failAfter = undefined
  mount.options.onChunk = undefined
  const { reader, transient } = await t.open('k', mount, undefined)
  assert.is(mount.fetchCount, 2)
  assert.is(transient, t.pathFor('k'))
  assert.ok((await readAll(reader)).equals(sampleBytes))
})

test('a transient that vanished is fetched again; one that exists is reused', async ({ t }) => {
  const mount = new StreamMount(SAMPLE)
  const first = await t.open('k', mount, undefined)
  await first.complete
  await first.reader.close()
  assert.is(mount.fetchCount, 1)

  const again = await t.open('k', mount, first.transient)
  assert.is(mount.fetchCount, 1, 'existing transient reused')
  assert.is(again.transient, first.transient)
  await again.reader.close()

  await unlink(first.transient!)
  const refetched = await t.open('k', mount, first.transient)
  assert.is(mount.fetchCount, 2)
  assert.is(refetched.transient, t.pathFor('k'))
  assert.ok((await readAll(refetched.reader)).equals(sampleBytes))
})

test('an existingTransient is adopted and never deleted', async ({ t, root }) => {
  const userFile = join(root, 'user-copy.car')
  await copyFile(SAMPLE, userFile)
  const mount = new StreamMount(SAMPLE)
  const { reader, transient } = await t.open('k', mount, userFile)
  assert.is(transient, userFile)
  assert.is(mount.fetchCount, 0)
  assert.ok((await readAll(reader)).equals(sampleBytes))
  assert.not.ok(t.isOwned(userFile))
  assert.is(await t.delete(userFile), 0)
  assert.ok(await exists(userFile))
  assert.is(await t.size(userFile), sampleBytes.byteLength)
})

test('an existingTransient that vanished is replaced by a store-owned one', async ({ t, root }) => {
  const mount = new StreamMount(SAMPLE)
  const { reader, transient } = await t.open('k', mount, join(root, 'gone.car'))
  assert.is(transient, t.pathFor('k'))
  assert.is(mount.fetchCount, 1)
  await reader.close()
})

test('delete only removes files directly inside dir', async ({ t, dir, root }) => {
  const outside = join(root, 'x')
  await writeFile(outside, 'precious')
  assert.is(await t.delete(outside), 0)
  assert.is(await t.delete(join(dir, '..', 'x')), 0)
  assert.is(await t.delete(dir + '/./../x'), 0)
  assert.not.ok(t.isOwned(join(dir, '..', 'x')))
  assert.ok(await exists(outside))

  // a symlink inside dir pointing out: the link may go, the target stays
  const link = join(dir, 'link.car')
  await symlink(outside, link)
  assert.ok(t.isOwned(link))
  assert.is(await t.delete(link), 0)
  assert.not.ok(await exists(link))
  assert.is(await readFile(outside, 'utf8'), 'precious')

  // a symlinked subdirectory does not make its contents ours
  await symlink(root, join(dir, 'escape'))
  assert.not.ok(t.isOwned(join(dir, 'escape', 'x')))
  assert.is(await t.delete(join(dir, 'escape', 'x')), 0)
  assert.ok(await exists(outside))

  // dir itself, subdirectories, nonsense
  await mkdir(join(dir, 'sub'))
  await writeFile(join(dir, 'sub', 'f'), 'f')
  assert.is(await t.delete(join(dir, 'sub', 'f')), 0)
  assert.is(await t.delete(join(dir, 'sub')), 0)
  assert.is(await t.delete(dir), 0)
  assert.is(await t.delete(''), 0)
  assert.is(await t.delete(join(dir, 'a\0b')), 0)
  assert.ok(await exists(join(dir, 'sub', 'f')))

  // an owned file: deleted, size returned; again → 0
  const owned = join(dir, 'owned.car')
  await writeFile(owned, Buffer.alloc(1234))
  assert.is(await t.size(owned), 1234)
  assert.is(await t.delete(owned), 1234)
  assert.is(await t.delete(owned), 0)
  assert.is(await t.size(owned), 0)
})

test('removeOrphans deletes unknown files and .partial, keeps listed ones', async ({ t, dir }) => {
  const keep = join(dir, 'keep.car')
  const orphan = join(dir, 'orphan.car')
  const partial = join(dir, 'half.car.partial')
  for (const p of [keep, orphan, partial]) await writeFile(p, 'x')
  await mkdir(join(dir, 'subdir'))
  const deleted = await t.removeOrphans(new Set([keep, join(dir, '..', 'elsewhere.car')]))
  assert.equal(deleted.sort(), [partial, orphan].sort())
  assert.equal((await readdir(dir)).sort(), ['keep.car', 'subdir'])
})

test('removeOrphans leaves a running download alone', async ({ t }) => {
  let orphans: Promise<string[]> | undefined
  const partial = t.pathFor('busy') + '.partial'
  const mount = new StreamMount(SAMPLE, {
    chunkSize: 8 * 1024,
    onChunk: (served) => { if (served === 8 * 1024) { assert.ok(existsSync(partial)); orphans = t.removeOrphans(new Set()) } }
  })
  assert.ok((await openAndRead(t, 'busy', mount)).equals(sampleBytes))
  assert.equal(await orphans, [])
})

test('one waiter aborting does not cancel the shared download', async ({ t }) => {
  const ac = new AbortController()
  const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024, onChunk: (served) => { if (served === 32 * 1024) ac.abort() } })
  const a = openAndRead(t, 'k', mount, ac.signal)
  const b = openAndRead(t, 'k', mount)
  const errA = await rejection(a)
  assert.ok(isAbortError(errA), String(errA))
  assert.ok((await b).equals(sampleBytes))
  assert.is(mount.fetchCount, 1)
  assert.ok(t.isOwned(t.pathFor('k')))
})

test('when every waiter aborts, the download stops and cleans up', async ({ t, dir }) => {
  const acs = [new AbortController(), new AbortController()]
  let downloading = false
  const mount = new StreamMount(SAMPLE, {
    chunkSize: 16 * 1024,
    delayMs: 1,
    onChunk: (served) => {
      if (served !== 32 * 1024) return
      downloading = t.isDownloading('k')
      for (const ac of acs) ac.abort()
    }
  })
  const opens = acs.map(async (ac) => await openAndRead(t, 'k', mount, ac.signal))
  for (const p of opens) assert.ok(isAbortError(await rejection(p)))
  assert.ok(downloading)
  assert.not.ok(t.isDownloading('k'))
  await t.abortDownloads() // waits for the abandoned download to finish cleaning up
  assert.is(mount.activeStreams, 0)
  assert.equal(await readdir(dir), [])

  // a newcomer starts afresh
  mount.options.onChunk = undefined
  assert.ok((await openAndRead(t, 'k', mount)).equals(sampleBytes))
  assert.is(mount.fetchCount, 2)
})

test('a newcomer arriving while an abandoned download cleans up gets a fresh one', async ({ t }) => {
  const ac = new AbortController()
  let second: Promise<Buffer> | undefined
  const mount = new StreamMount(SAMPLE, {
    chunkSize: 16 * 1024,
    delayMs: 1,
    onChunk: (served) => {
      if (served !== 32 * 1024 || second !== undefined) return
      ac.abort()
      // joins while the abandoned download still owns the .partial
      second = openAndRead(t, 'k', mount)
    }
  })
  const first = openAndRead(t, 'k', mount, ac.signal)
  assert.ok(isAbortError(await rejection(first)))
  // eslint-disable-next-line no-unmodified-loop-condition -- onChunk assigns it
  while (second === undefined) await new Promise((resolve) => setImmediate(resolve))
  assert.ok((await second).equals(sampleBytes))
  assert.is(mount.fetchCount, 2)
})

test('an already aborted signal rejects at once', async ({ t }) => {
  const mount = new StreamMount(SAMPLE)
  const ac = new AbortController()
  ac.abort()
  assert.ok(isAbortError(await rejection(t.open('k', mount, undefined, ac.signal))))
  assert.is(mount.fetchCount, 0)
})

test('abortDownloads rejects the waiters with an AbortError', async ({ t, dir }) => {
  let aborting: Promise<void> | undefined
  const mount = new StreamMount(SAMPLE, {
    chunkSize: 16 * 1024,
    onChunk: (served) => { if (served === 32 * 1024) aborting = t.abortDownloads() }
  })
  const opening = openAndRead(t, 'k', mount)
  assert.ok(isAbortError(await rejection(opening)))
  await aborting
  assert.equal(await readdir(dir), [])
})

test('a byte count that disagrees with stat() fails the download', async ({ t, dir }) => {
  class LyingMount extends StreamMount {
    override async stat (signal?: AbortSignal): Promise<MountStat> {
      const st = await super.stat(signal)
      return { ...st, size: (st.size ?? 0) + 1 }
    }
  }
  const err = await rejection(openAndRead(t, 'k', new LyingMount(SAMPLE)))
  assert.is((err as { code?: string }).code, 'ERR_TRANSIENT')
  assert.equal(await readdir(dir), [])

  const err2 = await rejection(t.open('k', new StreamMount(join(dir, 'missing')), undefined))
  assert.is((err2 as { code?: string }).code, 'ERR_TRANSIENT')
})

test('downloads without a known size are accepted', async ({ t }) => {
  const { reader } = await t.open('k', new StreamMount(SAMPLE, { hideSize: true }), undefined)
  assert.ok((await readAll(reader)).equals(sampleBytes))
})

// ---- streaming: readers work along with the download -------------------------------------------

/** A promise with its resolver, to hold a download at an exact byte. */
function latch (): { promise: Promise<void>, open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** True if `p` has not settled after the pending I/O and microtasks have run. */
async function stillPending (p: Promise<unknown>): Promise<boolean> {
  let settled = false
  p.then(() => { settled = true }, () => { settled = true })
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
  return !settled
}

test('a reader gets the bytes already downloaded while the rest is still coming', async ({ t }) => {
  const held = latch()
  const HOLD_AT = 128 * 1024
  const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024, pause: (served) => served === HOLD_AT ? held.promise : undefined })
  const { reader, complete } = await t.open('k', mount, undefined)
  try {
    assert.ok(Buffer.from(await reader.read!(1000, 4000)).equals(sampleBytes.subarray(1000, 5000)), 'bytes before the hold')
    assert.is(reader.size, sampleBytes.byteLength, 'the announced size')
    const tail = reader.read!(300_000, 1000)
    assert.ok(await stillPending(tail), 'bytes past the hold wait for the download')
    assert.ok(await stillPending(complete))
    assert.ok(t.isDownloading('k'))
    held.open()
    assert.ok(Buffer.from(await tail).equals(sampleBytes.subarray(300_000, 301_000)))
    assert.is(await complete, t.pathFor('k'))
    assert.ok((await readFile(t.pathFor('k'))).equals(sampleBytes))
    // Past the end: short, then empty — as a finished file reads.
    assert.is((await reader.read!(sampleBytes.byteLength - 10, 100)).byteLength, 10)
    assert.is((await reader.read!(sampleBytes.byteLength, 100)).byteLength, 0)
  } finally {
    await reader.close()
  }
  assert.is(mount.fetchCount, 1)
})

test('stream() passes a downloading file on as it arrives', async ({ t }) => {
  const held = latch()
  const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024, pause: (served) => served === 64 * 1024 ? held.promise : undefined })
  const { reader } = await t.open('k', mount, undefined)
  const it = reader.stream(0)[Symbol.asyncIterator]()
  let got = 0
  while (got < 64 * 1024) {
    const next = await it.next()
    assert.not.ok(next.done)
    got += (next.value as Uint8Array).byteLength
  }
  assert.is(got, 64 * 1024, 'everything before the hold, nothing after')
  const next = it.next()
  assert.ok(await stillPending(next))
  held.open()
  const parts: Uint8Array[] = [sampleBytes.subarray(0, got)]
  for (let r = await next; r.done !== true; r = await it.next()) parts.push(r.value)
  assert.ok(Buffer.concat(parts).equals(sampleBytes))
  await reader.close()
})

test('a reader waiting for bytes gets the download\'s error, after the .partial is gone', async ({ t, dir }) => {
  const cause = Object.assign(new Error('reset mid-body'), { code: 'ECONNRESET' })
  const held = latch()
  const mount = new StreamMount(SAMPLE, {
    chunkSize: 16 * 1024,
    failAfter: 200_000,
    failWith: cause,
    pause: (served) => served === 160 * 1024 ? held.promise : undefined
  })
  const { reader, complete } = await t.open('k', mount, undefined)
  const waiting = reader.read!(400_000, 10)
  const early = reader.read!(0, 10)
  assert.is((await early).byteLength, 10)
  assert.ok(await stillPending(waiting))
  held.open()
  assert.is(await rejection(waiting), cause)
  assert.is(await rejection(complete), cause)
  assert.equal(await readdir(dir), [])
  assert.is(await rejection(reader.read!(0, 10)), cause, 'a failed download\'s bytes are never served')
  await reader.close()
})

test('downloads of unknown size: reads end short only at the real end', async ({ t }) => {
  const held = latch()
  const mount = new StreamMount(SAMPLE, { hideSize: true, chunkSize: 16 * 1024, pause: (served) => served === 64 * 1024 ? held.promise : undefined })
  const { reader } = await t.open('k', mount, undefined)
  assert.is(reader.size, undefined)
  const last = reader.read!(sampleBytes.byteLength - 10, 100)
  assert.ok(await stillPending(last))
  held.open()
  assert.ok(Buffer.from(await last).equals(sampleBytes.subarray(-10)))
  assert.is(reader.size, sampleBytes.byteLength, 'known once complete')
  await reader.close()
})

test('closing the last reader before the end abandons the download and cleans up', async ({ t, dir }) => {
  const held = latch()
  const mount = new StreamMount(SAMPLE, { chunkSize: 16 * 1024, pause: (served) => served === 64 * 1024 ? held.promise : undefined })
  const a = await t.open('k', mount, undefined)
  const b = await t.open('k', mount, undefined)
  assert.is(mount.fetchCount, 1)
  await a.reader.close()
  assert.ok(t.isDownloading('k'), 'one reader left: the download goes on')
  await b.reader.close()
  assert.not.ok(t.isDownloading('k'))
  assert.ok(isAbortError(await rejection(b.complete)))
  held.open()
  await t.abortDownloads()
  // The mount's stream was parked in its pause when the download gave up on it; it ends when resumed.
  await until(() => mount.activeStreams === 0, 'the abandoned stream to end')
  assert.equal(await readdir(dir), [])
})

test('a reader opened after the download finished reads the final file', async ({ t }) => {
  const mount = new StreamMount(SAMPLE)
  const first = await t.open('k', mount, undefined)
  await first.complete
  const second = await t.open('k', mount, first.transient)
  assert.is(mount.fetchCount, 1)
  assert.ok((await readAll(second.reader)).equals(sampleBytes))
  assert.ok((await readAll(first.reader)).equals(sampleBytes), 'the first reader survived the rename')
})

test.run()
