import { fileURLToPath } from 'node:url'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// Tests run from dist/tests/…; fixtures stay in the source tree so they are never copied.
const FIXTURES = fileURLToPath(new URL('../../../tests/fixtures/', import.meta.url))

export function fixture (name: string): string {
  return join(FIXTURES, name)
}

/** A fresh temp folder and its remover. */
export async function tempDir (prefix = 'dagstore-test-'): Promise<{ dir: string, cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}
