// The ShardIndex conformance suite over every index the store builds or reads: the in-memory
// sorted index, the go-car MultihashIndexSorted bytes decoded into one, and the view answering
// straight from those bytes, in memory and as FsIndexRepo reads it back from its file.
import { join } from 'node:path'
import { SortedIndexBuilder } from '../src/format/index/sorted-index.js'
import { decodeCarIndex, encodeMultihashIndexSorted } from '../src/format/index/multihash-index-sorted.js'
import { MultihashIndexSortedView } from '../src/format/index/index-view.js'
import { FsIndexRepo } from '../src/storage/index/fs-repo.js'
import { shardIndexConformance } from '../src/testing/index.js'
import type { IndexEntry, ShardIndex } from '../src/base/index-types.js'
import { runConformance } from './helpers/conformance.js'
import { tempDir } from './helpers/fixtures.js'

function sorted (entries: IndexEntry[]): ShardIndex {
  const builder = new SortedIndexBuilder()
  for (const { multihash, offset } of entries) builder.add(multihash, offset)
  return builder.build()
}

runConformance('ShardIndex conformance: SortedIndex (built in memory)', (test) => {
  shardIndexConformance(test, sorted)
})

runConformance('ShardIndex conformance: SortedIndex decoded from MultihashIndexSorted bytes', (test) => {
  shardIndexConformance(test, (entries) => decodeCarIndex(encodeMultihashIndexSorted(entries)))
})

runConformance('ShardIndex conformance: MultihashIndexSortedView over the bytes', (test) => {
  shardIndexConformance(test, (entries) => new MultihashIndexSortedView(encodeMultihashIndexSorted(entries)))
})

runConformance('ShardIndex conformance: MultihashIndexSortedView read back from an FsIndexRepo file', (test) => {
  shardIndexConformance(test, async (entries) => {
    const { dir, cleanup } = await tempDir()
    try {
      // No cache: the index comes from the file, not from the object added.
      const repo = new FsIndexRepo(join(dir, 'index'), { cacheBytes: 0 })
      await repo.add('shard', sorted(entries))
      const index = await repo.get('shard')
      if (!(index instanceof MultihashIndexSortedView)) throw new Error('FsIndexRepo no longer serves views: update this test')
      return index
    } finally {
      await cleanup()
    }
  })
})
