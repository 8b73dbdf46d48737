import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import { MultihashIndexSortedView } from '../src/format/index/index-view.js'
import { SortedIndex } from '../src/format/index/sorted-index.js'
import { encodeMultihashIndexSorted } from '../src/format/index/multihash-index-sorted.js'
import { fixture } from './helpers/fixtures.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

test('the view over the index embedded in sample-wrapped-v2.car answers like the decoded index', async () => {
  const v2 = await readFile(fixture('sample-wrapped-v2.car'))
  const embedded = v2.subarray(Number(v2.readBigUInt64LE(11 + 32)))
  const view = new MultihashIndexSortedView(embedded)
  const decoded = SortedIndex.from(view)
  assert.is(view.size, 1043)
  assert.is(decoded.size, 1043)
  for (const { multihash, offset } of view) assert.is(decoded.get(multihash), offset)
  for (const { multihash, offset } of decoded) assert.is(view.get(multihash), offset)
})

test('mixed codes and digest lengths, misses, offsets past 4 GiB, identity entries skipped', async () => {
  const entries = await Promise.all(Array.from({ length: 300 }, async (_, i) => {
    const bytes = new TextEncoder().encode(`block ${i}`)
    const mh = i % 3 === 0 ? await sha512.digest(bytes) : await sha256.digest(bytes)
    return { multihash: mh.bytes, offset: i * 7_000_000_019 }
  }))
  const withIdentity = [...entries, { multihash: identity.digest(new Uint8Array([1, 2, 3])).bytes, offset: 5 }]
  const view = new MultihashIndexSortedView(encodeMultihashIndexSorted(withIdentity))
  assert.is(view.size, 300)
  for (const e of entries) assert.is(view.get(e.multihash), e.offset, hex(e.multihash))
  assert.ok(entries.some((e) => e.offset > 2 ** 32))
  assert.is(view.get(identity.digest(new Uint8Array([1, 2, 3])).bytes), undefined)
  assert.is(view.get((await sha256.digest(new Uint8Array([9]))).bytes), undefined)
  assert.is(view.get(new Uint8Array([0x12])), undefined, 'a truncated multihash is a miss, not a throw')
  assert.is(view.get(new Uint8Array([0xff, 0xff, 0xff])), undefined)
  assert.equal(new Set([...view].map((e) => hex(e.multihash))), new Set(entries.map((e) => hex(e.multihash))))
})

test('corrupt bytes → InvalidCarError naming a byte offset', () => {
  const good = encodeMultihashIndexSorted([{ multihash: new Uint8Array([0x12, 0x02, 1, 2]), offset: 1 }])
  const bads = [good.subarray(0, good.length - 1), Uint8Array.of(...good, 0), Uint8Array.of(0x80, 0x08, ...good.subarray(2)), new Uint8Array(0)]
  for (const bad of bads) {
    assert.throws(() => new MultihashIndexSortedView(bad),
      (e: { code?: string, message: string }) => e.code === 'ERR_INVALID_CAR' && /at byte \d+/.test(e.message))
  }
})

test.run()
