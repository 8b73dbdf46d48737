// The dagstore/testing subpath: resolvable through package.json "exports", the same suites the
// project runs, kept out of the root entry, and loadable without any devDependency.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, readdir } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { fileURLToPath } from 'node:url'
import * as local from '../src/testing/index.js'
import { at } from './helpers/assert.js'

const SUITES = ['mountConformance', 'readBlockstoreConformance', 'interfaceBlockstoreReadConformance', 'shardIndexConformance',
  'fullIndexRepoConformance', 'topLevelIndexConformance', 'stateStoreConformance']

// Through a variable: the package's own name resolves via its exports at run time only.
const importPackage = async (specifier: string): Promise<Record<string, unknown>> => await import(specifier) as Record<string, unknown>

test("'dagstore/testing' resolves to the suites the project runs", async () => {
  const pkg = await importPackage('dagstore/testing')
  for (const name of SUITES) {
    assert.type(pkg[name], 'function', name)
    assert.is(pkg[name], (local as Record<string, unknown>)[name], `${name} is the same function`)
  }
})

test('the root entry does not carry the suites', async () => {
  const root = await importPackage('dagstore')
  assert.type(root.DAGStore, 'function')
  for (const name of SUITES) assert.not.ok(name in root, name)
})

test('the testing entry imports only node built-ins and runtime dependencies', async () => {
  const packageJson = await readFile(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')
  const pkg = JSON.parse(packageJson) as { dependencies: Record<string, string> }
  const dir = new URL('../src/testing/', import.meta.url)
  const files = (await readdir(dir)).filter((f) => f.endsWith('.js'))
  assert.ok(files.includes('index.js'))
  const builtins = new Set(builtinModules)
  for (const file of files) {
    const code = await readFile(new URL(file, dir), 'utf8')
    for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)'([^']+)'/g)) {
      const specifier = at(m, 1)
      if (specifier.startsWith('.')) continue
      const bare = specifier.replace(/^node:/, '')
      const name = specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/')
      assert.ok(builtins.has(bare) || name in pkg.dependencies, `${file} imports ${specifier}, which a user of the package may not have`)
    }
  }
})

test.run()
