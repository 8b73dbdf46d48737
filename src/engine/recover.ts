import type { DAGStore } from './store.js'
import type { ShardKey, ShardResult } from '../base/types.js'

/**
 * Recovers every shard reported on `failures`, at most `maxAttempts` times in a row per
 * shard; a successful recovery resets that shard's count. Resolves when `failures` ends or
 * `signal` aborts.
 */
export async function recoverImmediately (
  store: DAGStore,
  failures: AsyncIterable<ShardResult>,
  maxAttempts: number,
  opts: { signal?: AbortSignal } = {}
): Promise<void> {
  if (!Number.isInteger(maxAttempts) || maxAttempts < 0) throw new RangeError('maxAttempts must be a non-negative integer')
  const { signal } = opts
  const attempts = new Map<ShardKey, number>()
  const iterator = failures[Symbol.asyncIterator]()
  const aborted = new Promise<IteratorResult<ShardResult>>((resolve) => {
    if (signal === undefined) return
    const done = (): void => { resolve({ done: true, value: undefined }) }
    if (signal.aborted) done()
    else signal.addEventListener('abort', done, { once: true })
  })
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), aborted])
      if (next.done === true) return
      const { key } = next.value
      const made = attempts.get(key) ?? 0
      if (made >= maxAttempts) continue
      attempts.set(key, made + 1)
      try {
        store.recoverShard(key, (result) => { if (result.error === undefined) attempts.delete(key) })
      } catch {
        // Destroyed meanwhile, or the store closed: nothing left to recover.
        attempts.delete(key)
      }
    }
  } finally {
    await iterator.return?.()
  }
}
