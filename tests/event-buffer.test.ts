import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EventBuffer } from '../src/engine/observe/event-buffer.js'

async function take<T> (it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = []
  for (let i = 0; i < n; i++) {
    const r = await it.next()
    if (r.done === true) break
    out.push(r.value)
  }
  return out
}

test('each subscriber reads every event at its own pace, from when it subscribed', async () => {
  const buf = new EventBuffer<number>(8)
  buf.publish(0)
  const fast = buf.subscribe()
  const slow = buf.subscribe()
  for (let i = 1; i <= 5; i++) buf.publish(i)
  assert.equal(await take(fast, 5), [1, 2, 3, 4, 5])
  assert.equal(await take(slow, 2), [1, 2])
  buf.publish(6)
  assert.equal(await take(slow, 4), [3, 4, 5, 6])
  assert.equal(await take(fast, 1), [6])
})

test('a reader waits for the next event without polling', async () => {
  const buf = new EventBuffer<string>(4)
  const it = buf.subscribe()
  const pending = it.next()
  setTimeout(() => { buf.publish('later') }, 5)
  assert.equal(await pending, { done: false, value: 'later' })
})

test('falling more than capacity behind throws SubscriptionLaggedError; the writer never waits', async () => {
  const buf = new EventBuffer<number>(4)
  const lagging = buf.subscribe()
  const keeping = buf.subscribe()
  for (let i = 0; i < 4; i++) buf.publish(i)
  assert.equal(await take(keeping, 4), [0, 1, 2, 3])
  // Exactly at capacity is still fine.
  assert.equal(await take(lagging, 1), [0])
  for (let i = 4; i < 100_000; i++) buf.publish(i)
  await lagging.next().then(() => assert.unreachable(), (e: { code: string, message: string }) => {
    assert.is(e.code, 'ERR_SUBSCRIPTION_LAGGED')
    assert.match(e.message, /behind/)
  })
  // After lagging, the iterator is finished.
  assert.equal(await lagging.next(), { done: true, value: undefined })
  await keeping.next().then(() => assert.unreachable(), (e: { code: string }) => { assert.is(e.code, 'ERR_SUBSCRIPTION_LAGGED') })
})

test('close() ends subscriptions after what was already published', async () => {
  const buf = new EventBuffer<number>(4)
  const it = buf.subscribe()
  buf.publish(1)
  buf.close()
  buf.publish(2)
  assert.equal(await take(it, 5), [1])
})

test('an aborted signal ends the subscription with an AbortError, waking a waiting reader', async () => {
  const buf = new EventBuffer<number>(4)
  const ac = new AbortController()
  const it = buf.subscribe({ signal: ac.signal })
  const waiting = it.next()
  ac.abort()
  await waiting.then(() => assert.unreachable(), (e: Error) => { assert.is(e.name, 'AbortError') })
})

test('return() detaches a subscriber, for-await break works', async () => {
  const buf = new EventBuffer<number>(4)
  const seen: number[] = []
  const it = buf.subscribe()
  for (let i = 0; i < 3; i++) buf.publish(i)
  for await (const v of it) {
    seen.push(v)
    if (v === 1) break
  }
  assert.equal(seen, [0, 1])
  assert.equal(await it.next(), { done: true, value: undefined })
})

test('capacity must be a positive integer', () => {
  assert.throws(() => new EventBuffer(0))
  assert.throws(() => new EventBuffer(1.5))
})

test.run()
