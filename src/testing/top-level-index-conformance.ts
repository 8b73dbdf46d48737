/** The TopLevelIndex contract, run against every implementation. */
import assert from 'node:assert/strict'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import type { TopLevelIndex } from '../base/index-types.js'
import { at, type RegisterTest } from './harness.js'

export interface TopLevelIndexUnderTest { index: TopLevelIndex, cleanup: () => Promise<void> }

async function mh (s: string): Promise<Uint8Array> {
  return (await sha256.digest(new TextEncoder().encode(s))).bytes
}

function rejected (err: Error): Promise<void> {
  const p = Promise.reject(err)
  p.catch(() => {})
  return p
}

async function * asAsync<T> (items: T[]): AsyncIterable<T> { yield * items }

/** Registers the TopLevelIndex checks with `test`; each check gets a fresh index and cleans it up. */
export function topLevelIndexConformance (test: RegisterTest, make: () => Promise<TopLevelIndexUnderTest>): void {
  async function using (fn: (index: TopLevelIndex) => Promise<void>): Promise<void> {
    const t = await make()
    try {
      await fn(t.index)
    } finally {
      await t.cleanup()
    }
  }

  test('usable at once after construction (no await before the first write)', () => using(async (index) => {
    const bytes = Uint8Array.of(0x12, 0x02, 1, 2)
    await index.addMultihashesForShard('first', [bytes])
    assert.deepEqual(await index.shardsForMultihash(bytes), ['first'])
  }))

  test('unknown multihash → []', () => using(async (index) => {
    assert.deepEqual(await index.shardsForMultihash(await mh('nothing')), [])
  }))

  test('add (iterable and async iterable) then look up; several shards per multihash', () => using(async (index) => {
    const [a, b, c] = await Promise.all([mh('a'), mh('b'), mh('c')])
    await index.addMultihashesForShard('s1', [a, b])
    await index.addMultihashesForShard('s2', asAsync([b, c]))
    assert.deepEqual(await index.shardsForMultihash(a), ['s1'])
    assert.deepEqual((await index.shardsForMultihash(b)).sort(), ['s1', 's2'])
    assert.deepEqual(await index.shardsForMultihash(c), ['s2'])
  }))

  test('adding the same pairs again does not duplicate them', () => using(async (index) => {
    const a = await mh('a')
    await index.addMultihashesForShard('s', [a, a])
    await index.addMultihashesForShard('s', [a])
    assert.deepEqual(await index.shardsForMultihash(a), ['s'])
  }))

  test('removeShard with the multihash list, and without (scan)', () => using(async (index) => {
    const [a, b] = await Promise.all([mh('a'), mh('b')])
    await index.addMultihashesForShard('s1', [a, b])
    await index.addMultihashesForShard('s2', [a, b])
    await index.addMultihashesForShard('s3', [a])
    await index.removeShard('s1', [a, b])
    assert.deepEqual((await index.shardsForMultihash(a)).sort(), ['s2', 's3'])
    await index.removeShard('s2')
    assert.deepEqual(await index.shardsForMultihash(a), ['s3'])
    assert.deepEqual(await index.shardsForMultihash(b), [])
    await index.removeShard('never-added')
    await index.removeShard('never-added', [a])
    assert.deepEqual(await index.shardsForMultihash(a), ['s3'])
  }))

  test('shard keys that prefix each other, unicode, hostile keys stay distinct', () => using(async (index) => {
    const a = await mh('a')
    const keys = ['a', 'ab', 'a\u00ff', '💥', '../x', 'x'.repeat(1024)]
    for (const k of keys) await index.addMultihashesForShard(k, [a])
    assert.deepEqual((await index.shardsForMultihash(a)).sort(), [...keys].sort())
    await index.removeShard('a')
    assert.deepEqual((await index.shardsForMultihash(a)).sort(), keys.filter((k) => k !== 'a').sort())
  }))

  test('a multihash that is a prefix of another does not match it; identity and long multihashes work', () => using(async (index) => {
    const long = await mh('long')
    const short = long.subarray(0, 10)
    const inline = identity.digest(new Uint8Array(200).fill(7)).bytes
    await index.addMultihashesForShard('long', [long])
    await index.addMultihashesForShard('short', [short])
    await index.addMultihashesForShard('inline', [inline])
    assert.deepEqual(await index.shardsForMultihash(long), ['long'])
    assert.deepEqual(await index.shardsForMultihash(short), ['short'])
    assert.deepEqual(await index.shardsForMultihash(inline), ['inline'])
  }))

  test('large shards (20,000 multihashes) add and remove completely', () => using(async (index) => {
    const many = await Promise.all(Array.from({ length: 20_000 }, async (_, i) => await mh(`m${i}`)))
    await index.addMultihashesForShard('big', many)
    await index.addMultihashesForShard('other', many.slice(0, 5))
    assert.deepEqual(await index.shardsForMultihash(at(many, 19_999)), ['big'])
    await index.removeShard('big', many)
    assert.deepEqual(await index.shardsForMultihash(at(many, 19_999)), [])
    assert.deepEqual(await index.shardsForMultihash(at(many, 0)), ['other'])
  }))

  // More pairs than an implementation is likely to hold back while it waits for `after`.
  const gated = async (): Promise<Uint8Array[]> => await Promise.all(Array.from({ length: 70_000 }, async (_, i) => await mh(`g${i}`)))

  test('with `after`: the add settles only once it fulfils, and then every pair is there', () => using(async (index) => {
    const many = await gated()
    let released = false
    const after = new Promise<void>((resolve) => { setImmediate(() => { released = true; resolve() }) })
    await index.addMultihashesForShard('gated', many, { after })
    assert.equal(released, true)
    for (let i = 0; i < many.length; i += 997) assert.deepEqual(await index.shardsForMultihash(at(many, i)), ['gated'])
    assert.deepEqual(await index.shardsForMultihash(at(many, many.length - 1)), ['gated'])
  }))

  test('with `after`: when it rejects, the add rejects with its reason and writes no pair', () => using(async (index) => {
    const many = await gated()
    const failure = new Error('full index not stored')
    const after = new Promise<void>((_resolve, reject) => { setImmediate(() => { reject(failure) }) })
    // An implementation that ignores `after` must fail the assertions below, not crash the run.
    after.catch(() => {})
    await assert.rejects(index.addMultihashesForShard('gated', many, { after }), (err) => err === failure)
    await assert.rejects(index.addMultihashesForShard('gated', many.slice(0, 3), { after: rejected(failure) }), (err) => err === failure)
    for (let i = 0; i < many.length; i += 997) assert.deepEqual(await index.shardsForMultihash(at(many, i)), [])
    assert.deepEqual(await index.shardsForMultihash(at(many, many.length - 1)), [])
  }))
}
