// RateFloor (the HttpMount's minimum body rate) on a hand-driven clock: what it judges and when.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { RateFloor } from '../src/storage/mount/rate-floor.js'

const test = suite('rate floor')

function floorOn (min: number, windowMs: number): { floor: RateFloor, clock: { t: number }, failures: Array<[number, number]> } {
  const clock = { t: 1000 }
  const failures: Array<[number, number]> = []
  const floor = new RateFloor({ minBytesPerSecond: min, windowMs, onTooSlow: (b, ms) => { failures.push([b, ms]) }, now: () => clock.t })
  return { floor, clock, failures }
}

/** Advances the clock by `ms` in steps of `step`, receiving `perStep` bytes and checking after each. */
function run (f: ReturnType<typeof floorOn>, ms: number, step: number, perStep: number): void {
  for (let done = 0; done < ms; done += step) {
    f.clock.t += step
    f.floor.received(perStep)
    f.floor.check()
  }
}

test('a trickle below the minimum fails once a window has passed, with what arrived over it', () => {
  const f = floorOn(1000, 10_000)
  run(f, 9_000, 1000, 1) // 1 byte/s
  assert.equal(f.failures, [], 'nothing is judged before a full window')
  run(f, 1_000, 1000, 1)
  assert.equal(f.failures, [[10, 10_000]])
  run(f, 5_000, 1000, 1)
  assert.is(f.failures.length, 1, 'it fails once')
})

test('a body at or above the minimum never fails, however long it lasts', () => {
  const f = floorOn(1000, 10_000)
  run(f, 120_000, 1000, 1000)
  run(f, 120_000, 500, 600)
  assert.equal(f.failures, [])
})

test('the window slides: a fast start does not excuse a later trickle', () => {
  const f = floorOn(1000, 10_000)
  run(f, 10_000, 1000, 1_000_000)
  run(f, 9_000, 1000, 1)
  assert.equal(f.failures, [], 'the window still holds fast seconds')
  run(f, 2_000, 1000, 1)
  assert.equal(f.failures, [[10, 10_000]], 'judged on the last window alone: ten trickled bytes')
})

test('time the consumer holds a chunk is not counted against the server', () => {
  const f = floorOn(1000, 10_000)
  run(f, 5_000, 1000, 2000)
  f.floor.pause()
  f.clock.t += 60_000 // a slow consumer: the server is not being waited on
  f.floor.check()
  f.floor.resume()
  run(f, 30_000, 1000, 2000)
  assert.equal(f.failures, [])
})

test('paused time does not complete a window either: a silent server fails after a window of waiting', () => {
  const f = floorOn(1000, 10_000)
  run(f, 5_000, 1000, 0)
  f.floor.pause()
  f.clock.t += 60_000
  f.floor.check()
  f.floor.resume()
  run(f, 4_000, 1000, 0)
  assert.equal(f.failures, [], '9 s of waiting')
  run(f, 1_000, 1000, 0)
  assert.equal(f.failures, [[0, 10_000]])
})

test('stop() ends the judging; the timer checks a few times per window, at most once a second', () => {
  const f = floorOn(1000, 10_000)
  f.floor.stop()
  run(f, 30_000, 1000, 0)
  assert.equal(f.failures, [])
  assert.is(floorOn(1, 30_000).floor.checkEveryMs, 1000)
  assert.is(floorOn(1, 400).floor.checkEveryMs, 100)
})

test('start() checks on its own timer (real clock): a silent body fails', async () => {
  // The floor's timer is unref'd (it never keeps a process alive): this one keeps the test's.
  const keepAlive = setInterval(() => {}, 1000)
  const failed = await new Promise<[number, number]>((resolve) => {
    const floor = new RateFloor({ minBytesPerSecond: 1000, windowMs: 40, onTooSlow: (b, ms) => { resolve([b, ms]) } })
    floor.start()
  }).finally(() => { clearInterval(keepAlive) })
  assert.is(failed[0], 0)
  assert.ok(failed[1] >= 40, `judged after ${failed[1]} ms`)
})

test.run()
