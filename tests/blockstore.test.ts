import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { CID } from 'multiformats/cid'
import { carBlocks, fixture, unknownCid } from './helpers/fixtures.js'
import { bytesReader, openTestReader, u8 } from './helpers/file-reader.js'
import type { TestReader } from './helpers/file-reader.js'
import { ShardBlockstore } from '../src/engine/accessor/blockstore.js'
import { indexCar } from '../src/format/car/indexer.js'
import { readCarLayout } from '../src/format/car/layout.js'
import { SortedIndexBuilder } from '../src/format/index/sorted-index.js'
import { BlockNotFoundError } from '../src/base/errors.js'
import type { ShardIndex } from '../src/base/index-types.js'
import { at, rejectsWith } from './helpers/assert.js'
import { openFileReader } from '../src/storage/transients/file-reader.js'
import type { MountReader } from '../src/base/mount-types.js'

interface Opened { reader: TestReader, bs: ShardBlockstore, index: ShardIndex, payloadOffset: number, payloadSize: number | undefined }

async function openShard (name: string, options: { random?: boolean, headReadSize?: number } = {}): Promise<Opened> {
  const reader = await openTestReader(fixture(name), { random: options.random, chunkSize: 8192 })
  const layout = await readCarLayout(reader)
  const { index } = await indexCar(reader.stream())
  const bs = new ShardBlockstore({
    reader,
    index,
    payloadOffset: layout.payloadOffset,
    payloadSize: layout.payloadSize,
    headReadSize: options.headReadSize
  })
  return { reader, bs, index, payloadOffset: layout.payloadOffset, payloadSize: layout.payloadSize }
}

const bs = suite('ShardBlockstore')

bs('a reader that answers now (a local file in the page cache) serves every get without read()', async () => {
  const expected = await carBlocks('sample-v1.car')
  const file = await openFileReader(fixture('sample-v1.car'))
  try {
    const layout = await readCarLayout(file)
    const { index } = await indexCar(file.stream())
    let now = 0
    let later = 0
    const reader: MountReader = {
      size: file.size,
      stream: (start) => file.stream(start),
      close: async () => {},
      read: async (position, length) => { later++; return await (file.read as NonNullable<MountReader['read']>)(position, length) },
      readNow: (position, length) => { now++; return file.readNow?.(position, length) }
    }
    const store = new ShardBlockstore({ reader, index, payloadOffset: layout.payloadOffset, payloadSize: layout.payloadSize })
    for (const { cid, bytes } of expected) assert.equal(u8(await store.get(cid)), u8(bytes), cid.toString())
    assert.ok(now > 0, 'gets read through readNow')
    // A loaded machine may make the file reader stop answering now (slow reads): read() then serves.
    assert.ok(now + later >= expected.length - 6, `every non-identity get read the file (${now} now, ${later} later)`)
  } finally {
    await file.close()
  }
})

for (const name of ['sample-v1.car', 'sample-wrapped-v2.car', 'sample-v2-indexless.car']) {
  bs(`${name}: every block byte-identical to CarReader via get/has/getSize`, async () => {
    const expected = await carBlocks(name)
    assert.is(expected.length, 1049)
    const { reader, bs: store } = await openShard(name)
    try {
      let identity = 0
      for (const { cid, bytes } of expected) {
        if (cid.multihash.code === 0) identity++
        assert.ok(await store.has(cid), cid.toString())
        assert.equal(u8(await store.get(cid)), u8(bytes), cid.toString())
        assert.is(await store.getSize(cid), bytes.length)
      }
      assert.is(identity, 6, 'the fixture has identity CIDs, served from the CID')
    } finally {
      await reader.close()
    }
  })

  bs(`${name}: allKeys equals CarReader's order`, async () => {
    const expected = (await carBlocks(name)).map(({ cid }) => cid.toString())
    for (const random of [true, false]) {
      const { reader, bs: store } = await openShard(name, { random })
      try {
        const keys: string[] = []
        for await (const cid of store.allKeys()) keys.push(cid.toString())
        assert.equal(keys, expected)
      } finally {
        await reader.close()
      }
    }
  })
}

bs('unknown CID → ERR_NOT_FOUND naming the CID; has is false', async () => {
  const { reader, bs: store } = await openShard('sample-v1.car')
  try {
    assert.is(await store.has(unknownCid), false)
    for (const op of [store.get(unknownCid), store.getSize(unknownCid)]) {
      await rejectsWith(op, (err) => {
        assert.instance(err, BlockNotFoundError)
        assert.is(err.code, 'ERR_NOT_FOUND')
        assert.ok(err.message.includes(unknownCid.toString()))
      })
    }
  } finally {
    await reader.close()
  }
})

bs('lookups match by multihash: any codec finds the block', async () => {
  const blocks = await carBlocks('sample-v1.car')
  const { reader, bs: store } = await openShard('sample-v1.car')
  try {
    const b = blocks.find((x) => x.cid.multihash.code !== 0 && x.bytes.length > 100)
    assert.ok(b !== undefined)
    const other = CID.createV1(0x55, b.cid.multihash)
    assert.ok(await store.has(other))
    assert.equal(u8(await store.get(other)), u8(b.bytes))
  } finally {
    await reader.close()
  }
})

bs('small blocks cost one read; a tiny head read still returns the right bytes', async () => {
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const { reader, bs: store } = await openShard('sample-v1.car')
  try {
    for (const b of blocks) {
      if (b.bytes.length > 3000) continue
      const before = reader.reads
      await store.get(b.cid)
      assert.is(reader.reads - before, 1, `one read for a ${b.bytes.length}-byte block`)
      const sizeBefore = reader.reads
      await store.getSize(b.cid)
      assert.is(reader.reads - sizeBefore, 1)
    }
  } finally {
    await reader.close()
  }
  for (const headReadSize of [1, 16, 40, 100]) {
    const { reader: r, bs: small } = await openShard('sample-wrapped-v2.car', { headReadSize })
    try {
      for (const b of blocks.slice(0, 200)) assert.equal(u8(await small.get(b.cid)), u8(b.bytes))
    } finally {
      await r.close()
    }
  }
})

bs('a reader without positional reads still serves blocks', async () => {
  const blocks = await carBlocks('sample-wrapped-v2.car')
  const { reader, bs: store } = await openShard('sample-wrapped-v2.car', { random: false })
  try {
    for (const b of blocks.slice(0, 50)) assert.equal(u8(await store.get(b.cid)), u8(b.bytes))
  } finally {
    await reader.close()
  }
})

bs('an index that does not match the bytes is detected, not served', async () => {
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const { reader, index } = await openShard('sample-v1.car')
  try {
    const wrong = new SortedIndexBuilder()
    wrong.add(at(blocks, 3).cid.multihash.bytes, index.get(at(blocks, 4).cid.multihash.bytes) as number)
    const store = new ShardBlockstore({ reader, index: wrong.build(), payloadOffset: 0 })
    await rejectsWith(store.get(at(blocks, 3).cid), (err) => {
      assert.is(err.code, 'ERR_INVALID_CAR')
      assert.match(err.message, /different block/)
    })
  } finally {
    await reader.close()
  }
})

bs('a truncated shard fails with ERR_INVALID_CAR and an offset', async () => {
  const bytes = await readFile(fixture('sample-v1.car'))
  const blocks = (await carBlocks('sample-v1.car')).filter((b) => b.cid.multihash.code !== 0)
  const { index } = await indexCar(bytesReader(bytes).stream())
  const last = blocks.reduce((a, b) => (index.get(a.cid.multihash.bytes) as number) > (index.get(b.cid.multihash.bytes) as number) ? a : b)
  const cut = bytes.subarray(0, bytes.length - 10)
  const store = new ShardBlockstore({ reader: bytesReader(cut), index, payloadOffset: 0, headReadSize: 64 })
  await rejectsWith(store.get(last.cid), (err) => {
    assert.is(err.code, 'ERR_INVALID_CAR')
    assert.match(err.message, /at byte \d+/)
  })
})

bs('allKeys over a truncated shard yields the CIDs before the cut, then ERR_INVALID_CAR', async () => {
  const bytes = await readFile(fixture('sample-v1.car'))
  const expected = (await carBlocks('sample-v1.car')).map(({ cid }) => cid.toString())
  const cut = bytes.subarray(0, bytes.length - 10)
  const { index } = await indexCar(bytesReader(bytes).stream())
  const store = new ShardBlockstore({ reader: bytesReader(cut, { chunkSize: 1 << 20 }), index, payloadOffset: 0 })
  const keys: string[] = []
  await rejectsWith((async () => { for await (const cid of store.allKeys()) keys.push(cid.toString()) })(), (err) => {
    assert.is(err.code, 'ERR_INVALID_CAR')
    assert.match(err.message, /truncated section .*at byte \d+/)
  })
  // The cut section's CID may come out before its data is found missing.
  assert.ok(keys.length >= expected.length - 1)
  assert.equal(keys, expected.slice(0, keys.length))
})

bs.run()
