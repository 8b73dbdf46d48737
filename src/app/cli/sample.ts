/**
 * The sample CAR `npm start` serves. It is the repo's test fixture, shipped in the npm
 * package too (package.json `files`), so a fresh checkout and an installed package find it
 * at the same place relative to this module: <package>/tests/fixtures/sample-v1.car.
 */
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { CID } from 'multiformats/cid'
import type { DAGStore } from '../../engine/store.js'
import { FileMount } from '../../storage/mount/file.js'
import { ShardUnknownError } from '../../base/errors.js'

const SAMPLE_CAR = fileURLToPath(new URL('../../../../tests/fixtures/sample-v1.car', import.meta.url))
const SAMPLE_KEY = 'sample-v1'

export interface SampleResult {
  key: string
  /** What happened this time: registered, recovered or already there. */
  action: 'registered' | 'recovered' | 'present'
  blocks: number | undefined
  /** One block to show: the first in the CAR (for this sample, its root). */
  cid: CID
}

/**
 * Registers the sample unless a shard of that key already mounts it; idempotent, so every
 * `npm start` after the first finds it restored from LevelDB.
 */
export async function ensureSample (store: DAGStore, path = SAMPLE_CAR): Promise<SampleResult> {
  const url = pathToFileURL(path).href
  let action: SampleResult['action'] = 'present'
  let current = await store.describeShard(SAMPLE_KEY).catch((err: unknown) => {
    if (err instanceof ShardUnknownError) return undefined
    throw err
  })
  if (current !== undefined && current.url !== url) {
    // The checkout moved: the old shard points at a file that may be gone.
    await store.destroy(SAMPLE_KEY)
    current = undefined
  }
  if (current === undefined) {
    await store.register(SAMPLE_KEY, new FileMount(path))
    action = 'registered'
  } else if (current.state === 'errored') {
    await store.recover(SAMPLE_KEY)
    action = 'recovered'
  }
  const accessor = await store.acquire(SAMPLE_KEY)
  let cid: CID | undefined
  try {
    for await (const c of accessor.blockstore().allKeys()) {
      cid = c
      break
    }
  } finally {
    await accessor.close()
  }
  if (cid === undefined) throw new Error(`${path} holds no blocks`)
  const blocks = (await store.describeShard(SAMPLE_KEY)).blocks
  return { key: SAMPLE_KEY, action, blocks, cid }
}
