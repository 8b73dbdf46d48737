import { join } from 'node:path'
import { FsIndexRepo } from '../src/storage/index/fs-repo.js'
import { MemoryIndexRepo } from '../src/storage/index/memory-repo.js'
import { fullIndexRepoConformance, type RepoUnderTest } from '../src/testing/index.js'
import { runConformance } from './helpers/conformance.js'
import { tempDir } from './helpers/fixtures.js'

function conformance (name: string, make: () => Promise<RepoUnderTest>): void {
  runConformance(`${name}: FullIndexRepo conformance`, (test) => { fullIndexRepoConformance(test, make) })
}

conformance('MemoryIndexRepo', async () => ({ repo: new MemoryIndexRepo(), cleanup: async () => {} }))

conformance('FsIndexRepo', async () => {
  const { dir, cleanup } = await tempDir()
  return { repo: new FsIndexRepo(join(dir, 'index')), cleanup }
})

conformance('FsIndexRepo (no cache)', async () => {
  const { dir, cleanup } = await tempDir()
  return { repo: new FsIndexRepo(join(dir, 'index'), { cacheBytes: 0 }), cleanup }
})
