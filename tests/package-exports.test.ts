// The package's public surface, loaded as users load it: through package.json "exports" (the
// package resolving its own name), not through src paths. The root carries the documented API
// (docs/CONTRACT.md): contract names are never removed, internals never leak into it. The
// CAR/index codec pieces live at `dagstore/format`.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { fixture } from './helpers/fixtures.js'

// Specifiers in variables: the compiler must not resolve them (dist may not exist while it runs).
const ROOT = 'dagstore'
const FORMAT = 'dagstore/format'
const POSTGRES = 'dagstore/postgres'
type Module = Record<string, unknown>
const execFileAsync = promisify(execFile)

const test = suite('package exports')

test('the root exports every contract name, and each error class has its stable code', async () => {
  const root = await import(ROOT) as Module
  for (const name of ['DAGStore', 'recoverImmediately', 'ShardState', 'MountRegistry', 'FileMount', 'BytesMount',
    'HttpMount', 'MemoryIndexRepo', 'FsIndexRepo', 'LevelTopLevelIndex', 'toInterfaceBlockstore', 'startServer',
    'createGateway', 'defaultShardIndexer', 'createShardIndexer']) {
    assert.type(root[name], name === 'ShardState' ? 'object' : 'function', name)
  }
  assert.equal(root.ShardState, {
    New: 'new', Initializing: 'initializing', Available: 'available', Serving: 'serving', Recovering: 'recovering', Errored: 'errored'
  })
  const codes: Record<string, string> = {
    ShardUnknownError: 'ERR_SHARD_UNKNOWN',
    ShardExistsError: 'ERR_SHARD_EXISTS',
    ShardInitializationFailedError: 'ERR_SHARD_INITIALIZATION_FAILED',
    ShardInUseError: 'ERR_SHARD_IN_USE',
    ShardErroredError: 'ERR_SHARD_ERRORED',
    ShardNotErroredError: 'ERR_SHARD_NOT_ERRORED',
    ShardDrainingError: 'ERR_SHARD_DRAINING',
    StoreClosedError: 'ERR_STORE_CLOSED',
    StoreNotStartedError: 'ERR_STORE_NOT_STARTED',
    BlockNotFoundError: 'ERR_NOT_FOUND',
    InvalidShardKeyError: 'ERR_INVALID_SHARD_KEY',
    UnknownMountSchemeError: 'ERR_UNKNOWN_MOUNT_SCHEME',
    SubscriptionLaggedError: 'ERR_SUBSCRIPTION_LAGGED',
    InvalidCarError: 'ERR_INVALID_CAR',
    IndexNotFoundError: 'ERR_INDEX_NOT_FOUND',
    InvalidMountError: 'ERR_INVALID_MOUNT',
    TransientError: 'ERR_TRANSIENT',
    TransientsFullError: 'ERR_TRANSIENTS_FULL',
    AbortError: 'ABORT_ERR',
    BlockstoreClosedError: 'ERR_BLOCKSTORE_CLOSED',
    ReadOnlyError: 'ERR_READ_ONLY',
    HttpLengthMismatchError: 'ERR_HTTP_LENGTH_MISMATCH',
    HttpTimeoutError: 'ERR_HTTP_TIMEOUT',
    HttpRangeError: 'ERR_HTTP_RANGE',
    HttpNetworkError: 'ERR_HTTP_NETWORK',
    HttpChangedError: 'ERR_HTTP_CHANGED'
  }
  const DAGStoreError = root.DAGStoreError as new (...args: unknown[]) => Error
  for (const [name, code] of Object.entries(codes)) {
    const Class = root[name] as (new () => Error & { code: string }) | undefined
    assert.type(Class, 'function', name)
    const err = new (Class as new () => Error & { code: string })()
    assert.is(err.code, code, name)
    assert.ok(err instanceof DAGStoreError, `${name} is a DAGStoreError`)
  }
})

test('internals stay out of the root', async () => {
  const root = await import(ROOT) as Module
  for (const name of ['indexCar', 'EventBuffer', 'StoreMetrics', 'encodeMultihashIndexSorted', 'decodeCarIndex',
    'MultihashIndexSortedView', 'raceAbort', 'abortErrorFrom', 'isAbortError', 'defineError', 'SHARD_STATES', 'OP_TYPES']) {
    assert.not.ok(name in root, `${name} must not be exported from the package root`)
  }
})

test('dagstore/format: indexCar, the go-car index codec and its zero-copy view agree with go-car\'s embedded index', async () => {
  // Typed from the sources the package is built from; loaded through the package's exports.
  const format = await import(FORMAT) as typeof import('../src/format/api.js')
  assert.is(format.CAR_MULTIHASH_INDEX_SORTED, 0x0401)
  const wrapped = await readFile(fixture('sample-wrapped-v2.car'))
  const result = await format.indexCar(Readable.from([wrapped]))
  assert.is(result.embeddedIndex, 'adopted')
  const embedded = wrapped.subarray(result.layout.indexOffset)
  // The index we write is go-car's, byte for byte.
  assert.ok(Buffer.from(format.encodeMultihashIndexSorted(result.index)).equals(embedded))
  const view = new format.MultihashIndexSortedView(embedded)
  const decoded = format.decodeCarIndex(embedded)
  assert.is(view.size, result.index.size)
  assert.is(decoded.size, result.index.size)
  for (const { multihash, offset } of result.index) {
    assert.is(view.get(multihash), offset)
    assert.is(decoded.get(multihash), offset)
  }
})

test('dagstore/postgres: the backend entry; importing the root never loads the database driver', async () => {
  const entry = await import(POSTGRES) as Module
  for (const name of ['postgresBackend', 'migrateDatabase', 'PostgresBackend', 'SchemaVersionError']) assert.type(entry[name], 'function', name)
  assert.type(entry.SCHEMA_VERSION, 'number')
  // A fresh process (this one has pg loaded by other suites): pg is CommonJS, so a load shows in require.cache.
  const loadsPg = async (specifier: string): Promise<string> => {
    const script = `await import(${JSON.stringify(specifier)})
      const { createRequire } = await import('node:module')
      const cache = createRequire(import.meta.url).cache
      process.stdout.write(String(Object.keys(cache).some((p) => /[\\/]node_modules[\\/]pg[\\/]/.test(p))))`
    const cwd = fileURLToPath(new URL('../../', import.meta.url))
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], { cwd })
    return stdout.trim()
  }
  assert.is(await loadsPg(ROOT), 'false', 'import "dagstore" loads no pg')
  assert.is(await loadsPg(POSTGRES), 'true', 'the check sees pg when it is loaded')
})

test.run()
