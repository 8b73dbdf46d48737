// The shard table's key order (src/engine/shard/shard-map.ts): keys a restart loaded in
// ascending order and keys added, deleted or added again later read as one ordered set.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { ShardMap } from '../src/engine/shard/shard-map.js'
import { Shard } from '../src/engine/shard/shard.js'

const test = suite('shard map')

function shard (key: string): Shard {
  return new Shard(key, `file:///x/${encodeURIComponent(key)}.car`, true, 'new', undefined, undefined)
}

const keyArb = fc.oneof(fc.string({ minLength: 1, maxLength: 4 }), fc.constantFrom('a', 'b', '\u{1F600}', '\uE000', 'z'))

test('restored keys, later adds, deletes and re-adds list in JS string order, each once, from any cursor', () => {
  fc.assert(fc.property(
    fc.uniqueArray(keyArb, { maxLength: 40 }),
    fc.array(fc.tuple(fc.constantFrom('set', 'delete'), keyArb), { maxLength: 60 }),
    fc.option(keyArb, { nil: undefined }),
    (restored, ops, cursor) => {
      const map = new ShardMap()
      // A restart hands keys over in the state store's order: bytes, not always JS order.
      const byBytes = [...restored].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      for (const key of byBytes) map.load(key, shard(key))
      for (const [op, key] of ops) {
        if (op === 'set') map.set(key, shard(key))
        else map.delete(key)
      }
      const want = [...map.keys()].sort()
      assert.equal([...map.keysAfter(undefined)], want)
      if (cursor !== undefined) {
        assert.equal([...map.keysAfter(cursor)], want.filter((k) => k > cursor))
        assert.equal([...map.keysFrom(cursor)], want.filter((k) => k >= cursor))
      }
    }
  ), { numRuns: 500 })
})

test.run()
