// TransientBudget: the accounting automated GC runs on. The store-level behaviour (what gets
// evicted, under load) is in automated-gc.test.ts; this pins the arithmetic and the protocol.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { TransientBudget } from '../src/storage/transients/budget.js'
import { codeOf } from './helpers/assert.js'

const test = suite('TransientBudget')

/** An evictor over a list of (path, size) the test calls idle: frees LRU-first, as the store's does. */
function evictingFrom (budget: TransientBudget, idle: Set<string>, log: number[] = []): (bytes: number) => Promise<number> {
  return async (bytes) => {
    log.push(bytes)
    let freed = 0
    for (const [path, entry] of [...budget.entries()]) {
      if (freed >= bytes) break
      if (!idle.has(path)) continue
      budget.remove(path)
      idle.delete(path)
      freed += entry.size
    }
    return freed
  }
}

test('options: defaults, validation', () => {
  const b = new TransientBudget({ maxBytes: 1000 })
  assert.is(b.highBytes, 900)
  assert.is(b.lowBytes, 700)
  assert.is(b.stepBytes, 100, 'a tenth of the bound when that is below 128 MiB')
  assert.is(new TransientBudget({ maxBytes: 10 * 1024 ** 3 }).stepBytes, 128 * 1024 ** 2)
  assert.throws(() => new TransientBudget({ maxBytes: 0 }), RangeError)
  assert.throws(() => new TransientBudget({ maxBytes: 1.5 }), RangeError)
  assert.throws(() => new TransientBudget({ maxBytes: 100, lowWatermark: 0.9, highWatermark: 0.9 }), RangeError)
  assert.throws(() => new TransientBudget({ maxBytes: 100, highWatermark: 1.5 }), RangeError)
  assert.throws(() => new TransientBudget({ maxBytes: 100, stepBytes: 0 }), RangeError)
})

test('files and reservations both count; remove and unreserve give the space back', async () => {
  const b = new TransientBudget({ maxBytes: 1000 })
  await b.reserve(300)
  assert.is(b.usedBytes, 300)
  b.add('/t/a', 'a', 200)
  b.unreserve(300)
  assert.is(b.usedBytes, 200)
  b.add('/t/a', 'a', 250)
  assert.is(b.usedBytes, 250, 're-adding a path replaces its size')
  b.remove('/t/a')
  b.remove('/t/a')
  assert.is(b.usedBytes, 0)
  b.unreserve(50)
  assert.is(b.reservedBytes, 0, 'never below zero')
})

test('a reservation that does not fit evicts least recently used first, down to the low watermark', async () => {
  const b = new TransientBudget({ maxBytes: 1000, highWatermark: 0.9, lowWatermark: 0.75 })
  const idle = new Set<string>()
  const asked: number[] = []
  b.setEvictor(evictingFrom(b, idle, asked))
  for (const name of ['a', 'b', 'c', 'd']) { b.add(`/t/${name}`, name, 200); idle.add(`/t/${name}`) }
  await b.idle()
  b.touch('/t/a') // order now b, c, d, a
  await b.reserve(250)
  assert.equal(asked, [800 + 250 - 750], 'asked to reach the low watermark')
  assert.equal([...b.entries()].map(([p]) => p), ['/t/d', '/t/a'], 'b and c went; the touched one is the most recent')
  assert.is(b.usedBytes, 650)
})

test('files in use are skipped; when nothing can go the reservation is refused with ERR_TRANSIENTS_FULL', async () => {
  const b = new TransientBudget({ maxBytes: 1000 })
  const idle = new Set<string>()
  b.setEvictor(evictingFrom(b, idle))
  b.add('/t/busy', 'busy', 600)
  b.add('/t/idle', 'idle', 300)
  idle.add('/t/idle')
  await b.idle()
  await b.reserve(350)
  assert.equal([...b.entries()].map(([p]) => p), ['/t/busy'])
  assert.is(await codeOf(b.reserve(100)), 'ERR_TRANSIENTS_FULL')
  assert.is(b.usedBytes, 950, 'a refused reservation takes nothing')
  assert.is(await codeOf(b.reserve(1001)), 'ERR_TRANSIENTS_FULL', 'larger than the bound')
})

test('going above the high watermark starts one background collection down to the low one', async () => {
  const b = new TransientBudget({ maxBytes: 1000, highWatermark: 0.8, lowWatermark: 0.4 })
  const idle = new Set<string>()
  const asked: number[] = []
  b.setEvictor(evictingFrom(b, idle, asked))
  for (let i = 0; i < 4; i++) { b.add(`/t/${i}`, String(i), 200); idle.add(`/t/${i}`) }
  await b.idle()
  assert.equal(asked, [], 'at 800 of 1000: not above the high watermark')
  b.add('/t/4', '4', 100)
  await b.idle()
  assert.equal(asked, [900 - 400])
  assert.ok(b.usedBytes <= 400, String(b.usedBytes))
})

test('an evictor that fails is reported, not thrown at the writer', async () => {
  const errors: unknown[] = []
  const b = new TransientBudget({ maxBytes: 100 }, (err) => { errors.push(err) })
  b.setEvictor(async () => { throw new Error('loop gone') })
  b.add('/t/a', 'a', 95)
  await b.idle()
  assert.is(errors.length, 1)
})

test.run()
