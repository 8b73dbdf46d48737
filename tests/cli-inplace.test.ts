// `--copy` on register and serve, and where `info` says a shard's bytes are read from: the CLI
// directly on the repo and through a running server, against real origins on 127.0.0.1.
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fixture } from './helpers/fixtures.js'
import { dirSuite } from './helpers/store.js'
import { cli, spawnServe, type CliResult } from './helpers/cli.js'
import { serve } from './helpers/http-server.js'
import { rangeOrigin } from './helpers/range-origin.js'

const test = dirSuite('cli in place')
const sample = new Uint8Array(await readFile(fixture('sample-v1.car')))

function ok (r: CliResult, what: string): void {
  assert.is(r.code, 0, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
}

test('register reads a ranged origin in place by default; --copy always copies; --copy never on an origin without Range fails with its code', async ({ dir }) => {
  const ranged = await serve(rangeOrigin({ body: sample, etag: '"a"', ranges: true }))
  const plain = await serve(rangeOrigin({ body: sample, etag: '"a"', ranges: false }))
  const d = ['--dir', join(dir, 'repo')]
  try {
    ok(await cli(['register', `${ranged.url}/a.car`, '--key', 'inplace', ...d]), 'register in place')
    let info = JSON.parse((await cli(['info', 'inplace', '--json', ...d])).stdout)
    assert.equal([info.state, info.placement, info.transient], ['available', 'in-place', undefined])
    assert.match((await cli(['info', 'inplace', ...d])).stdout, /^read\s+in-place$/m)

    ok(await cli(['register', `${ranged.url}/a.car`, '--key', 'copied', '--copy', 'always', ...d]), 'register --copy always')
    info = JSON.parse((await cli(['info', 'copied', '--json', ...d])).stdout)
    assert.equal([info.placement, info.copy], ['copy', 'always'])

    const r = await cli(['register', `${plain.url}/a.car`, '--key', 'never', '--copy', 'never', '--json', ...d])
    assert.is(r.code, 1)
    const out = JSON.parse(r.stdout)
    assert.is(out.errors[0].error.code, 'ERR_SHARD_INITIALIZATION_FAILED')
    info = JSON.parse((await cli(['info', 'never', '--json', ...d])).stdout)
    assert.is(info.error.code, 'ERR_RANGE_NOT_SUPPORTED')

    assert.is((await cli(['register', `${ranged.url}/a.car`, '--key', 'bad', '--copy', 'sometimes', ...d])).code, 2)
  } finally {
    await ranged.close()
    await plain.close()
  }
})

test('through a running server: register --copy goes in the request; serve --copy always sets the default', async ({ dir }) => {
  const ranged = await serve(rangeOrigin({ body: sample, etag: '"a"', ranges: true }))
  const repo = join(dir, 'repo')
  const d = ['--dir', repo]
  const { serve: server } = await spawnServe(repo, ['--copy', 'always'])
  try {
    ok(await cli(['register', `${ranged.url}/a.car`, '--key', 'default', ...d]), 'register')
    ok(await cli(['register', `${ranged.url}/a.car`, '--key', 'auto', '--copy', 'auto', ...d]), 'register --copy auto')
    const ls = JSON.parse((await cli(['ls', '--json', ...d])).stdout) as { shards: Array<{ key: string, placement?: string }> }
    const placement = Object.fromEntries(ls.shards.map((s) => [s.key, s.placement]))
    assert.equal(placement, { auto: 'in-place', default: 'copy' })
  } finally {
    await server.kill()
    await ranged.close()
  }
})

test.run()
