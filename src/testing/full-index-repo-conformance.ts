/** The FullIndexRepo contract, run against every implementation (MemoryIndexRepo, FsIndexRepo, ...). */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { IndexNotFoundError } from '../base/errors.js'
import type { FullIndexRepo, IndexEntry, ShardIndex } from '../base/index-types.js'
import { SortedIndexBuilder } from '../format/index/sorted-index.js'
import { assertRejects, codeOf, hex, type RegisterTest } from './harness.js'

export interface RepoUnderTest { repo: FullIndexRepo, cleanup: () => Promise<void> }

function sha256Multihash (seed: string): Uint8Array {
  return Uint8Array.from([0x12, 0x20, ...createHash('sha256').update(seed).digest()])
}

/** An index of `n` sha2-256 multihashes (plus optional extras), offsets spaced out. */
export function sampleIndex (seed: string, n: number, extra: IndexEntry[] = []): ShardIndex {
  const b = new SortedIndexBuilder()
  for (let i = 0; i < n; i++) b.add(sha256Multihash(`${seed}/${i}`), 61 + i * 1100)
  for (const e of extra) b.add(e.multihash, e.offset)
  return b.build()
}

function entries (index: ShardIndex): Array<[string, number]> {
  return [...index].map(({ multihash, offset }): [string, number] => [hex(multihash), offset]).sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
}

function assertSameIndex (actual: ShardIndex, expected: ShardIndex): void {
  assert.equal(actual.size, expected.size)
  assert.deepEqual(entries(actual), entries(expected))
  for (const { multihash, offset } of expected) assert.equal(actual.get(multihash), offset)
}

async function collect (keys: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = []
  for await (const k of keys) out.push(k)
  return out.sort()
}

async function rejectsNotFound (p: Promise<unknown>): Promise<void> {
  await assertRejects(p, (err) => {
    assert.ok(err instanceof IndexNotFoundError, `got ${String(err)}`)
    assert.equal(codeOf(err), 'ERR_INDEX_NOT_FOUND')
  }, 'expected IndexNotFoundError')
}

/** Registers the FullIndexRepo checks with `test`; each check gets a fresh repo and cleans it up. */
export function fullIndexRepoConformance (test: RegisterTest, makeRepo: () => Promise<RepoUnderTest>): void {
  async function using (fn: (repo: FullIndexRepo) => Promise<void>): Promise<void> {
    const under = await makeRepo()
    try {
      await fn(under.repo)
    } finally {
      await under.cleanup()
    }
  }

  test('get of a missing key → IndexNotFoundError (ERR_INDEX_NOT_FOUND)', () => using(async (repo) => {
    await rejectsNotFound(repo.get('missing'))
  }))

  test('an empty repo: stat says absent, keys yields nothing', () => using(async (repo) => {
    assert.deepEqual(await repo.stat('missing'), { exists: false, size: 0 })
    assert.deepEqual(await collect(repo.keys()), [])
  }))

  test('add then get returns the same entries; stat counts them', () => using(async (repo) => {
    const index = sampleIndex('a', 100)
    await repo.add('shard-a', index)
    assertSameIndex(await repo.get('shard-a'), index)
    assertSameIndex(await repo.get('shard-a', { fromStorage: true }), index)
    assert.deepEqual(await repo.stat('shard-a'), { exists: true, size: 100 })
    assert.deepEqual(await collect(repo.keys()), ['shard-a'])
  }))

  test('an empty index round-trips', () => using(async (repo) => {
    await repo.add('empty', sampleIndex('e', 0))
    const got = await repo.get('empty')
    assert.equal(got.size, 0)
    assert.deepEqual([...got], [])
    assert.deepEqual(await repo.stat('empty'), { exists: true, size: 0 })
  }))

  test('several multihash codes and lengths, offsets past 4 GiB', () => using(async (repo) => {
    const index = sampleIndex('m', 10, [
      { multihash: Uint8Array.from([0xa0, 0xe4, 0x02, 0x20, ...new Uint8Array(32).fill(7)]), offset: 2 ** 32 + 17 },
      { multihash: Uint8Array.from([0x13, 0x40, ...new Uint8Array(64).fill(3)]), offset: 2 ** 45 },
      { multihash: Uint8Array.from([0x12, 0x14, ...new Uint8Array(20).fill(1)]), offset: 5 }
    ])
    await repo.add('mixed', index)
    assertSameIndex(await repo.get('mixed'), index)
  }))

  test('drop: true when something was removed, false otherwise; takes effect at once', () => using(async (repo) => {
    assert.equal(await repo.drop('never-added'), false)
    await repo.add('k', sampleIndex('k', 5))
    await repo.get('k')
    assert.equal(await repo.drop('k'), true)
    await rejectsNotFound(repo.get('k'))
    await rejectsNotFound(repo.get('k', { fromStorage: true }))
    assert.deepEqual(await repo.stat('k'), { exists: false, size: 0 })
    assert.deepEqual(await collect(repo.keys()), [])
    assert.equal(await repo.drop('k'), false)
  }))

  test('add overwrites an existing index', () => using(async (repo) => {
    await repo.add('k', sampleIndex('first', 10))
    await repo.get('k')
    const second = sampleIndex('second', 3)
    await repo.add('k', second)
    assertSameIndex(await repo.get('k'), second)
    assertSameIndex(await repo.get('k', { fromStorage: true }), second)
    assert.deepEqual(await repo.stat('k'), { exists: true, size: 3 })
    assert.deepEqual(await collect(repo.keys()), ['k'])
  }))

  test('keys are independent; keys() lists exactly the present ones', () => using(async (repo) => {
    const names = ['a', 'b', 'c', 'd']
    await Promise.all(names.map(async (k, i) => { await repo.add(k, sampleIndex(k, i + 1)) }))
    assert.deepEqual(await collect(repo.keys()), names)
    await repo.drop('b')
    assert.deepEqual(await collect(repo.keys()), ['a', 'c', 'd'])
    assertSameIndex(await repo.get('c'), sampleIndex('c', 3))
    assert.deepEqual(await repo.stat('d'), { exists: true, size: 4 })
  }))

  test('untrusted key strings are opaque (path-like, unicode, long)', () => using(async (repo) => {
    const keys = ['../escape', 'a/b/c', '..', '.', 'with space', 'ünïcødé 🚀', 'CON', 'x'.repeat(1024), '%2e%2e', 'A', 'a']
    for (const [i, k] of keys.entries()) await repo.add(k, sampleIndex(`u${i}`, i + 1))
    assert.deepEqual(await collect(repo.keys()), [...keys].sort())
    for (const [i, k] of keys.entries()) {
      assertSameIndex(await repo.get(k), sampleIndex(`u${i}`, i + 1))
      assert.deepEqual(await repo.stat(k), { exists: true, size: i + 1 })
    }
    for (const k of keys) assert.equal(await repo.drop(k), true)
    assert.deepEqual(await collect(repo.keys()), [])
  }))

  test('a large index round-trips', () => using(async (repo) => {
    const index = sampleIndex('big', 20000)
    await repo.add('big', index)
    assertSameIndex(await repo.get('big'), index)
  }))
}
