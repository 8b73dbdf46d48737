/**
 * Peers several benches measure against, and the load note they print: one definition each so
 * every bench compares with the same thing.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs'
import { loadavg } from 'node:os'
import { CarIndexer } from '@ipld/car/indexer'

/** The 1/5/15-minute load averages, for the notes a bench prints at its start and end. */
export function load (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

/** Reads the whole file in 1 MiB chunks; returns the bytes read. */
export function rawRead (path: string): number {
  const fd = openSync(path, 'r')
  const buf = Buffer.allocUnsafe(1024 * 1024)
  let total = 0
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      total += n
    }
  } finally {
    closeSync(fd)
  }
  return total
}

/** A plain @ipld/car CarIndexer loop over a file stream; returns the blocks seen. */
export async function carIndexer (path: string): Promise<number> {
  let n = 0
  for await (const entry of await CarIndexer.fromIterable(createReadStream(path, { highWaterMark: 1024 * 1024 }))) {
    if (entry.blockLength >= 0) n++
  }
  return n
}
