#!/usr/bin/env node
/**
 * `npm start`: the store on its embedded default (LevelDB under ./.dagstore, no server).
 * Registers the CAR files given as arguments (default: the sample CAR shipped in the repo),
 * acquires each, reads its blocks by CID through the index, and prints what it served.
 * Run it twice: the second run restores the shards from LevelDB instead of re-registering.
 * (The full `dagstore` CLI and HTTP server replace this; see the README.)
 */
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { resolve } from 'node:path'
import { DAGStore, FileMount } from '../index.js'

const dir = resolve(process.env.DAGSTORE_DIR ?? '.dagstore')
const defaultCar = fileURLToPath(new URL('../../../tests/fixtures/sample-v1.car', import.meta.url))
const cars = process.argv.length > 2 ? process.argv.slice(2).map((p) => resolve(p)) : [defaultCar]

const store = new DAGStore({ dir })
await store.start()
console.log(`dagstore at ${dir}: ${store.allShardsInfo().size} shard(s) restored`)
try {
  for (const car of cars) {
    // A path is a fine key for a local demo; keys are opaque and never used as file names.
    const key = createHash('sha256').update(car).digest('hex').slice(0, 16)
    if (!store.allShardsInfo().has(key)) {
      await store.register(key, new FileMount(car))
      console.log(`registered ${car} as shard ${key}`)
    }
    const info = store.getShardInfo(key)
    if (info.state === 'errored') {
      console.log(`shard ${key} is errored (${info.error?.message ?? 'unknown'}); recovering`)
      await store.recover(key)
    }
    const accessor = await store.acquire(key)
    try {
      const blockstore = accessor.blockstore()
      let blocks = 0
      let bytes = 0
      let first: string | undefined
      for await (const cid of blockstore.allKeys()) {
        bytes += (await blockstore.get(cid)).length
        blocks++
        first ??= cid.toString()
      }
      console.log(`shard ${key}: ${blocks} blocks, ${bytes} bytes served by CID; first block ${first ?? '(none)'}`)
    } finally {
      await accessor.close()
    }
  }
  console.log('states:', JSON.stringify(store.stats()))
} finally {
  await store.close()
}
