// Destroy leaves nothing behind, whatever the shard's work is doing when it arrives, and a
// shard registered again under the same key never meets anything of the old one.
import * as assert from 'uvu/assert'
import { FileMount } from '../src/storage/mount/file.js'
import { fixture } from './helpers/fixtures.js'
import { openStore, dirSuite } from './helpers/store.js'
import { codeOf } from './helpers/assert.js'

const test = dirSuite('destroy')

test('a destroy right behind the register resolves (the aborted job does not wait for the destroy\'s own barrier)', async (ctx) => {
  const { store } = await openStore(ctx.dir)
  try {
    for (let i = 0; i < 20; i++) {
      const registered = codeOf(store.register('k', new FileMount(fixture('sample-v1.car'))))
      await store.destroy('k')
      assert.is(await registered, 'ERR_SHARD_UNKNOWN')
    }
  } finally {
    await store.close()
  }
})

test.run()
