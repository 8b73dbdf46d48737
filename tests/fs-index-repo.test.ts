import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FsIndexRepo } from '../src/storage/index/fs-repo.js'
import { defaultShardIndexer } from '../src/format/car/indexer.js'
import { openFileReader } from '../src/storage/transients/file-reader.js'
import { fixture, tempDir } from './helpers/fixtures.js'

async function indexOf (name: string): Promise<Awaited<ReturnType<typeof defaultShardIndexer>>> {
  const reader = await openFileReader(fixture(name))
  try {
    return await defaultShardIndexer(name, reader, new AbortController().signal)
  } finally {
    await reader.close()
  }
}

test('the file written for sample-v1.car equals the index embedded in sample-wrapped-v2.car, byte for byte', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const repo = new FsIndexRepo(dir)
    await repo.add('sample', await indexOf('sample-v1.car'))
    const written = await readFile(repo.pathOf('sample'))
    const v2 = await readFile(fixture('sample-wrapped-v2.car'))
    const indexOffset = Number(v2.readBigUInt64LE(11 + 32))
    const embedded = v2.subarray(indexOffset)
    assert.is(written.length, 41_750)
    assert.ok(written.equals(embedded))
    assert.equal(await repo.stat('sample'), { exists: true, size: 1043 })
    // A fresh repo (no cache) decodes it back to the same entries.
    const again = await new FsIndexRepo(dir).get('sample')
    assert.is(again.size, 1043)
    assert.equal([...again].map((e) => e.offset), [...(await repo.get('sample'))].map((e) => e.offset))
  } finally {
    await cleanup()
  }
})

test('file names are hashes; keys() lists the keys back; a tampered key sidecar is ignored', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const repo = new FsIndexRepo(dir)
    const index = await indexOf('sample-v1.car')
    const keys = ['../../x', 'a/b', 'plain']
    for (const k of keys) await repo.add(k, index)
    for (const name of await readdir(dir)) assert.match(name, /^(\.version|[0-9a-f]{64}\.(full\.idx|key))$/)
    const listed: string[] = []
    for await (const k of repo.keys()) listed.push(k)
    assert.equal(listed.sort(), [...keys].sort())
    const sidecar = repo.pathOf('plain').replace(/\.full\.idx$/, '.key')
    await writeFile(sidecar, 'something else')
    const after: string[] = []
    for await (const k of new FsIndexRepo(dir).keys()) after.push(k)
    assert.equal(after.sort(), ['../../x', 'a/b'])
  } finally {
    await cleanup()
  }
})

test('keysExcept lists the keys of the indices not among the known ones (a start-up sweep\'s view)', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const repo = new FsIndexRepo(dir)
    assert.equal(await collect(repo.keysExcept(['a'])), [], 'an empty repo')
    const index = await indexOf('sample-v1.car')
    for (const key of ['a', 'b/../c', 'ünï', 'd']) await repo.add(key, index)
    assert.equal((await collect(repo.keysExcept(['a', 'd', 'not-indexed']))).sort(), ['b/../c', 'ünï'])
    assert.equal(await collect(repo.keysExcept(['a', 'b/../c', 'ünï', 'd'])), [])
    await repo.drop('ünï')
    assert.equal(await collect(repo.keysExcept([])), (await collect(repo.keys())))
  } finally {
    await cleanup()
  }
})

async function collect (it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = []
  for await (const key of it) out.push(key)
  return out
}

test('a repo written by an unknown format version is refused with a clear error', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    await writeFile(join(dir, '.version'), '9')
    await new FsIndexRepo(dir).stat('x').then(() => assert.unreachable(), (e: Error) => { assert.match(e.message, /version 9/) })
  } finally {
    await cleanup()
  }
})

test('drop takes effect at once, cache included, even against a concurrent get', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const repo = new FsIndexRepo(dir)
    await repo.add('k', await indexOf('sample-v1.car'))
    const fresh = new FsIndexRepo(dir)
    // Handled at once: the drop may win the race and make this get reject first.
    const reading = fresh.get('k').catch(() => undefined)
    assert.is(await fresh.drop('k'), true)
    await reading
    await fresh.get('k').then(
      () => assert.unreachable('dropped index served from cache'),
      (e: { code: string }) => { assert.is(e.code, 'ERR_INDEX_NOT_FOUND') })
    assert.is(await fresh.drop('k'), false)
  } finally {
    await cleanup()
  }
})

test('get with fromStorage reads the file under a cached index, and leaves the cache alone', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const repo = new FsIndexRepo(dir)
    const sample = await indexOf('sample-v1.car')
    await repo.add('k', sample)
    // Another writer replaces the file: this repo still has the old index in memory.
    const [one] = [...sample]
    if (one === undefined) throw new Error('sample-v1.car has blocks')
    await new FsIndexRepo(dir).add('k', { size: 1, get: () => one.offset, [Symbol.iterator]: () => [one][Symbol.iterator]() })
    assert.is((await repo.get('k')).size, sample.size)
    assert.equal([...await repo.get('k', { fromStorage: true })], [one])
    assert.is((await repo.get('k')).size, sample.size)
  } finally {
    await cleanup()
  }
})

test.run()
