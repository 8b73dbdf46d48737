// The one loopback check the server (token-less admin API, Host header) and the CLI (serve
// --no-auth) share, as a table and end to end through a serve on an IPv4-mapped address.
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { isLoopback } from '../src/app/loopback.js'
import { dirSuite } from './helpers/store.js'
import { cli, spawnCli, type Running } from './helpers/cli.js'

const test = dirSuite('loopback')

test('loopback: 127.0.0.0/8, ::1 in any spelling, IPv4-mapped loopback, localhost', () => {
  for (const host of [
    '127.0.0.1', '127.255.255.254', '127.1.2.3',
    '::1', '[::1]', '0:0:0:0:0:0:0:1', '0000::0001', '[0:0:0:0:0:0:0:1]',
    '::ffff:127.0.0.1', '[::ffff:127.0.0.1]', '::FFFF:127.9.8.7', '::ffff:7f00:1', '[::ffff:7f00:1]',
    'localhost', 'LOCALHOST'
  ]) assert.ok(isLoopback(host), host)
})

test('not loopback: other and any-addresses, mapped non-loopback, names, malformed', () => {
  for (const host of [
    '10.0.0.1', '128.0.0.1', '126.255.255.255', '0.0.0.0', '192.0.2.1',
    '::', '[::]', '::2', '::ffff:10.0.0.1', '[::ffff:10.0.0.1]', '::ffff:0.0.0.0',
    // IPv4-compatible and NAT64 forms are other addresses, not 127.0.0.1.
    '::127.0.0.1', '64:ff9b::127.0.0.1', '::ffff:0:127.0.0.1',
    'example.com', 'localhost.example.com', '127.0.0.1.example.com',
    '', '[', '[::1', '::1]', '127.0.0.1:8080', '[::1]:8080'
  ]) assert.not.ok(isLoopback(host), host)
})

test('serve --no-auth on an IPv4-mapped loopback address starts, and commands go through it', async ({ dir }) => {
  const repo = join(dir, 'repo')
  // The client's URL parser writes this address as [::ffff:7f00:1]: that is the Host the
  // server's token-less check then sees.
  const serve: Running = spawnCli(['serve', '--dir', repo, '--listen', '[::ffff:127.0.0.1]:0', '--no-auth'])
  try {
    await serve.waitFor(/ at (http:\/\/\S+) \(pid \d+\)/)
    const ls = await cli(['ls', '--verbose', '--json', '--dir', repo])
    assert.is(ls.code, 0, ls.stderr)
    assert.match(ls.stderr, /using the server/)
    assert.equal(JSON.parse(ls.stdout).shards, [])
    assert.equal(await serve.stop(), { code: 0, signal: null })
  } finally {
    await serve.kill()
  }
})

test('serve --no-auth refuses a mapped non-loopback address', async ({ dir }) => {
  const r = await cli(['serve', '--dir', join(dir, 'repo'), '--listen', '[::ffff:10.0.0.1]:0', '--no-auth'])
  assert.is(r.code, 2, r.stderr)
  assert.match(r.stderr, /^dagstore: ERR_USAGE: --no-auth is only allowed on a loopback address/)
})

test.run()
