// Register a CAR file as a shard, acquire it and read a block by CID: the library in a few lines.
//
//   npm run build && node dist/examples/register-acquire.js [file.car]
//
// Without an argument it reads the sample CAR shipped with the package.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DAGStore, FileMount } from 'dagstore'

const car = process.argv[2] ?? fileURLToPath(new URL('../../tests/fixtures/sample-v1.car', import.meta.url))
const dir = await mkdtemp(join(tmpdir(), 'dagstore-example-'))
const store = new DAGStore({ dir }) // LevelDB state and on-disk indices under dir

try {
  await store.start()
  // Eager registration: the promise settles once the CAR is indexed and the shard available.
  await store.register('example', new FileMount(car))
  console.log(`registered ${car} as "example": ${store.getShardInfo('example').state}`)

  const accessor = await store.acquire('example') // ref-counted; reads come straight from the file
  try {
    const blocks = accessor.blockstore()
    let first
    let count = 0
    for await (const cid of blocks.allKeys()) {
      first ??= cid
      count++
    }
    if (first === undefined) throw new Error('the CAR holds no blocks')
    const bytes = await blocks.get(first)
    if (await blocks.getSize(first) !== bytes.length) throw new Error('getSize disagrees with get')
    console.log(`${count} blocks; the first is ${first.toString()}`)
    console.log(`read ${bytes.length} bytes, starting ${Buffer.from(bytes.subarray(0, 16)).toString('hex')}`)
    console.log(`shards holding it: ${(await store.shardsContainingCid(first)).join(', ')}`)
  } finally {
    await accessor.close() // releases exactly once
  }
  console.log(`after release: ${store.getShardInfo('example').state}, refs ${store.getShardInfo('example').refs}`)
} finally {
  await store.close()
  await rm(dir, { recursive: true, force: true })
}
