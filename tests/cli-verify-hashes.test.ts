// `--verify-hashes remote|all|none`: serve's setting for its store, and the setting of a store a
// direct-mode register/import/recover opens (refused when a server has the repo). A tampered
// copy of sample-v1.car, served by a real HTTP server on 127.0.0.1 and written to a local file.
import * as assert from 'uvu/assert'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CarIndexer } from '@ipld/car/indexer'
import { fixture } from './helpers/fixtures.js'
import { dirSuite } from './helpers/store.js'
import { cli, hasStack, startServe, type CliResult } from './helpers/cli.js'
import { serve as serveHttp, standard, type TestServer } from './helpers/http-server.js'

const test = dirSuite('cli --verify-hashes')

/** sample-v1.car with one data byte of a block in the middle flipped, and that block's CID. */
async function tampered (): Promise<{ bytes: Uint8Array, cid: string }> {
  const sample = await readFile(fixture('sample-v1.car'))
  const entries = []
  for await (const e of await CarIndexer.fromBytes(sample)) if (e.blockLength > 0 && e.cid.multihash.code !== 0) entries.push(e)
  const e = entries[Math.floor(entries.length / 2)]
  if (e === undefined) throw new Error('sample-v1.car has blocks')
  const bytes = Uint8Array.from(sample)
  const at = e.blockOffset + Math.floor(e.blockLength / 2)
  bytes[at] = (bytes[at] as number) ^ 0x01
  return { bytes, cid: e.cid.toString() }
}

function ok (r: CliResult, what: string): void {
  assert.is(r.code, 0, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
}

/** A register that failed on the tampered block: exit 1, the failure naming the block in --json, the shard errored with ERR_INVALID_CAR. */
async function hashMismatch (r: CliResult, cid: string, key: string, repo: string, what: string): Promise<void> {
  assert.is(r.code, 1, `${what}: exit ${String(r.code)}\nstderr: ${r.stderr}`)
  const { errors } = JSON.parse(r.stdout) as { errors: Array<{ key: string, error: { code: string, message: string } }> }
  assert.equal(errors.map((e) => [e.key, e.error.code]), [[key, 'ERR_SHARD_INITIALIZATION_FAILED']], what)
  assert.match(errors[0]?.error.message ?? '', new RegExp(`block hash mismatch for ${cid} at byte \\d+$`), what)
  const info = await cli(['info', key, '--json', '--dir', repo])
  ok(info, `${what}: info`)
  assert.is((JSON.parse(info.stdout) as { error?: { code: string } }).error?.code, 'ERR_INVALID_CAR', what)
}

test('direct mode: a local file is verified only with all; a URL by default and with all, not with none', async ({ dir }) => {
  const { bytes, cid } = await tampered()
  const path = join(dir, 'tampered.car')
  await writeFile(path, bytes)
  let srv: TestServer | undefined
  const repo = join(dir, 'repo')
  const d = ['--dir', repo, '--json']
  try {
    srv = await serveHttp(standard(bytes))
    ok(await cli(['register', path, '--key', 'file-default', ...d]), 'local file, default')
    ok(await cli(['register', path, '--key', 'file-remote', '--verify-hashes', 'remote', ...d]), 'local file, remote')
    await hashMismatch(await cli(['register', path, '--key', 'file-all', '--verify-hashes', 'all', ...d]), cid, 'file-all', repo, 'local file, all')
    await hashMismatch(await cli(['register', srv.url, '--key', 'http-default', ...d]), cid, 'http-default', repo, 'URL, default')
    await hashMismatch(await cli(['register', srv.url, '--key', 'http-all', '--verify-hashes', 'all', ...d]), cid, 'http-all', repo, 'URL, all')
    ok(await cli(['register', srv.url, '--key', 'http-none', '--verify-hashes', 'none', ...d]), 'URL, none')
    // recover re-indexes with the setting it is given.
    ok(await cli(['recover', 'http-default', '--verify-hashes', 'none', ...d]), 'recover, none')
    const ls = await cli(['ls', ...d])
    const { shards } = JSON.parse(ls.stdout) as { shards: Array<{ key: string, state: string }> }
    const states = Object.fromEntries(shards.map((s) => [s.key, s.state]))
    assert.equal(states, {
      'file-all': 'errored',
      'file-default': 'available',
      'file-remote': 'available',
      'http-all': 'errored',
      'http-default': 'available',
      'http-none': 'available'
    })
  } finally {
    await srv?.close()
  }
})

test('a value other than remote, all or none is a usage error', async ({ dir }) => {
  const r = await cli(['register', fixture('sample-v1.car'), '--verify-hashes', 'yes', '--dir', join(dir, 'repo')])
  assert.is(r.code, 2, r.stderr)
  assert.match(r.stderr, /^dagstore: ERR_USAGE: .*--verify-hashes/)
  assert.not.ok(hasStack(r.stderr))
})

test('serve indexes with its own --verify-hashes (default remote); a command asking for one through it is refused', async ({ dir }) => {
  const { bytes, cid } = await tampered()
  let srv: TestServer | undefined
  try {
    srv = await serveHttp(standard(bytes))
    for (const [flag, fails] of [[[], true], [['--verify-hashes', 'all'], true], [['--verify-hashes', 'none'], false]] as const) {
      const repo = join(dir, `repo${flag.join('-')}`)
      const { serve } = await startServe(repo, [...flag])
      try {
        const r = await cli(['register', srv.url, '--key', 'remote', '--json', '--dir', repo])
        if (fails) await hashMismatch(r, cid, 'remote', repo, `serve ${flag.join(' ')}`)
        else ok(r, `serve ${flag.join(' ')}`)
        const refused = await cli(['register', srv.url, '--key', 'other', '--verify-hashes', 'none', '--dir', repo])
        assert.is(refused.code, 2, refused.stderr)
        assert.match(refused.stderr, /^dagstore: ERR_USAGE: --verify-hashes applies when a command opens the repo itself/)
      } finally {
        await serve.stop('SIGTERM')
      }
    }
  } finally {
    await srv?.close()
  }
})

test.run()
