import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { ESLint } from 'eslint'

// The repo's own eslint.config.js, run on made-up modules placed (by name only) inside src/.
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const eslint = new ESLint({ cwd: ROOT })

async function boundaryErrors (file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) })
  assert.ok(result !== undefined, 'one result per text')
  return result.messages.filter((m) => m.ruleId === 'boundaries/dependencies').map((m) => m.message)
}

test('a module may not import from a higher layer', async () => {
  const errors = await boundaryErrors('src/format/probe.ts', "import { DAGStore } from '../engine/store.js'\nexport const probe = DAGStore\n")
  assert.is(errors.length, 1, errors.join('\n'))
  assert.match(errors[0] ?? '', /^layer format may not import src\/engine: layers import only downward/)
})

test('a folder may not import a folder listed after it in the same layer (no folder cycles)', async () => {
  const errors = await boundaryErrors('src/engine/shard/probe.ts', "import { EventLoop } from '../loop/loop.js'\nexport const probe = EventLoop\n")
  assert.is(errors.length, 1, errors.join('\n'))
  assert.match(errors[0] ?? '', /^src\/engine\/shard may not import src\/engine\/loop: a folder imports only from itself and the folders listed before it/)
})

test('imports from the own folder, lower folders and lower layers pass; the entry may import anything', async () => {
  const lawful = [
    "import { Shard } from '../shard/shard.js'",
    "import { EventBuffer } from '../observe/event-buffer.js'",
    "import { mountOf } from './core.js'",
    "import { MountRegistry } from '../../storage/mount/registry.js'",
    "import { validateKey } from '../../base/keys.js'"
  ]
  assert.equal(await boundaryErrors('src/engine/loop/probe.ts', lawful.join('\n') + '\nexport const probe = [Shard, EventBuffer, mountOf, MountRegistry, validateKey]\n'), [])
  assert.equal(await boundaryErrors('src/probe.ts', "import { startServer } from './app/server/index.js'\nexport const probe = startServer\n"), [])
})

test('an entry file inside a layer (dagstore/format) gathers its own layer, not a higher one', async () => {
  const own = "export { indexCar } from './car/indexer.js'\nexport { SortedIndex } from './index/sorted-index.js'\n"
  assert.equal(await boundaryErrors('src/format/api.ts', own), [])
  const errors = await boundaryErrors('src/format/api.ts', own + "export { DAGStore } from '../engine/store.js'\n")
  assert.is(errors.length, 1, errors.join('\n'))
  assert.match(errors[0] ?? '', /^layer format may not import src\/engine/)
})

test.run()
