// The database restarted under load (DESIGN §12): a `dagstore serve --db` process answers
// gateway and admin requests while the PostgreSQL server is stopped and started again.
// While it is down, requests that need it fail with an error (never a hang) and a register
// waits for its commit; once it is back, full service: every block, find, the register
// landed, and no shard lost or duplicated.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import pg from 'pg'
import { spawnServe, type Running } from './helpers/cli.js'
import { tempDir } from './helpers/fixtures.js'
import { encodeCar, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { serve as serveHttp } from './helpers/http-server.js'
import { rangeOrigin } from './helpers/range-origin.js'
import { postgresAvailable, postgresServer } from './helpers/postgres.js'

const TIMEOUT = 15_000

function car (seed: number, version: 1 | 2): { bytes: Uint8Array, blocks: Block[] } {
  const blocks = Array.from({ length: 10 }, (_, i) => makeBlock('raw', patterned(300 + 50 * i, seed * 100 + i)))
  return { bytes: encodeCar(blocks, { version }).bytes, blocks }
}

async function register (base: string, key: string, url: string): Promise<Response> {
  return await fetch(`${base}/shards`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key, url }),
    signal: AbortSignal.timeout(60_000)
  })
}

async function assertServed (base: string, blocks: Block[], label: string): Promise<void> {
  for (const block of blocks) {
    const res = await fetch(`${base}/ipfs/${block.cid.toString()}?format=raw`, { signal: AbortSignal.timeout(TIMEOUT) })
    const body = Buffer.from(await res.arrayBuffer())
    assert.is(res.status, 200, `${label}: ${block.cid.toString()} → ${res.status} ${body.toString()}`)
    assert.ok(body.equals(block.bytes), `${label}: byte-identical`)
  }
}

if (postgresAvailable('cluster database restart')) {
  const test = suite('cluster: the database restarted under load')

  test('errors while it is down, full service after; no shard lost or duplicated', async () => {
    const server = await postgresServer()
    const db = await server.freshDatabase('db_restart')
    const { dir, cleanup } = await tempDir()
    const local = car(1, 1)
    const remote = car(2, 2)
    const late = car(3, 1)
    const origin = await serveHttp(rangeOrigin({ body: remote.bytes, etag: '"r"', ranges: true }))
    let node: Running | undefined
    let stopped = false
    try {
      await writeFile(join(dir, 'local.car'), local.bytes)
      await writeFile(join(dir, 'late.car'), late.bytes)
      const started = await spawnServe(join(dir, 'repo'), ['--no-auth', '--allow-root', dir, '--db', db, '--node', 'solo'])
      node = started.serve
      const base = started.url
      assert.is((await register(base, 'local', pathToFileURL(join(dir, 'local.car')).href)).status, 201)
      assert.is((await register(base, 'remote', origin.url)).status, 201)

      // Load: block and find requests, one after another, until told to stop.
      const statuses: number[] = []
      const loading = new AbortController()
      const all = [...local.blocks, ...remote.blocks]
      const load = (async () => {
        for (let i = 0; !loading.signal.aborted; i++) {
          const block = all[i % all.length] as Block
          const path = i % 2 === 0 ? `/ipfs/${block.cid.toString()}?format=raw` : `/find/${block.cid.toString()}`
          const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(TIMEOUT) })
          await res.arrayBuffer()
          statuses.push(res.status)
        }
      })()

      await new Promise((resolve) => setTimeout(resolve, 300))
      server.stop()
      stopped = true
      const before = statuses.length
      // While it is down: requests that need the database fail (and answer: a hang fails the test).
      for (let i = 0; !statuses.slice(before).some((s) => s >= 500); i++) {
        if (i > 500) assert.unreachable('no request failed while the database was down')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      // A register while it is down waits for its commit.
      const registering = register(base, 'late', pathToFileURL(join(dir, 'late.car')).href)
      await new Promise((resolve) => setTimeout(resolve, 300))
      server.start()
      stopped = false
      const landed = await registering
      assert.is(landed.status, 201, await landed.text())
      loading.abort()
      await load

      // Full service again.
      await assertServed(base, [...local.blocks, ...remote.blocks, ...late.blocks], 'after the restart')
      const found = await fetch(`${base}/find/${(late.blocks[0] as Block).cid.toString()}`)
      assert.equal(((await found.json()) as { shards: string[] }).shards, ['late'])
      const listed = (await (await fetch(`${base}/shards`)).json()) as { shards: Array<{ key: string, state: string }> }
      // Serving: the gateway keeps recently read shards acquired.
      assert.equal(listed.shards.map((s) => [s.key, s.state]), [['late', 'serving'], ['local', 'serving'], ['remote', 'serving']])
      const client = new pg.Client({ connectionString: db })
      await client.connect()
      try {
        const rows = (await client.query<{ key: string, n: number }>(
          'SELECT key, count(*)::int AS n FROM dagstore_shards GROUP BY key ORDER BY key')).rows
        assert.equal(rows, [{ key: 'late', n: 1 }, { key: 'local', n: 1 }, { key: 'remote', n: 1 }])
        const blocks = (await client.query<{ shard: string, n: number }>(
          'SELECT shard, count(*)::int AS n FROM dagstore_blocks GROUP BY shard ORDER BY shard')).rows
        assert.equal(blocks, [{ shard: 'late', n: 10 }, { shard: 'local', n: 10 }, { shard: 'remote', n: 10 }])
      } finally {
        await client.end()
      }
      assert.ok(statuses.filter((s) => s === 200).length > 0)
    } finally {
      if (stopped) server.start()
      await node?.kill()
      await origin.close()
      await cleanup()
    }
  })

  test.run()
}
