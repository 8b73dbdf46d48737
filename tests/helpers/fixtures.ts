import { fileURLToPath } from 'node:url'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CarReader } from '@ipld/car/reader'
import { CarIndexer } from '@ipld/car/indexer'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'

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

/** Every block of a fixture CAR, in order, as @ipld/car reads it. */
export async function carBlocks (name: string): Promise<Array<{ cid: CID, bytes: Uint8Array }>> {
  const reader = await CarReader.fromBytes(await readFile(fixture(name)))
  const blocks = []
  for await (const b of reader.blocks()) blocks.push(b)
  return blocks
}

/** A raw sha2-256 CID that no fixture holds. */
export const unknownCid = CID.createV1(0x55, Digest.create(0x12, createHash('sha256').update('not in any shard').digest()))

/**
 * Flips one data byte of a block in the middle of the CAR at `path` (identity and empty blocks
 * skipped): that block no longer hashes to its CID. Its CID and section offset.
 */
export async function flipBlockByte (path: string): Promise<{ cid: string, offset: number }> {
  const bytes = await readFile(path)
  const entries = []
  for await (const e of await CarIndexer.fromBytes(bytes)) if (e.blockLength > 0 && e.cid.multihash.code !== 0) entries.push(e)
  const e = entries[Math.floor(entries.length / 2)]
  if (e === undefined) throw new Error(`${path} has no block to damage`)
  const at = e.blockOffset + Math.floor(e.blockLength / 2)
  bytes[at] = (bytes[at] as number) ^ 0x01
  await writeFile(path, bytes)
  return { cid: e.cid.toString(), offset: e.offset }
}
