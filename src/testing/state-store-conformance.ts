/**
 * The StateStore contract: the seam through which the event loop persists shard records
 * (one batch per drain) and reads them all back at start, with the tombstones of destroys
 * whose cleanup has not finished. A new backend needs only a factory.
 */
import assert from 'node:assert/strict'
import { SHARD_STATES, type ShardKey } from '../base/types.js'
import type { ShardRecord } from '../storage/state/record.js'
import type { StateStore } from '../storage/state/state-store.js'
import { at, type RegisterTest } from './harness.js'

export interface StateStoreFactory {
  /** A store over new, empty storage. */
  open: () => Promise<StateStore>
  /**
   * Closes `store` and opens a new one over the same storage, as a restart would. Without it
   * the durability checks are left out.
   */
  reopen?: (store: StateStore) => Promise<StateStore>
  /** Closes `store` and frees its storage; called once per check with the latest store. */
  close: (store: StateStore) => Promise<void>
}

function record (key: ShardKey, i = 0): ShardRecord {
  const r: ShardRecord = {
    key,
    url: i % 3 === 0 ? `file:///data/shard-${i}.car` : `https://example.test/${encodeURIComponent(key)}?v=${i}`,
    state: at(SHARD_STATES, i % SHARD_STATES.length),
    lazy: i % 2 === 1
  }
  if (i % 4 === 1) r.transient = `/var/lib/dagstore/transients/${i}.car`
  if (i % 5 === 2) {
    r.error = `line one\nline "two" ✗ ${i}`
    r.errorCode = 'ERR_INVALID_CAR'
  }
  return r
}

/** Optional fields left undefined and left out are the same record. */
function normal (r: ShardRecord): ShardRecord {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as ShardRecord
}

async function loadAll (store: StateStore): Promise<ShardRecord[]> {
  const bad: string[] = []
  const out: ShardRecord[] = []
  for await (const page of store.loadAll((key) => { bad.push(key) })) {
    assert.ok(Array.isArray(page), 'loadAll yields arrays of records')
    out.push(...page)
  }
  assert.deepEqual(bad, [], 'records written through the store all load')
  return out
}

const byKey = (a: ShardRecord, b: ShardRecord): number => a.key < b.key ? -1 : a.key > b.key ? 1 : 0

/** loadAll yields exactly `expected` (any order, each key once). */
async function assertHolds (store: StateStore, expected: ShardRecord[], what = 'loadAll'): Promise<void> {
  const got = (await loadAll(store)).map(normal).sort(byKey)
  assert.deepEqual(got, expected.map(normal).sort(byKey), what)
}

function * generate<T> (items: T[]): Generator<T> { yield * items }

async function tombstonesOf (store: StateStore): Promise<ShardKey[]> {
  const out: ShardKey[] = []
  for await (const key of store.loadTombstones()) out.push(key)
  return out.sort()
}

/** Keys are untrusted strings of 1..1024 UTF-8 bytes without NUL. */
const ODD_KEYS: ShardKey[] = [
  'a', 'ab', 'A', 'a ', ' a', 'ünïcødé', '日本語', '💥', 'a\u00ff', '\u00ff', '\uffff', '\u2028\u2029',
  '\x01', '\x7f', 'tab\there', 'new\nline', 'quote"\'`', 'back\\slash', '../../etc/passwd', '%00', '%',
  '!', '!!', '!shards!x', 'shards', '~', '\u{10ffff}', 'é'.repeat(512), 'x'.repeat(1024), '💥'.repeat(256)
]

/** Registers the StateStore checks with `test`. */
export function stateStoreConformance (test: RegisterTest, factory: StateStoreFactory): void {
  async function using (fn: (s: { store: StateStore, reopen: () => Promise<StateStore> }) => Promise<void>): Promise<void> {
    let store = await factory.open()
    try {
      await fn({
        get store () { return store },
        reopen: async () => {
          assert.ok(factory.reopen !== undefined)
          store = await factory.reopen(store)
          return store
        }
      })
    } finally {
      await factory.close(store)
    }
  }
  const durable = (name: string, fn: (s: { store: StateStore, reopen: () => Promise<StateStore> }) => Promise<void>): void => {
    if (factory.reopen !== undefined) test(name, () => using(fn))
  }

  test('an empty store loads nothing', () => using(async ({ store }) => {
    await assertHolds(store, [])
  }))

  test('a batch of puts, then loadAll returns exactly those records', () => using(async ({ store }) => {
    const records = Array.from({ length: 60 }, (_, i) => record(`shard-${i}`, i))
    await store.writeBatch(records, [])
    await assertHolds(store, records)
  }))

  test('every field of a record round-trips: each state, lazy, transient, error and its code', () => using(async ({ store }) => {
    const records: ShardRecord[] = SHARD_STATES.flatMap((state, i) => [
      { key: `${state}-bare`, url: 'bytes:AAAA', state, lazy: false },
      { key: `${state}-full`, url: `file:///x/${i}.car`, state, lazy: true, transient: `/t/${i}`, error: 'boom: "x"\n✗', errorCode: 'ERR_TRANSIENT' }
    ])
    await store.writeBatch(generate(records), [])
    await assertHolds(store, records)
  }))

  test('a later batch overrides a record; other records are untouched', () => using(async ({ store }) => {
    await store.writeBatch([record('a', 0), record('b', 1)], [])
    const changed: ShardRecord = { key: 'a', url: 'file:///elsewhere.car', state: 'errored', lazy: false, error: 'gone', errorCode: 'ENOENT' }
    await store.writeBatch([changed], [])
    await assertHolds(store, [changed, record('b', 1)])
    // Fields left out of the new record are gone, not merged from the old one.
    const bare: ShardRecord = { key: 'a', url: 'file:///elsewhere.car', state: 'available', lazy: false }
    await store.writeBatch([bare], [])
    await assertHolds(store, [bare, record('b', 1)])
  }))

  test('delete removes a record; deleting an absent key is no error', () => using(async ({ store }) => {
    await store.writeBatch([record('a', 0), record('b', 1), record('c', 2)], [])
    await store.writeBatch([], new Set(['b', 'never-written']))
    await assertHolds(store, [record('a', 0), record('c', 2)])
    await store.writeBatch([], ['a', 'c'])
    await assertHolds(store, [])
  }))

  test('one batch mixing puts and deletes applies both', () => using(async ({ store }) => {
    await store.writeBatch([record('old-1', 1), record('old-2', 2)], [])
    await store.writeBatch([record('new', 3)], ['old-1'])
    await assertHolds(store, [record('old-2', 2), record('new', 3)])
  }))

  test('a key both deleted and put in one batch ends up with the put record (a destroy then register in one drain)', () => using(async ({ store }) => {
    await store.writeBatch([record('k', 1)], [])
    const again = record('k', 2)
    await store.writeBatch([again], new Set(['k']))
    await assertHolds(store, [again])
    await store.writeBatch([record('fresh', 3)], ['fresh'])
    await assertHolds(store, [again, record('fresh', 3)])
  }))

  test('an empty batch changes nothing', () => using(async ({ store }) => {
    await store.writeBatch([], [])
    await assertHolds(store, [])
    await store.writeBatch([record('a', 1)], [])
    await store.writeBatch([], new Set())
    await assertHolds(store, [record('a', 1)])
  }))

  test('untrusted keys (unicode, control characters, separators, 1024 bytes) stay distinct and exact', () => using(async ({ store }) => {
    const records = ODD_KEYS.map((k, i) => record(k, i))
    await store.writeBatch(records, [])
    await assertHolds(store, records)
    const gone = new Set(['a', '!', 'x'.repeat(1024), '\u00ff'])
    await store.writeBatch([], gone)
    await assertHolds(store, records.filter((r) => !gone.has(r.key)))
  }))

  test('5,000 records in one batch; then 2,000 of them deleted in one batch', () => using(async ({ store }) => {
    const records = Array.from({ length: 5000 }, (_, i) => record(`bulk/${String(i).padStart(5, '0')}`, i))
    await store.writeBatch(records, [])
    await assertHolds(store, records)
    await store.writeBatch([], records.slice(1000, 3000).map((r) => r.key))
    await assertHolds(store, [...records.slice(0, 1000), ...records.slice(3000)])
  }))

  test('stopping a loadAll early leaves the store usable', () => using(async ({ store }) => {
    const records = Array.from({ length: 5000 }, (_, i) => record(`early-${i}`, i))
    await store.writeBatch(records, [])
    for await (const page of store.loadAll(() => {})) {
      assert.ok(page.length > 0)
      break
    }
    await store.writeBatch([record('after', 1)], ['early-0'])
    await assertHolds(store, [...records.slice(1), record('after', 1)])
  }))

  test('batches written one after another all land', () => using(async ({ store }) => {
    const expected = new Map<string, ShardRecord>()
    for (let i = 0; i < 200; i++) {
      const r = record(`seq-${i % 50}`, i)
      const deletes = i % 7 === 0 ? [`seq-${(i + 13) % 50}`] : []
      await store.writeBatch([r], deletes)
      for (const d of deletes) expected.delete(d)
      expected.set(r.key, r)
    }
    await assertHolds(store, [...expected.values()])
  }))

  test('a tombstone set in the batch that deletes its record is listed by loadTombstones, never by loadAll; a later batch clears it', () => using(async ({ store }) => {
    await store.writeBatch([record('a', 0), record('b', 1)], [])
    await store.writeBatch([], ['a'], [['a', true]])
    await assertHolds(store, [record('b', 1)])
    assert.deepEqual(await tombstonesOf(store), ['a'], 'tombstones after the destroy')
    await store.writeBatch([], [], [['a', false], ['never-set', false]])
    assert.deepEqual(await tombstonesOf(store), [], 'tombstones once cleared')
    await assertHolds(store, [record('b', 1)])
  }))

  test('a tombstone and a record of the same key live apart: each goes only by its own write', () => using(async ({ store }) => {
    await store.writeBatch([record('k', 1)], [])
    await store.writeBatch([], ['k'], [['k', true]])
    // The key registered again while its old shard's cleanup runs.
    const again = record('k', 2)
    await store.writeBatch([again], [])
    assert.deepEqual(await tombstonesOf(store), ['k'])
    await assertHolds(store, [again])
    await store.writeBatch([], [], [['k', false]])
    await assertHolds(store, [again], 'clearing the tombstone keeps the record')
    await store.writeBatch([], [], [['k', true], ['k', false], ['k', true]])
    assert.deepEqual(await tombstonesOf(store), ['k'], 'the last word in a batch wins')
    await store.writeBatch([], ['k'])
    assert.deepEqual(await tombstonesOf(store), ['k'], 'deleting the record keeps the tombstone')
  }))

  test('untrusted keys as tombstones stay distinct and exact', () => using(async ({ store }) => {
    await store.writeBatch([], [], ODD_KEYS.map((k) => [k, true]))
    assert.deepEqual(await tombstonesOf(store), [...ODD_KEYS].sort())
    await assertHolds(store, [])
  }))

  durable('tombstones survive close and reopen', async (s) => {
    await s.store.writeBatch([record('a', 1)], ['gone'], [['gone', true], ['cleared', true]])
    await s.store.writeBatch([], [], [['cleared', false]])
    await s.reopen()
    assert.deepEqual(await tombstonesOf(s.store), ['gone'], 'after reopen')
    await assertHolds(s.store, [record('a', 1)], 'after reopen')
  })

  durable('records survive close and reopen', async (s) => {
    const records = ODD_KEYS.map((k, i) => record(k, i))
    await s.store.writeBatch(records, [])
    await s.reopen()
    await assertHolds(s.store, records, 'after reopen')
  })

  durable('deletes and overrides survive close and reopen; the reopened store takes writes', async (s) => {
    await s.store.writeBatch([record('a', 1), record('b', 2), record('c', 3)], [])
    await s.store.writeBatch([record('a', 4)], ['b'])
    await s.reopen()
    await assertHolds(s.store, [record('a', 4), record('c', 3)], 'after reopen')
    await s.store.writeBatch([record('d', 5)], ['c'])
    await s.reopen()
    await assertHolds(s.store, [record('a', 4), record('d', 5)], 'after a second reopen')
  })

  durable('an empty store reopens empty; 5,000 records reopen whole', async (s) => {
    await s.reopen()
    await assertHolds(s.store, [], 'empty after reopen')
    const records = Array.from({ length: 5000 }, (_, i) => record(`many-${i}`, i))
    await s.store.writeBatch(records, [])
    await s.reopen()
    await assertHolds(s.store, records, 'after reopen')
  })
}
