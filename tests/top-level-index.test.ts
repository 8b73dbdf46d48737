import { join } from 'node:path'
import { Level } from 'level'
import { MemoryLevel } from 'memory-level'
import { LevelTopLevelIndex } from '../src/storage/index/level-top-level.js'
import { topLevelIndexConformance, type TopLevelIndexUnderTest } from '../src/testing/index.js'
import { runConformance } from './helpers/conformance.js'
import { tempDir } from './helpers/fixtures.js'

function conformance (name: string, make: () => Promise<TopLevelIndexUnderTest>): void {
  runConformance(`TopLevelIndex conformance: ${name}`, (test) => { topLevelIndexConformance(test, make) })
}

conformance('LevelTopLevelIndex (LevelDB on disk)', async () => {
  const { dir, cleanup } = await tempDir()
  const db = new Level(join(dir, 'db'))
  await db.open()
  return { index: new LevelTopLevelIndex(db as never), cleanup: async () => { await db.close(); await cleanup() } }
})

conformance('LevelTopLevelIndex (MemoryLevel)', async () => {
  const db = new MemoryLevel()
  await db.open()
  return { index: new LevelTopLevelIndex(db as never), cleanup: async () => { await db.close() } }
})
