// `dagstore ls`: every page streamed by default (the output of one listing), --limit/--cursor
// for one page, --state and --prefix; direct and through a running server alike.
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import type { ShardJson } from '../src/app/wire.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite } from './helpers/store.js'
import { cli, startServe, type CliResult } from './helpers/cli.js'

const test = dirSuite('cli ls')

function ok (r: CliResult, what: string): void {
  assert.is(r.code, 0, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
}

/** More shards than one page (1000) holds: `s0000`…`s1204` and `t/one`, all lazy. */
async function repoWithShards (repo: string): Promise<string[]> {
  const store = new DAGStore({ dir: repo })
  await store.start()
  const keys = [...Array.from({ length: 1205 }, (_, i) => `s${String(i).padStart(4, '0')}`), 't/one']
  try {
    await Promise.all(keys.map(async (key) => { await store.register(key, new FileMount(fixture('sample-v1.car')), { lazy: true }) }))
  } finally {
    await store.close()
  }
  return keys
}

async function checkListing (d: string[], keys: string[], how: string): Promise<void> {
  let r = await cli(['ls', '--json', ...d])
  ok(r, `ls --json ${how}`)
  const shards = (JSON.parse(r.stdout) as { shards: ShardJson[] }).shards
  assert.equal(shards.map((s) => s.key), keys)
  // Written page by page, byte for byte what one JSON.stringify of the whole listing writes.
  assert.is(r.stdout, JSON.stringify({ shards }, null, 2) + '\n')

  r = await cli(['ls', ...d])
  ok(r, `ls ${how}`)
  const lines = r.stdout.trimEnd().split('\n')
  assert.equal(lines[0]?.split(/\s{2,}/), ['KEY', 'STATE', 'REFS', 'SIZE', 'ERROR'])
  assert.equal(lines.slice(1).map((l) => l.split(/\s+/)[0]), keys)

  r = await cli(['ls', '--limit', '3', '--prefix', 's1', '--json', ...d])
  ok(r, `ls --limit ${how}`)
  const page = JSON.parse(r.stdout) as { shards: ShardJson[], next: string }
  assert.equal(page.shards.map((s) => s.key), ['s1000', 's1001', 's1002'])
  r = await cli(['ls', '--limit', '2', '--cursor', page.next, ...d])
  ok(r, `ls --cursor ${how}`)
  assert.equal(r.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['s1003', 's1004'])
  assert.match(r.stderr, /^next page: --cursor [A-Za-z0-9_-]+\n$/)

  r = await cli(['ls', '--prefix', 't/', ...d])
  assert.equal(r.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['t/one'])
  r = await cli(['ls', '--state', 'errored', ...d])
  assert.equal([r.code, r.stdout], [0, 'no shards\n'])
  r = await cli(['ls', '--state', 'errored', '--json', ...d])
  assert.equal(JSON.parse(r.stdout), { shards: [] })

  r = await cli(['ls', '--cursor', 'no good', ...d])
  assert.is(r.code, 1)
  assert.match(r.stderr, /^dagstore: ERR_INVALID_CURSOR: /)
  r = await cli(['ls', '--state', 'sleeping', ...d])
  assert.is(r.code, 2)
  r = await cli(['ls', '--limit', '1001', ...d])
  assert.is(r.code, 2)
}

test('every page by default, one with --limit; filters; direct and through serve', async (ctx) => {
  const repo = join(ctx.dir, 'repo')
  const keys = await repoWithShards(repo)
  const d = ['--dir', repo]
  await checkListing(d, keys, 'direct')
  const { serve } = await startServe(repo)
  try {
    await checkListing(d, keys, 'through serve')
  } finally {
    assert.equal(await serve.stop(), { code: 0, signal: null })
  }
})

test.run()
