#!/usr/bin/env node
// Runs every compiled uvu suite (dist/tests/**/*.test.js) and ends with the line CI reads:
// "N passed, N failed". uvu prints Total/Passed/Skipped; this translates it.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { stripVTControlCharacters } from 'node:util'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// An optional argument narrows the run (a regex on the file path); only *.test.js files ever run.
const filter = process.argv[2]
const pattern = filter === undefined ? '\\.test\\.js$' : `^(?=.*(?:${filter})).*\\.test\\.js$`
// --expose-gc: memory-bound tests measure what is live, not garbage a collection has not reached yet.
const child = spawn(process.execPath, ['--expose-gc', join(root, 'node_modules/uvu/bin.js'), join(root, 'dist/tests'), pattern],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
let out = ''
child.stdout.on('data', (chunk) => { out += chunk; process.stdout.write(chunk) })
child.on('close', (code) => {
  const plain = stripVTControlCharacters(out)
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? NaN)
  const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? NaN)
  const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0)
  if (Number.isNaN(total) || Number.isNaN(passed)) {
    console.log('0 passed, 1 failed')
    process.exit(code || 1)
  }
  // uvu's Total already leaves skipped tests out.
  const failed = total - passed
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
  process.exit(failed > 0 ? 1 : (code ?? 0))
})
