// One conformance suite for every TopLevelIndex implementation.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import type { TopLevelIndex } from '../../src/base/index-types.js'
import { at } from '../helpers/assert.js'

export interface TopLevelIndexUnderTest { index: TopLevelIndex, cleanup: () => Promise<void> }

async function mh (s: string): Promise<Uint8Array> {
  return (await sha256.digest(new TextEncoder().encode(s))).bytes
}

async function * asAsync<T> (items: T[]): AsyncIterable<T> { yield * items }

export function topLevelIndexConformance (name: string, make: () => Promise<TopLevelIndexUnderTest>): void {
  const test = suite<{ t: TopLevelIndexUnderTest }>(`TopLevelIndex conformance: ${name}`)
  test.before.each(async (ctx) => { ctx.t = await make() })
  test.after.each(async (ctx) => { await ctx.t.cleanup() })

  test('usable at once after construction (no await before the first write)', async ({ t }) => {
    const bytes = Uint8Array.of(0x12, 0x02, 1, 2)
    await t.index.addMultihashesForShard('first', [bytes])
    assert.equal(await t.index.shardsForMultihash(bytes), ['first'])
  })

  test('unknown multihash → []', async ({ t }) => {
    assert.equal(await t.index.shardsForMultihash(await mh('nothing')), [])
  })

  test('add (iterable and async iterable) then look up; several shards per multihash', async ({ t }) => {
    const [a, b, c] = await Promise.all([mh('a'), mh('b'), mh('c')])
    await t.index.addMultihashesForShard('s1', [a, b])
    await t.index.addMultihashesForShard('s2', asAsync([b, c]))
    assert.equal(await t.index.shardsForMultihash(a), ['s1'])
    assert.equal((await t.index.shardsForMultihash(b)).sort(), ['s1', 's2'])
    assert.equal(await t.index.shardsForMultihash(c), ['s2'])
  })

  test('adding the same pairs again does not duplicate them', async ({ t }) => {
    const a = await mh('a')
    await t.index.addMultihashesForShard('s', [a, a])
    await t.index.addMultihashesForShard('s', [a])
    assert.equal(await t.index.shardsForMultihash(a), ['s'])
  })

  test('removeShard with the multihash list, and without (scan)', async ({ t }) => {
    const [a, b] = await Promise.all([mh('a'), mh('b')])
    await t.index.addMultihashesForShard('s1', [a, b])
    await t.index.addMultihashesForShard('s2', [a, b])
    await t.index.addMultihashesForShard('s3', [a])
    await t.index.removeShard('s1', [a, b])
    assert.equal((await t.index.shardsForMultihash(a)).sort(), ['s2', 's3'])
    await t.index.removeShard('s2')
    assert.equal(await t.index.shardsForMultihash(a), ['s3'])
    assert.equal(await t.index.shardsForMultihash(b), [])
    await t.index.removeShard('never-added')
    await t.index.removeShard('never-added', [a])
    assert.equal(await t.index.shardsForMultihash(a), ['s3'])
  })

  test('shard keys that prefix each other, unicode, hostile keys stay distinct', async ({ t }) => {
    const a = await mh('a')
    const keys = ['a', 'ab', 'a\u00ff', '💥', '../x', 'x'.repeat(1024)]
    for (const k of keys) await t.index.addMultihashesForShard(k, [a])
    assert.equal((await t.index.shardsForMultihash(a)).sort(), [...keys].sort())
    await t.index.removeShard('a')
    assert.equal((await t.index.shardsForMultihash(a)).sort(), keys.filter((k) => k !== 'a').sort())
  })

  test('a multihash that is a prefix of another does not match it; identity and long multihashes work', async ({ t }) => {
    const long = await mh('long')
    const short = long.subarray(0, 10)
    const inline = identity.digest(new Uint8Array(200).fill(7)).bytes
    await t.index.addMultihashesForShard('long', [long])
    await t.index.addMultihashesForShard('short', [short])
    await t.index.addMultihashesForShard('inline', [inline])
    assert.equal(await t.index.shardsForMultihash(long), ['long'])
    assert.equal(await t.index.shardsForMultihash(short), ['short'])
    assert.equal(await t.index.shardsForMultihash(inline), ['inline'])
  })

  test('large shards (20,000 multihashes) add and remove completely', async ({ t }) => {
    const many = await Promise.all(Array.from({ length: 20_000 }, async (_, i) => await mh(`m${i}`)))
    await t.index.addMultihashesForShard('big', many)
    await t.index.addMultihashesForShard('other', many.slice(0, 5))
    assert.equal(await t.index.shardsForMultihash(at(many, 19_999)), ['big'])
    await t.index.removeShard('big', many)
    assert.equal(await t.index.shardsForMultihash(at(many, 19_999)), [])
    assert.equal(await t.index.shardsForMultihash(at(many, 0)), ['other'])
  })

  test.run()
}
