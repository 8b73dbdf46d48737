import { join } from 'node:path'
import { Level } from 'level'
import { MemoryLevel } from 'memory-level'
import { LevelTopLevelIndex } from '../src/storage/index/level-top-level.js'
import { topLevelIndexConformance } from './conformance/top-level-index.js'
import { tempDir } from './helpers/fixtures.js'

topLevelIndexConformance('LevelTopLevelIndex (LevelDB on disk)', async () => {
  const { dir, cleanup } = await tempDir()
  const db = new Level(join(dir, 'db'))
  await db.open()
  return { index: new LevelTopLevelIndex(db as never), cleanup: async () => { await db.close(); await cleanup() } }
})

topLevelIndexConformance('LevelTopLevelIndex (MemoryLevel)', async () => {
  const db = new MemoryLevel()
  await db.open()
  return { index: new LevelTopLevelIndex(db as never), cleanup: async () => { await db.close() } }
})
