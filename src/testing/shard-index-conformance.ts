/**
 * The ShardIndex contract: multihash → offset of its section, as every index implementation
 * (built in memory, read from a file, decoded from a CARv2) must answer it.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { IndexEntry, ShardIndex } from '../base/index-types.js'
import { at, flipBits, hex, type RegisterTest } from './harness.js'

/**
 * Builds an index holding exactly `entries`: distinct, well-formed multihashes (code varint,
 * length varint, a digest of that length, at least one byte), never identity multihashes
 * (an indexer leaves those out: identity CIDs are answered from the CID).
 */
export type ShardIndexFactory = (entries: IndexEntry[]) => ShardIndex | Promise<ShardIndex>

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}

function digest (seed: string, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let filled = 0, round = 0; filled < length; round++) {
    const block = createHash('sha512').update(`${seed}/${round}`).digest()
    out.set(block.subarray(0, Math.min(block.length, length - filled)), filled)
    filled += block.length
  }
  return out
}

function multihash (code: number, bytes: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint(code), ...varint(bytes.length), ...bytes])
}

/** (code, digest length) pairs: common hashes, multi-byte code and length varints. */
const SHAPES: Array<[number, number]> = [
  [0x12, 32], // sha2-256
  [0x13, 64], // sha2-512
  [0x12, 20], // sha2-256 truncated: same code, another length
  [0xb220, 32], // blake2b-256: a three-byte code varint
  [0x1012, 32], // sha2-256-trunc254-padded (Filecoin piece CIDs)
  [0x1e, 200] // a length varint of two bytes
]

const OFFSETS_PAST_4GIB = [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 17, 2 ** 45 + 3, Number.MAX_SAFE_INTEGER]

/** `n` distinct entries over every shape plus one 1-byte digest, offsets spread up to past 4 GiB. */
function manyEntries (n: number): IndexEntry[] {
  const entries = Array.from({ length: n - 1 }, (_, i) => {
    const [code, length] = at(SHAPES, i % SHAPES.length)
    const offset = OFFSETS_PAST_4GIB[i] ?? 59 + i * 997
    return { multihash: multihash(code, digest(`entry ${i}`, length)), offset }
  })
  entries.push({ multihash: multihash(0x16, Uint8Array.of(0x2a)), offset: 7 })
  return entries
}

/** Multihashes near `present` that are not in the index: a lookup must not match them. */
function nearMisses (present: Uint8Array[]): Array<[string, Uint8Array]> {
  const misses: Array<[string, Uint8Array]> = [
    ['empty bytes', new Uint8Array(0)],
    ['a lone code byte', Uint8Array.of(0x12)],
    ['an unterminated varint', Uint8Array.of(0xff, 0xff, 0xff)],
    ['an unknown digest', multihash(0x12, digest('absent', 32))]
  ]
  for (const mh of present.slice(0, 3)) {
    const name = hex(mh).slice(0, 12)
    const last = mh.length - 1
    const flipped = mh.slice()
    flipBits(flipped, last, 0x01)
    misses.push(
      [`${name}: its last digest byte changed`, flipped],
      [`${name}: cut short by one byte`, mh.subarray(0, last)],
      [`${name}: cut to its first 10 bytes`, mh.subarray(0, 10)],
      [`${name}: one byte appended`, Uint8Array.from([...mh, 0x00])],
      [`${name}: its digest under another code`, Uint8Array.from([mh[0] === 0x13 ? 0x12 : 0x13, ...mh.subarray(1)])]
    )
  }
  return misses
}

function sortedPairs (entries: Iterable<IndexEntry>): Array<[string, number]> {
  return [...entries].map(({ multihash, offset }): [string, number] => [hex(multihash), offset])
    .sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
}

/** size, get and iteration all agree with `expected`. */
function assertHolds (index: ShardIndex, expected: IndexEntry[]): void {
  assert.equal(index.size, expected.length, 'size')
  for (const { multihash, offset } of expected) assert.equal(index.get(multihash), offset, `get ${hex(multihash)}`)
  // Collected before any comparison: a multihash the iterator later overwrites shows up here.
  const iterated = [...index]
  assert.equal(iterated.length, expected.length, 'iteration yields every entry exactly once')
  for (const e of iterated) assert.ok(e.multihash instanceof Uint8Array, 'multihash is a Uint8Array')
  assert.deepEqual(sortedPairs(iterated), sortedPairs(expected))
}

/** Registers the ShardIndex checks with `test`; `build` makes the index under test from entries. */
export function shardIndexConformance (test: RegisterTest, build: ShardIndexFactory): void {
  test('an empty index: size 0, iterates nothing, finds nothing', async () => {
    const index = await build([])
    assertHolds(index, [])
    for (const [what, mh] of nearMisses([multihash(0x12, digest('x', 32))])) assert.equal(index.get(mh), undefined, what)
  })

  test('one entry: found at its offset; its near misses are not', async () => {
    const only = { multihash: multihash(0x12, digest('only', 32)), offset: 61 }
    const index = await build([only])
    assertHolds(index, [only])
    for (const [what, mh] of nearMisses([only.multihash])) assert.equal(index.get(mh), undefined, what)
  })

  test('offset 0 and offsets past 4 GiB up to 2^53 - 1 come back exactly', async () => {
    const offsets = [0, 1, ...OFFSETS_PAST_4GIB]
    const entries = offsets.map((offset, i) => ({ multihash: multihash(0x12, digest(`far ${i}`, 32)), offset }))
    assertHolds(await build(entries), entries)
  })

  test('5,000 entries of several codes and digest lengths', async () => {
    const entries = manyEntries(5000)
    const index = await build(entries)
    assertHolds(index, entries)
    for (const [what, mh] of nearMisses(entries.map((e) => e.multihash))) assert.equal(index.get(mh), undefined, what)
  })

  test('entries given in any order give the same index', async () => {
    const entries = manyEntries(300)
    const shuffled = entries.map((e, i) => ({ e, k: hex(digest(`order ${i}`, 4)) }))
      .sort((a, b) => a.k < b.k ? -1 : 1).map(({ e }) => e)
    assertHolds(await build(shuffled), entries)
    assertHolds(await build([...entries].reverse()), entries)
  })

  test('a multihash and its prefix-free neighbours in one index stay distinct', async () => {
    // Same code, digests that share all but the last byte, and a shorter digest of the same prefix.
    const base = digest('siblings', 32)
    const sibling = base.slice()
    flipBits(sibling, 31, 0xff)
    const entries = [
      { multihash: multihash(0x12, base), offset: 100 },
      { multihash: multihash(0x12, sibling), offset: 200 },
      { multihash: multihash(0x12, base.subarray(0, 20)), offset: 300 },
      { multihash: multihash(0x13, digest('siblings', 64)), offset: 400 },
      { multihash: multihash(0xb220, base), offset: 500 }
    ]
    assertHolds(await build(entries), entries)
  })

  test('lookups with views into larger buffers, and without mutating the key', async () => {
    const entries = manyEntries(50)
    const index = await build(entries)
    for (const { multihash, offset } of entries) {
      const backing = new Uint8Array(multihash.length + 17).fill(0xee)
      backing.set(multihash, 9)
      const view = backing.subarray(9, 9 + multihash.length)
      const before = backing.slice()
      assert.equal(index.get(view), offset, `view of ${hex(multihash)}`)
      assert.deepEqual(backing, before, 'get leaves the key bytes alone')
    }
  })

  test('iterable more than once, with the same entries each time', async () => {
    const entries = manyEntries(100)
    const index = await build(entries)
    const first = sortedPairs(index)
    const second = sortedPairs(index)
    assert.deepEqual(second, first)
    // Two iterations interleaved do not disturb each other.
    const a = index[Symbol.iterator]()
    const b = index[Symbol.iterator]()
    const fromA: IndexEntry[] = []
    const fromB: IndexEntry[] = []
    for (;;) {
      const x = a.next()
      const y = b.next()
      assert.equal(x.done, y.done)
      if (x.done === true || y.done === true) break
      fromA.push(x.value)
      fromB.push(y.value)
    }
    assert.deepEqual(sortedPairs(fromA), sortedPairs(entries))
    assert.deepEqual(sortedPairs(fromB), sortedPairs(entries))
  })
}
