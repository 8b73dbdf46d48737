// Destroy leaves nothing behind, whatever the shard's work is doing when it arrives, and a
// shard registered again under the same key never meets anything of the old one.
import * as assert from 'uvu/assert'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { HttpMount } from '../src/storage/mount/http.js'
import { FileMount } from '../src/storage/mount/file.js'
import { fixture } from './helpers/fixtures.js'
import { serve, type Handler } from './helpers/http-server.js'
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

test('no transient outlives its destroy: downloads failing, finishing or in flight (200 tries)', async (ctx) => {
  const sample = await readFile(fixture('sample-v1.car'))
  const junk = await readFile(fixture('junk.dat'))
  // Whole bodies that are not CARs, bodies cut short, and good bodies sent in pieces.
  const handlers: Handler[] = [
    (req, res) => {
      res.writeHead(200, { 'content-length': junk.byteLength })
      res.end(req.method === 'HEAD' ? undefined : junk)
    },
    (req, res) => {
      res.writeHead(200, { 'content-length': sample.byteLength })
      if (req.method === 'HEAD') { res.end(); return }
      res.write(sample.subarray(0, 100_000), () => { req.socket.destroy() })
    },
    (req, res) => {
      res.writeHead(200, { 'content-length': sample.byteLength })
      if (req.method === 'HEAD') { res.end(); return }
      let sent = 0
      const more = (): void => {
        if (res.destroyed) return
        const next = Math.min(sample.byteLength, sent + 64 * 1024)
        res.write(sample.subarray(sent, next))
        sent = next
        if (sent === sample.byteLength) res.end()
        else setImmediate(more)
      }
      more()
    }
  ]
  const srv = await serve((req, res, n) => { (handlers[Number(new URL(req.url ?? '/', 'http://x').searchParams.get('h'))] ?? handlers[0] as Handler)(req, res, n) })
  const { store } = await openStore(ctx.dir)
  const transients = join(ctx.dir, 'transients')
  try {
    for (let i = 0; i < 200; i++) {
      const key = `k${i % 4}`
      const url = `${srv.url}?h=${i % handlers.length}`
      const registered = store.register(key, new HttpMount(url, { retries: 0 })).catch(() => {})
      // Destroy at a spread of moments: at once, a little later, or once the register settled.
      const when = Math.floor(i / handlers.length) % 3
      if (when === 1) await new Promise((resolve) => setTimeout(resolve, i % 7))
      else if (when === 2) await registered
      await store.destroy(key)
      await registered
      assert.equal(await readdir(transients), [], `try ${i}: the transients folder is empty once destroy resolved`)
    }
  } finally {
    await store.close()
    await srv.close()
  }
})

test.run()
