// The ReadBlockstore conformance suite over every ReadBlockstore the store hands out — a shard
// accessor's and the all-shards one — and over the interface-blockstore adapter wrapping each.
// These blockstores come from a real store (LevelDB and index files in a temp dir) serving a
// CAR file through a FileMount. The accessor's blockstore also runs alone over a reader
// without positional reads, the path a stream-only mount takes.
import * as assert from 'uvu/assert'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FileMount } from '../src/storage/mount/file.js'
import { toInterfaceBlockstore } from '../src/read/adapter.js'
import { interfaceBlockstoreReadConformance, readBlockstoreConformance, type CarCase, type Opened } from '../src/testing/index.js'
import type { ReadBlockstore } from '../src/base/types.js'
import type { DAGStore } from '../src/engine/store.js'
import { runConformance } from './helpers/conformance.js'
import { fixture, tempDir } from './helpers/fixtures.js'
import { openStore } from './helpers/store.js'
import { shardBlockstoreOver } from './helpers/shard-blockstore.js'

// A CARv1 and the same payload inside a CARv2 (blocks read at an offset into the file).
const carCase = async (name: string): Promise<CarCase> => ({ name, bytes: await readFile(fixture(name)) })
const [v1, v2] = await Promise.all([carCase('sample-v1.car'), carCase('sample-wrapped-v2.car')])

/** A started store with `car` registered as shard 'shard'; `close` stops it and removes everything. */
async function storeWith (car: Uint8Array): Promise<{ store: DAGStore, close: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir()
  const path = join(dir, 'shard.car')
  await writeFile(path, car)
  const { store, reported } = await openStore(join(dir, 'store'))
  await store.register('shard', new FileMount(path))
  return {
    store,
    close: async () => {
      await store.close()
      await cleanup()
      assert.equal(reported, [], 'nothing reported by the store')
    }
  }
}

async function accessorBlockstore (car: Uint8Array): Promise<Opened<ReadBlockstore>> {
  const { store, close } = await storeWith(car)
  const accessor = await store.acquire('shard')
  return { blockstore: accessor.blockstore(), close: async () => { await accessor.close(); await close() } }
}

async function allShardsBlockstore (car: Uint8Array): Promise<Opened<ReadBlockstore>> {
  const { store, close } = await storeWith(car)
  const blockstore = store.blockstore()
  return { blockstore, close: async () => { await blockstore.close(); await close() } }
}

runConformance('ReadBlockstore conformance: shard accessor', (test) => {
  readBlockstoreConformance(test, { open: accessorBlockstore, cars: [v1, v2] })
})

runConformance('ReadBlockstore conformance: all-shards blockstore', (test) => {
  readBlockstoreConformance(test, { open: allShardsBlockstore, cars: [v1, v2] })
})

runConformance('ReadBlockstore conformance: shard blockstore over a stream-only reader', (test) => {
  readBlockstoreConformance(test, { open: async (car) => await shardBlockstoreOver(car, { random: false, chunkSize: 1000 }), cars: [v1, v2] })
})

for (const [name, open] of [['shard accessor', accessorBlockstore], ['all-shards blockstore', allShardsBlockstore]] as const) {
  runConformance(`interface-blockstore read conformance: adapter over the ${name}`, (test) => {
    interfaceBlockstoreReadConformance(test, {
      open: async (car) => {
        const opened = await open(car)
        return { blockstore: toInterfaceBlockstore(opened.blockstore), close: opened.close }
      }
      // The suite's own CARs only: the adapter passes reads through, and tests/adapter.test.ts
      // reads every block of sample-v1.car through it.
    })
  })
}
