// The store's Prometheus metrics, read back as the text /metrics serves.
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { Registry } from 'prom-client'
import { FileMount } from '../src/storage/mount/file.js'
import { StreamMount } from './helpers/stream-mount.js'
import { fixture } from './helpers/fixtures.js'
import { dirSuite, openStore } from './helpers/store.js'

const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)
const test = dirSuite('metrics')

/** The value of one series in Prometheus text, or undefined. */
function series (text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

test('ops by type and outcome, shards by state, fetch bytes, indexed blocks, transients bytes and budget', async (ctx) => {
  const { store } = await openStore(ctx.dir, { gc: { maxTransientsBytes: 10 * sampleBytes.byteLength } })
  try {
    await store.register('local', new FileMount(SAMPLE))
    await store.register('remote', new StreamMount(SAMPLE))
    const acc = await store.acquire('local')
    await acc.close()
    await store.recover('local').catch(() => {}) // refused: not errored
    const text = await store.metrics.metrics()
    assert.is(series(text, 'dagstore_ops_total{op="acquire",outcome="applied"}'), 1)
    assert.is(series(text, 'dagstore_ops_total{op="release",outcome="applied"}'), 1)
    assert.is(series(text, 'dagstore_ops_total{op="register",outcome="applied"}'), 2)
    assert.is(series(text, 'dagstore_ops_total{op="recover",outcome="rejected"}'), 1)
    assert.is(series(text, 'dagstore_shards{state="available"}'), 2)
    assert.is(series(text, 'dagstore_shards{state="errored"}'), 0)
    assert.is(series(text, 'dagstore_fetch_bytes_total'), sampleBytes.byteLength, 'only the remote shard was downloaded')
    assert.is(series(text, 'dagstore_fetch_duration_seconds_count{outcome="ok"}'), 1)
    assert.is(series(text, 'dagstore_index_blocks_total'), 2 * (await store.getIterableIndex('local')).size)
    assert.is(series(text, 'dagstore_index_duration_seconds_count{outcome="ok"}'), 2)
    assert.is(series(text, 'dagstore_transients_bytes'), sampleBytes.byteLength)
    assert.is(series(text, 'dagstore_transients_reserved_bytes'), 0)
    assert.is(series(text, 'dagstore_transients_limit_bytes'), 10 * sampleBytes.byteLength)
  } finally {
    await store.close()
  }
})

test('a registry given in the options receives the metrics', async (ctx) => {
  const registry = new Registry()
  const { store } = await openStore(ctx.dir, { metrics: registry })
  try {
    assert.is(store.metrics, registry)
    await store.register('local', new FileMount(SAMPLE))
    assert.is(series(await registry.metrics(), 'dagstore_shards{state="available"}'), 1)
  } finally {
    await store.close()
  }
})

test.run()
