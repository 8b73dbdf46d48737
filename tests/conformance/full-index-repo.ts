// The FullIndexRepo contract, run against every implementation (MemoryIndexRepo, FsIndexRepo, ...).
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { IndexNotFoundError } from '../../src/base/errors.js'
import { SortedIndexBuilder } from '../../src/format/index/sorted-index.js'
import type { FullIndexRepo, ShardIndex } from '../../src/base/index-types.js'

export interface RepoUnderTest { repo: FullIndexRepo, cleanup: () => Promise<void> }

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

function sha256Multihash (seed: string): Uint8Array {
  return Uint8Array.from([0x12, 0x20, ...createHash('sha256').update(seed).digest()])
}

/** An index of `n` sha2-256 multihashes (plus optional extras), offsets spaced out. */
function sampleIndex (seed: string, n: number, extra: Array<{ multihash: Uint8Array, offset: number }> = []): ShardIndex {
  const b = new SortedIndexBuilder()
  for (let i = 0; i < n; i++) b.add(sha256Multihash(`${seed}/${i}`), 61 + i * 1100)
  for (const e of extra) b.add(e.multihash, e.offset)
  return b.build()
}

function entries (index: ShardIndex): Array<[string, number]> {
  return [...index].map(({ multihash, offset }): [string, number] => [hex(multihash), offset]).sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
}

function assertSameIndex (actual: ShardIndex, expected: ShardIndex): void {
  assert.is(actual.size, expected.size)
  assert.equal(entries(actual), entries(expected))
  for (const { multihash, offset } of expected) assert.is(actual.get(multihash), offset)
}

async function collect (keys: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = []
  for await (const k of keys) out.push(k)
  return out.sort()
}

async function rejectsNotFound (p: Promise<unknown>): Promise<void> {
  try {
    await p
  } catch (err) {
    assert.instance(err, IndexNotFoundError)
    assert.is((err as IndexNotFoundError).code, 'ERR_INDEX_NOT_FOUND')
    return
  }
  assert.unreachable('expected IndexNotFoundError')
}

/**
 * Registers (and queues with `.run()`) a uvu suite checking `makeRepo()`'s repos against the
 * FullIndexRepo contract. Each test gets a fresh repo and cleans it up.
 */
export function fullIndexRepoConformance (name: string, makeRepo: () => Promise<RepoUnderTest>): void {
  const test = suite<{ under?: RepoUnderTest | undefined }>(`${name}: FullIndexRepo conformance`, {})
  test.before.each(async (ctx) => { ctx.under = await makeRepo() })
  test.after.each(async (ctx) => {
    await ctx.under?.cleanup()
    ctx.under = undefined
  })
  const repoOf = (ctx: { under?: RepoUnderTest | undefined }): FullIndexRepo => (ctx.under as RepoUnderTest).repo

  test('get of a missing key → IndexNotFoundError (ERR_INDEX_NOT_FOUND)', async (ctx) => {
    await rejectsNotFound(repoOf(ctx).get('missing'))
  })

  test('an empty repo: stat says absent, keys yields nothing', async (ctx) => {
    const repo = repoOf(ctx)
    assert.equal(await repo.stat('missing'), { exists: false, size: 0 })
    assert.equal(await collect(repo.keys()), [])
  })

  test('add then get returns the same entries; stat counts them', async (ctx) => {
    const repo = repoOf(ctx)
    const index = sampleIndex('a', 100)
    await repo.add('shard-a', index)
    assertSameIndex(await repo.get('shard-a'), index)
    assert.equal(await repo.stat('shard-a'), { exists: true, size: 100 })
    assert.equal(await collect(repo.keys()), ['shard-a'])
  })

  test('an empty index round-trips', async (ctx) => {
    const repo = repoOf(ctx)
    await repo.add('empty', sampleIndex('e', 0))
    const got = await repo.get('empty')
    assert.is(got.size, 0)
    assert.equal([...got], [])
    assert.equal(await repo.stat('empty'), { exists: true, size: 0 })
  })

  test('several multihash codes and lengths, offsets past 4 GiB', async (ctx) => {
    const repo = repoOf(ctx)
    const index = sampleIndex('m', 10, [
      { multihash: Uint8Array.from([0xa0, 0xe4, 0x02, 0x20, ...new Uint8Array(32).fill(7)]), offset: 2 ** 32 + 17 },
      { multihash: Uint8Array.from([0x13, 0x40, ...new Uint8Array(64).fill(3)]), offset: 2 ** 45 },
      { multihash: Uint8Array.from([0x12, 0x14, ...new Uint8Array(20).fill(1)]), offset: 5 }
    ])
    await repo.add('mixed', index)
    assertSameIndex(await repo.get('mixed'), index)
  })

  test('drop: true when something was removed, false otherwise; takes effect at once', async (ctx) => {
    const repo = repoOf(ctx)
    assert.is(await repo.drop('never-added'), false)
    await repo.add('k', sampleIndex('k', 5))
    await repo.get('k')
    assert.is(await repo.drop('k'), true)
    await rejectsNotFound(repo.get('k'))
    assert.equal(await repo.stat('k'), { exists: false, size: 0 })
    assert.equal(await collect(repo.keys()), [])
    assert.is(await repo.drop('k'), false)
  })

  test('add overwrites an existing index', async (ctx) => {
    const repo = repoOf(ctx)
    await repo.add('k', sampleIndex('first', 10))
    await repo.get('k')
    const second = sampleIndex('second', 3)
    await repo.add('k', second)
    assertSameIndex(await repo.get('k'), second)
    assert.equal(await repo.stat('k'), { exists: true, size: 3 })
    assert.equal(await collect(repo.keys()), ['k'])
  })

  test('keys are independent; keys() lists exactly the present ones', async (ctx) => {
    const repo = repoOf(ctx)
    const names = ['a', 'b', 'c', 'd']
    await Promise.all(names.map(async (k, i) => { await repo.add(k, sampleIndex(k, i + 1)) }))
    assert.equal(await collect(repo.keys()), names)
    await repo.drop('b')
    assert.equal(await collect(repo.keys()), ['a', 'c', 'd'])
    assertSameIndex(await repo.get('c'), sampleIndex('c', 3))
    assert.equal(await repo.stat('d'), { exists: true, size: 4 })
  })

  test('untrusted key strings are opaque (path-like, unicode, long)', async (ctx) => {
    const repo = repoOf(ctx)
    const keys = ['../escape', 'a/b/c', '..', '.', 'with space', 'ünïcødé 🚀', 'CON', 'x'.repeat(1024), '%2e%2e', 'A', 'a']
    for (const [i, k] of keys.entries()) await repo.add(k, sampleIndex(`u${i}`, i + 1))
    assert.equal(await collect(repo.keys()), [...keys].sort())
    for (const [i, k] of keys.entries()) {
      assertSameIndex(await repo.get(k), sampleIndex(`u${i}`, i + 1))
      assert.equal(await repo.stat(k), { exists: true, size: i + 1 })
    }
    for (const k of keys) assert.is(await repo.drop(k), true)
    assert.equal(await collect(repo.keys()), [])
  })

  test('a large index round-trips', async (ctx) => {
    const repo = repoOf(ctx)
    const index = sampleIndex('big', 20000)
    await repo.add('big', index)
    assertSameIndex(await repo.get('big'), index)
  })

  test.run()
}
