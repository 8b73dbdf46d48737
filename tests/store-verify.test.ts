// DAGStore.verifyShard: the shard's bytes hashed block by block and compared with the stored
// full index and top-level entries; `repair` rewrites the indices of sound data. Real LevelDB
// and index files in a temp dir; damage is done behind the store, between two runs of it.
import * as assert from 'uvu/assert'
import { copyFile, rm, stat, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { sha256 } from 'multiformats/hashes/sha2'
import type { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { FsIndexRepo } from '../src/storage/index/fs-repo.js'
import { LevelTopLevelIndex } from '../src/storage/index/level-top-level.js'
import type { IndexEntry, ShardIndex } from '../src/base/index-types.js'
import { carBlocks, fixture, flipBlockByte } from './helpers/fixtures.js'
import { codeOf } from './helpers/assert.js'
import { dirSuite, openStore } from './helpers/store.js'

const test = dirSuite('verifyShard')

/** A copy of sample-v1.car in `dir`, so it can be damaged. */
async function sampleCopy (dir: string): Promise<string> {
  const path = join(dir, 'sample.car')
  await copyFile(fixture('sample-v1.car'), path)
  return path
}

function indexOf (entries: IndexEntry[]): ShardIndex {
  const byHex = new Map(entries.map((e) => [Buffer.from(e.multihash).toString('hex'), e.offset]))
  return {
    size: entries.length,
    get: (mh) => byHex.get(Buffer.from(mh).toString('hex')),
    [Symbol.iterator]: () => entries[Symbol.iterator]()
  }
}

test('a healthy shard verifies ok, with its block count', async ({ dir }) => {
  const { store } = await openStore(dir)
  try {
    await store.register('a', new FileMount(await sampleCopy(dir)))
    const blocks = (await store.getIterableIndex('a')).size
    assert.equal(await store.verifyShard('a'), { key: 'a', ok: true, blocks, problems: [], repaired: false })
    // The shard was released: it can be destroyed.
    assert.equal(store.getShardInfo('a'), { state: 'available', refs: 0 })
    await store.destroy('a')
  } finally {
    await store.close()
  }
})

test('a block whose data does not hash to its CID: ERR_HASH_MISMATCH naming the CID and byte, not repairable', async ({ dir }) => {
  const { store } = await openStore(dir)
  try {
    const path = await sampleCopy(dir)
    await store.register('a', new FileMount(path))
    const before = [...await store.getIterableIndex('a')]
    const { cid } = await flipBlockByte(path)
    for (const repair of [false, true]) {
      const report = await store.verifyShard('a', { repair })
      assert.equal([report.ok, report.blocks, report.repaired], [false, 0, false], `repair ${String(repair)}`)
      assert.equal(report.problems.map((p) => p.code), ['ERR_HASH_MISMATCH'])
      assert.match(report.problems[0]?.message ?? '', new RegExp(`block hash mismatch for ${cid} at byte \\d+$`))
    }
    // The indices of bad data are left alone, and the shard keeps its state.
    assert.equal([...await store.getIterableIndex('a')], before)
    assert.is(store.getShardInfo('a').state, 'available')
  } finally {
    await store.close()
  }
})

test('a CAR cut short in a block: ERR_INVALID_CAR (damage to the structure, not to a block\'s bytes)', async ({ dir }) => {
  const { store } = await openStore(dir)
  try {
    const path = await sampleCopy(dir)
    await store.register('a', new FileMount(path))
    await truncate(path, (await stat(path)).size - 10)
    const report = await store.verifyShard('a')
    assert.equal([report.ok, report.problems.map((p) => p.code)], [false, ['ERR_INVALID_CAR']])
  } finally {
    await store.close()
  }
})

test('a deleted index file is reported (the acquire rebuilds it): the next verify is ok', async ({ dir }) => {
  const first = (await openStore(dir)).store
  await first.register('a', new FileMount(await sampleCopy(dir)))
  const blocks = (await first.getIterableIndex('a')).size
  await first.close()
  await rm(new FsIndexRepo(join(dir, 'index')).pathOf('a'))
  const { store } = await openStore(dir)
  try {
    const report = await store.verifyShard('a')
    assert.equal(report.problems.map((p) => p.code), ['ERR_INDEX_NOT_FOUND'])
    assert.equal([report.ok, report.blocks], [false, blocks])
    assert.equal(await store.verifyShard('a'), { key: 'a', ok: true, blocks, problems: [], repaired: false })
  } finally {
    await store.close()
  }
})

test('an altered full index: each wrong entry reported; repair rewrites it and the shard serves from it', async ({ dir }) => {
  const first = (await openStore(dir)).store
  await first.register('a', new FileMount(await sampleCopy(dir)))
  const good = [...await first.getIterableIndex('a')]
  await first.close()
  const [dropped, moved, ...rest] = good
  if (dropped === undefined || moved === undefined) throw new Error('sample-v1.car has blocks')
  const stranger = (await sha256.digest(new TextEncoder().encode('not in the shard'))).bytes
  const altered = [{ multihash: moved.multihash, offset: moved.offset + 1 }, ...rest, { multihash: stranger, offset: 0 }]
  const repo = new FsIndexRepo(join(dir, 'index'))
  await repo.drop('a')
  await repo.add('a', indexOf(altered))
  const { store } = await openStore(dir)
  try {
    const report = await store.verifyShard('a')
    assert.is(report.ok, false)
    assert.equal(report.problems.map((p) => p.code), ['ERR_INDEX_MISMATCH', 'ERR_INDEX_MISMATCH', 'ERR_INDEX_MISMATCH'])
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
    const messages = report.problems.map((p) => p.message).join('\n')
    assert.match(messages, `${hex(dropped.multihash)} at payload offset ${dropped.offset} is missing`)
    assert.match(messages, `${hex(moved.multihash)} is at payload offset ${moved.offset}, the full index says ${moved.offset + 1}`)
    assert.match(messages, `lists block ${hex(stranger)}`)
    const repaired = await store.verifyShard('a', { repair: true })
    assert.equal([repaired.ok, repaired.repaired, repaired.problems.length], [false, true, 3])
    assert.equal(await store.verifyShard('a'), { key: 'a', ok: true, blocks: good.length, problems: [], repaired: false })
    assert.equal([...await store.getIterableIndex('a')], good)
    assert.equal(await store.shardsContainingMultihash(stranger), [])
    // A block the altered index had lost is served again.
    const block = (await carBlocks('sample-v1.car')).find((b) => hex(b.cid.multihash.bytes) === hex(dropped.multihash))
    if (block === undefined) throw new Error('the dropped entry is a block of sample-v1.car')
    const acc = await store.acquire('a')
    try {
      assert.equal(Uint8Array.from(await acc.blockstore().get(block.cid)), Uint8Array.from(block.bytes))
    } finally {
      await acc.close()
    }
  } finally {
    await store.close()
  }
})

test('an index file replaced while the store runs (the store holds it in memory): verify reads the file, repair rewrites it', async ({ dir }) => {
  const { store } = await openStore(dir)
  try {
    await store.register('a', new FileMount(await sampleCopy(dir)))
    const good = [...await store.getIterableIndex('a')]
    const [first, ...rest] = good
    if (first === undefined) throw new Error('sample-v1.car has blocks')
    const behind = new FsIndexRepo(join(dir, 'index'))
    await behind.add('a', indexOf([{ multihash: first.multihash, offset: first.offset + 7 }, ...rest]))
    const report = await store.verifyShard('a')
    assert.equal([report.ok, report.problems.map((p) => p.code)], [false, ['ERR_INDEX_MISMATCH']])
    assert.match(report.problems[0]?.message ?? '', `the full index says ${first.offset + 7}`)
    const repaired = await store.verifyShard('a', { repair: true })
    assert.equal([repaired.ok, repaired.repaired], [false, true])
    assert.equal(await store.verifyShard('a'), { key: 'a', ok: true, blocks: good.length, problems: [], repaired: false })
    // The file itself holds the data's index again, as a repo without a cache reads it.
    assert.equal([...await new FsIndexRepo(join(dir, 'index')).get('a')], good)
    // A file deleted while the store runs (and still holds the index): seen, and written back.
    await rm(behind.pathOf('a'))
    const gone = await store.verifyShard('a', { repair: true })
    assert.equal([gone.ok, gone.repaired, gone.problems.map((p) => p.code)], [false, true, ['ERR_INDEX_NOT_FOUND']])
    assert.equal([...await new FsIndexRepo(join(dir, 'index')).get('a')], good)
  } finally {
    await store.close()
  }
})

/**
 * A store over a state DB the test holds too (so it can reach the top-level index behind the
 * store's back), with shard 'a' registered over a copy of sample-v1.car.
 */
async function withSharedState (dir: string, fn: (store: DAGStore, tli: LevelTopLevelIndex, index: IndexEntry[]) => Promise<void>): Promise<void> {
  const db = new Level(join(dir, 'own-state'))
  const tli = new LevelTopLevelIndex(db as never)
  const { store } = await openStore(dir, { datastore: db as never })
  try {
    await store.register('a', new FileMount(await sampleCopy(dir)))
    await fn(store, tli, [...await store.getIterableIndex('a')])
  } finally {
    await store.close()
    await db.close()
  }
}

test('top-level entries removed behind the store: reported per block; repair writes them back', async ({ dir }) => {
  await withSharedState(dir, async (store, tli, index) => {
    const lost = index.slice(0, 3).map((e) => e.multihash)
    await tli.removeShard('a', lost)
    const report = await store.verifyShard('a')
    assert.equal(report.problems.map((p) => p.code), ['ERR_TOP_LEVEL_MISSING', 'ERR_TOP_LEVEL_MISSING', 'ERR_TOP_LEVEL_MISSING'])
    assert.is(report.ok, false)
    assert.is((await store.verifyShard('a', { repair: true })).repaired, true)
    for (const mh of lost) assert.equal(await store.shardsContainingMultihash(mh), ['a'])
    assert.is((await store.verifyShard('a')).ok, true)
  })
})

test('many missing entries: ten listed, then a count of the rest', async ({ dir }) => {
  await withSharedState(dir, async (store, tli, index) => {
    await tli.removeShard('a')
    const report = await store.verifyShard('a')
    assert.is(report.problems.length, 11)
    assert.is(report.problems[10]?.message, `${index.length - 10} more of this kind (${index.length} in all)`)
  })
})

test('an unknown key is ShardUnknownError; an errored shard is a problem in its report', async ({ dir }) => {
  const { store } = await openStore(dir)
  try {
    assert.is(await codeOf(store.verifyShard('nope')), 'ERR_SHARD_UNKNOWN')
    const path = join(dir, 'gone.car')
    await copyFile(fixture('sample-v1.car'), path)
    await store.register('gone', new FileMount(path))
    await rm(path)
    const report = await store.verifyShard('gone')
    assert.is(report.ok, false)
    assert.is(report.problems.length, 1)
    assert.is(store.getShardInfo('gone').state, 'errored')
  } finally {
    await store.close()
  }
})

test.run()
