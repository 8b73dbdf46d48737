// The CLI over the PostgreSQL backend: `dagstore migrate --db` (idempotent) and `dagstore serve
// --db --node --advertise` (and their DAGSTORE_* variables) against a throwaway server. A node
// served again on an empty dir answers for the shards it registered before.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { cli, startServe } from './helpers/cli.js'
import { carBlocks, fixture, tempDir } from './helpers/fixtures.js'
import { postgresAvailable, postgresServer } from './helpers/postgres.js'
import { at } from './helpers/assert.js'

async function rows<T extends pg.QueryResultRow> (url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text)).rows
  } finally {
    await client.end()
  }
}

if (postgresAvailable('PostgreSQL CLI')) {
  const test = suite('PostgreSQL CLI')
  const fresh = async (label: string): Promise<string> => await (await postgresServer()).freshDatabase(label)

  test('migrate --db: creates the schema, then says it is up to date; DAGSTORE_DB works too; no --db is a usage error', async () => {
    const url = await fresh('cli_migrate')
    let r = await cli(['migrate', '--db', url])
    assert.is(r.code, 0, r.stderr)
    assert.is(r.stdout, 'schema at version 1: applied 1\n')
    r = await cli(['migrate', '--json'], { env: { DAGSTORE_DB: url } })
    assert.is(r.code, 0, r.stderr)
    assert.equal(JSON.parse(r.stdout), { version: 1, applied: [] })
    r = await cli(['migrate'])
    assert.is(r.code, 2)
    assert.match(r.stderr, /^dagstore: ERR_USAGE: migrate needs --db/)
  })

  test('serve --db needs --node; --node without --db is a usage error', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      let r = await cli(['serve', '--dir', dir, '--listen', '127.0.0.1:0', '--db', 'postgres://127.0.0.1:1/x'])
      assert.is(r.code, 2)
      assert.match(r.stderr, /--db needs --node/)
      r = await cli(['serve', '--dir', dir, '--listen', '127.0.0.1:0', '--node', 'a'])
      assert.is(r.code, 2)
      assert.match(r.stderr, /--node and --advertise go with --db/)
    } finally {
      await cleanup()
    }
  })

  test('serve --db --node --advertise: shards go to the database; the node served again on an empty dir (env vars) answers for them', async () => {
    const url = await fresh('cli_serve')
    const { dir, cleanup } = await tempDir()
    const first = join(dir, 'first')
    const second = join(dir, 'second')
    const blocks = await carBlocks('sample-v1.car')
    const block = at(blocks, 3)
    try {
      const a = await startServe(first, ['--no-auth', '--allow-root', dirname(fixture('sample-v1.car')), '--db', url, '--node', 'node-a', '--advertise', 'http://10.0.0.5:8080'])
      try {
        // The user name (and a password) never printed.
        const told = at(await a.serve.waitFor(/^shard records and indices: .*$/m), 0)
        assert.is(told, `shard records and indices: ${url.replace('//postgres@', '//***@')}, as node "node-a"`)
        const r = await cli(['register', fixture('sample-v1.car'), '--key', 'sample', '--dir', first])
        assert.is(r.code, 0, r.stderr)
        const got = await fetch(`${a.url}/ipfs/${block.cid.toString()}?format=raw`)
        assert.is(got.status, 200)
        assert.ok(Buffer.from(await got.arrayBuffer()).equals(block.bytes))
      } finally {
        assert.equal(await a.serve.stop(), { code: 0, signal: null })
      }
      assert.equal(await rows(url, 'SELECT key, owner, state FROM dagstore_shards'), [{ key: 'sample', owner: 'node-a', state: 'available' }])
      assert.equal(await rows(url, 'SELECT name, advertise FROM dagstore_nodes'), [{ name: 'node-a', advertise: 'http://10.0.0.5:8080' }])

      const b = await startServe(second, ['--no-auth'], { env: { DAGSTORE_DB: url, DAGSTORE_NODE: 'node-a' } })
      try {
        const ls = await cli(['ls', '--json', '--dir', second])
        assert.is(ls.code, 0, ls.stderr)
        const listed = (JSON.parse(ls.stdout) as { shards: Array<{ key: string, state: string }> }).shards
        assert.equal(listed.map((s) => [s.key, s.state]), [['sample', 'available']])
        const got = await fetch(`${b.url}/ipfs/${block.cid.toString()}?format=raw`)
        assert.is(got.status, 200)
        assert.ok(Buffer.from(await got.arrayBuffer()).equals(block.bytes))
      } finally {
        assert.equal(await b.serve.stop(), { code: 0, signal: null })
      }
    } finally {
      await cleanup()
    }
  })

  test.run()
}
