// GrowingFile: how far a file being written is readable, and the tail it keeps in memory.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GrowingFile } from '../src/storage/transients/growing-file.js'

const test = suite('GrowingFile')

function bytes (from: number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff)
}

/** Plain arrays: uvu compares a Buffer and a Uint8Array of the same bytes as different. */
function plain (u: Uint8Array | undefined): number[] | undefined {
  return u === undefined ? undefined : Array.from(u)
}

test('copy serves only bytes that are on disk and still retained, across chunk borders', () => {
  const f = new GrowingFile(undefined)
  f.remember(bytes(0, 100))
  f.remember(bytes(100, 50))
  assert.is(f.copy(0, 10), undefined, 'remembered but not yet written')
  f.grew(120)
  assert.equal(plain(f.copy(90, 120)), plain(bytes(90, 30)), 'spans two chunks')
  assert.is(f.copy(90, 121), undefined, 'past what is written')
  f.grew(30)
  assert.equal(plain(f.copy(0, 150)), plain(bytes(0, 150)))
  assert.is(f.copy(10, 10), undefined, 'empty range')
})

test('the tail is bounded: old chunks are dropped, and everything once the file ends', () => {
  const f = new GrowingFile(undefined)
  const chunk = 1024 * 1024
  for (let i = 0; i < 8; i++) { f.remember(bytes(i * chunk, chunk)); f.grew(chunk) }
  assert.is(f.copy(0, 10), undefined, 'the first chunks are gone')
  assert.equal(plain(f.copy(7 * chunk, 7 * chunk + 10)), plain(bytes(7 * chunk, 10)))
  f.finish()
  assert.is(f.copy(7 * chunk, 7 * chunk + 10), undefined, 'readers of a finished file read it')
})

test('waits resolve as bytes arrive, at the end, or reject with the writer\'s error', async () => {
  const f = new GrowingFile(300)
  const order: string[] = []
  const a = f.waitFor(100).then(() => order.push('a'))
  const b = f.waitFor(250).then(() => order.push('b'))
  f.grew(150)
  await a
  assert.equal(order, ['a'])
  f.grew(150)
  f.finish()
  await b
  assert.equal(order, ['a', 'b'])
  await f.waitFor(10_000) // past the end of a finished file: resolves at once

  const g = new GrowingFile(undefined)
  const err = new Error('reset')
  const pending = g.waitFor(10)
  g.fail(err)
  assert.is(await pending.then(() => undefined, (e: unknown) => e), err)
  assert.is(await g.waitFor(0).then(() => undefined, (e: unknown) => e), err)
})

test.run()
