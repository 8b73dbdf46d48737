import { fullIndexRepoConformance } from './conformance/full-index-repo.js'
import { join } from 'node:path'
import { FsIndexRepo } from '../src/storage/index/fs-repo.js'
import { tempDir } from './helpers/fixtures.js'
import { MemoryIndexRepo } from '../src/storage/index/memory-repo.js'

fullIndexRepoConformance('MemoryIndexRepo', async () => ({ repo: new MemoryIndexRepo(), cleanup: async () => {} }))

fullIndexRepoConformance('FsIndexRepo', async () => {
  const { dir, cleanup } = await tempDir()
  return { repo: new FsIndexRepo(join(dir, 'index')), cleanup }
})

fullIndexRepoConformance('FsIndexRepo (no cache)', async () => {
  const { dir, cleanup } = await tempDir()
  return { repo: new FsIndexRepo(join(dir, 'index'), { cacheBytes: 0 }), cleanup }
})
