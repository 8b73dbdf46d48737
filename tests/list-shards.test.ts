// DAGStore.listShards: pages in key order from the loop's ordered shard table.
import * as assert from 'uvu/assert'
import { suite } from 'uvu'
import fc from 'fast-check'
import { ShardMap } from '../src/engine/shard/shard-map.js'
import { Shard } from '../src/engine/shard/shard.js'
import { listShardsPage } from '../src/engine/list-shards.js'
import { FileMount } from '../src/storage/mount/file.js'
import { SHARD_STATES, type ListShardsOptions, type ShardState } from '../src/base/types.js'
import { fixture } from './helpers/fixtures.js'
import { codeOf } from './helpers/assert.js'
import { dirSuite, openStore } from './helpers/store.js'

const byCodeUnits = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

function tableOf (entries: Array<[string, ShardState]>): ShardMap {
  const map = new ShardMap()
  for (const [key, state] of entries) map.set(key, new Shard(key, 'file:///x.car', true, state, undefined, undefined))
  return map
}

/** Every page from the first, following `next`: the keys, and how many pages it took. */
function walk (map: ShardMap, options: Omit<ListShardsOptions, 'after'>): { keys: string[], pages: number } {
  const keys: string[] = []
  let after: string | undefined
  let pages = 0
  for (;;) {
    const page = listShardsPage(map, after === undefined ? options : { ...options, after })
    pages++
    keys.push(...page.shards.map((s) => s.key))
    if (page.next === undefined) return { keys, pages }
    assert.ok(after === undefined || page.next > after, 'the cursor moves forward')
    after = page.next
  }
}

const table = suite('listShards pages (ShardMap)')

table('a walk over every page returns every key once, in JS string order, whatever the limit, prefix and state', () => {
  const key = fc.string({ unit: fc.constantFrom('a', 'b', 'ab', 'é', '😀', '\uffff', '/'), minLength: 1, maxLength: 4 })
  fc.assert(fc.property(
    fc.uniqueArray(fc.tuple(key, fc.constantFrom(...SHARD_STATES)), { selector: ([k]) => k, maxLength: 60 }),
    fc.integer({ min: 1, max: 7 }),
    fc.option(fc.constantFrom('a', 'ab', 'é', '😀', 'z'), { nil: undefined }),
    fc.option(fc.constantFrom(...SHARD_STATES), { nil: undefined }),
    (entries, limit, prefix, state) => {
      const map = tableOf(entries)
      const expected = entries
        .filter(([k, s]) => (prefix === undefined || k.startsWith(prefix)) && (state === undefined || s === state))
        .map(([k]) => k)
        .sort(byCodeUnits)
      const { keys } = walk(map, { limit, ...(prefix === undefined ? {} : { prefix }), ...(state === undefined ? {} : { state }) })
      assert.equal(keys, expected)
    }
  ), { numRuns: 300 })
})

table('a page stops at limit and says where the next starts; the last page has no next', () => {
  const map = tableOf(['d', 'a', 'c', 'b', 'e'].map((k) => [k, 'new']))
  const first = listShardsPage(map, { limit: 2 })
  assert.equal(first.shards.map((s) => s.key), ['a', 'b'])
  assert.is(first.next, 'b')
  assert.equal(first.shards[0]?.info, { state: 'new', refs: 0 })
  const last = listShardsPage(map, { limit: 3, after: 'b' })
  assert.equal(last.shards.map((s) => s.key), ['c', 'd', 'e'])
  assert.is(last.next, undefined)
  // A cursor need not name a shard that still exists.
  assert.equal(listShardsPage(map, { after: 'bb' }).shards.map((s) => s.key), ['c', 'd', 'e'])
  map.delete('c')
  assert.equal(listShardsPage(map, { after: 'b' }).shards.map((s) => s.key), ['d', 'e'])
})

table('a state filter few shards match examines a bounded number of keys per page and goes on with next', () => {
  const entries: Array<[string, ShardState]> = []
  for (let i = 0; i < 50_000; i++) entries.push([`k${String(i).padStart(6, '0')}`, 'new'])
  entries.push(['k049999x', 'errored'])
  const map = tableOf(entries)
  const first = listShardsPage(map, { state: 'errored' })
  assert.equal(first.shards, [])
  // 4,096 keys examined, the last of them is where the next call starts.
  assert.is(first.next, 'k004095')
  const { keys, pages } = walk(map, { state: 'errored' })
  assert.equal(keys, ['k049999x'])
  assert.ok(pages > 1, `${pages} pages`)
  // A page without a filter is full, even past that bound.
  const full = listShardsPage(map, { limit: 10_000 })
  assert.equal([full.shards.length, full.next], [10_000, 'k009999'])
})

table('bad options: ERR_INVALID_ARGUMENT', async () => {
  const map = tableOf([])
  const bads: ListShardsOptions[] = [
    { limit: 0 }, { limit: 10_001 }, { limit: 1.5 }, { state: 'gone' as ShardState },
    { after: 3 as unknown as string }, { prefix: null as unknown as string }
  ]
  for (const bad of bads) {
    assert.is(await codeOf(Promise.resolve().then(() => listShardsPage(map, bad))), 'ERR_INVALID_ARGUMENT', JSON.stringify(bad))
  }
})

table.run()

const store = dirSuite('DAGStore.listShards')

store('lists registered shards in order with their info, skips destroyed ones, and keeps the order across a restart', async (ctx) => {
  let { store } = await openStore(ctx.dir)
  try {
    await store.register('b', new FileMount(fixture('sample-v1.car')))
    for (const key of ['c/1', 'a', 'c/2', 'c/0']) await store.register(key, new FileMount(fixture('sample-v1.car')), { lazy: true })
    await store.register('broken', new FileMount(fixture('junk.dat'))).catch(() => {})
    assert.equal(store.listShards().shards.map((s) => [s.key, s.info.state]),
      [['a', 'new'], ['b', 'available'], ['broken', 'errored'], ['c/0', 'new'], ['c/1', 'new'], ['c/2', 'new']])
    assert.equal(store.listShards({ prefix: 'c/', after: 'c/0' }).shards.map((s) => s.key), ['c/1', 'c/2'])
    assert.equal(store.listShards({ state: 'errored' }).shards.map((s) => s.key), ['broken'])
    assert.equal(store.listShards({ state: 'errored' }).shards[0]?.info.error?.name, 'InvalidCarError')
    await store.destroy('b')
    assert.equal(store.listShards({ limit: 2 }).shards.map((s) => s.key), ['a', 'broken'])
    await store.close()
    ;({ store } = await openStore(ctx.dir))
    assert.equal(store.listShards().shards.map((s) => s.key), ['a', 'broken', 'c/0', 'c/1', 'c/2'])
    assert.is(await codeOf(Promise.resolve().then(() => store.listShards({ limit: -1 }))), 'ERR_INVALID_ARGUMENT')
  } finally {
    await store.close()
  }
})

store.run()
