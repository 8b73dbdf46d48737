// The StateStore conformance suite over LevelStateStore on LevelDB in a temp dir and on
// MemoryLevel, plus what only the LevelDB-backed store promises: it shares its database with
// the top-level index, and a record it cannot read is reported and skipped.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { Level } from 'level'
import { MemoryLevel } from 'memory-level'
import { LevelStateStore, type AnyLevel, type StateStore } from '../src/storage/state/state-store.js'
import type { ShardRecord } from '../src/storage/state/record.js'
import { LevelTopLevelIndex } from '../src/storage/index/level-top-level.js'
import { stateStoreConformance } from '../src/testing/index.js'
import { runConformance } from './helpers/conformance.js'
import { tempDir } from './helpers/fixtures.js'

interface Backing { db: AnyLevel, reopen: () => Promise<AnyLevel>, destroy: () => Promise<void> }

/** A LevelStateStore factory over databases from `create`; tracks each store's database. */
function levelFactory (create: () => Promise<Backing>): Parameters<typeof stateStoreConformance>[1] {
  const backings = new WeakMap<StateStore, Backing>()
  const backingOf = (store: StateStore): Backing => {
    const b = backings.get(store)
    if (b === undefined) throw new Error('a store this factory did not open')
    return b
  }
  return {
    open: async () => {
      const backing = await create()
      const store = new LevelStateStore(backing.db)
      backings.set(store, backing)
      return store
    },
    reopen: async (store) => {
      const backing = backingOf(store)
      const db = await backing.reopen()
      const again = new LevelStateStore(db)
      backings.set(again, { ...backing, db })
      return again
    },
    close: async (store) => { await backingOf(store).destroy() }
  }
}

async function onDisk (): Promise<Backing> {
  const { dir, cleanup } = await tempDir()
  const path = join(dir, 'state')
  const open = async (): Promise<AnyLevel> => {
    const db = new Level(path) as unknown as AnyLevel
    await db.open()
    return db
  }
  const backing: Backing = {
    db: await open(),
    reopen: async () => {
      await backing.db.close()
      backing.db = await open()
      return backing.db
    },
    destroy: async () => {
      await backing.db.close()
      await cleanup()
    }
  }
  return backing
}

async function inMemory (): Promise<Backing> {
  const db = new MemoryLevel() as unknown as AnyLevel
  await db.open()
  return {
    db,
    // A MemoryLevel keeps its data across close and open: the same instance is the same storage.
    reopen: async () => { await db.close(); await db.open(); return db },
    destroy: async () => { await db.close() }
  }
}

runConformance('StateStore conformance: LevelStateStore on LevelDB', (test) => {
  stateStoreConformance(test, levelFactory(onDisk))
})

runConformance('StateStore conformance: LevelStateStore on MemoryLevel', (test) => {
  stateStoreConformance(test, levelFactory(inMemory))
})

// ---------------------------------------------------------------------------------------------

const level = suite('LevelStateStore')

async function loadAll (store: StateStore): Promise<{ records: ShardRecord[], bad: Array<[string, string]> }> {
  const records: ShardRecord[] = []
  const bad: Array<[string, string]> = []
  for await (const page of store.loadAll((key, err) => { bad.push([key, err.message]) })) records.push(...page)
  return { records, bad }
}

level('records share the database with the top-level index and load apart from it', async () => {
  const backing = await onDisk()
  try {
    const tli = new LevelTopLevelIndex(backing.db)
    await tli.addMultihashesForShard('a', [Uint8Array.of(0x12, 0x02, 1, 2)])
    const store = new LevelStateStore(backing.db)
    const a: ShardRecord = { key: 'a', url: 'file:///a.car', state: 'available', lazy: false }
    await store.writeBatch([a], [])
    assert.equal(await loadAll(store), { records: [a], bad: [] })
    await store.writeBatch([], ['a'])
    assert.equal(await tli.shardsForMultihash(Uint8Array.of(0x12, 0x02, 1, 2)), ['a'], 'deleting the record leaves the index alone')
  } finally {
    await backing.destroy()
  }
})

level('a record it cannot read is reported by key and skipped; the others load', async () => {
  const backing = await onDisk()
  try {
    const store = new LevelStateStore(backing.db)
    const good: ShardRecord[] = [
      { key: 'a', url: 'file:///a.car', state: 'available', lazy: false },
      { key: 'c', url: 'file:///c.car', state: 'errored', lazy: true, error: 'x', errorCode: 'ERR_X' }
    ]
    await store.writeBatch(good, [])
    // Written behind the store's back, as another version or a damaged disk might have.
    const records = backing.db.sublevel<string, string>('shards', { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    await records.put('b', 'not json')
    await records.put('b2', JSON.stringify({ k: 'b2', u: 'file:///b2.car', s: 'no-such-state' }))
    await records.put('b3', JSON.stringify({ k: 'b3', s: 'available' }))
    const { records: loaded, bad } = await loadAll(store)
    assert.equal(loaded, good)
    assert.equal(bad.map(([key]) => key), ['b', 'b2', 'b3'])
  } finally {
    await backing.destroy()
  }
})

level.run()
