// Keys are untrusted: hostile keys must work as opaque names and never reach a file path.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { StreamMount } from './helpers/stream-mount.js'
import { fixture, tempDir } from './helpers/fixtures.js'
import { openStore } from './helpers/store.js'

const hostile = ['../../etc/passwd', '/abs/path', 'a/b\\c', '..', '.', 'CON', 'x'.repeat(1024), '💥 unicode ✓', 'new\nline', '%2e%2e%2f']

test('hostile keys register, serve, persist and destroy; files stay inside the store folders', async () => {
  const { dir, cleanup } = await tempDir()
  try {
    const s1 = (await openStore(dir)).store
    for (const key of hostile) await s1.register(key, new StreamMount(fixture('sample-v1.car')))
    await s1.close()
    const s2 = (await openStore(dir)).store
    assert.equal([...s2.allShardsInfo().keys()].sort(), [...hostile].sort())
    for (const key of hostile) {
      const acc = await s2.acquire(key)
      await acc.close()
    }
    const top = (await readdir(dir)).sort()
    assert.equal(top, ['index', 'state', 'transients'])
    for (const name of await readdir(join(dir, 'transients'))) assert.match(name, /^[0-9a-f]{64}\.car$/)
    for (const name of await readdir(join(dir, 'index'))) assert.match(name, /^(\.version|[0-9a-f]{64}\.(full\.idx|key))$/)
    for (const key of hostile) await s2.destroy(key)
    assert.equal(await readdir(join(dir, 'transients')), [])
    await s2.close()
  } finally {
    await cleanup()
  }
})

test.run()
