/**
 * DAGStore.listShards: a page of shards read from the ordered keys of the shard table. A call
 * costs O(log n + examined keys) and copies nothing else: it starts at the cursor, stops at
 * `limit` matches, at the end of the prefix's range, or after MAX_EXAMINED keys (a state filter
 * that few shards match then answers a short page with a `next`, instead of blocking the loop).
 */
import { InvalidArgumentError } from '../base/errors.js'
import { SHARD_STATES, type ListShardsOptions, type ShardPage } from '../base/types.js'
import type { ShardMap } from './shard/shard-map.js'

const DEFAULT_LIST_LIMIT = 100
const MAX_LIST_LIMIT = 10_000
/**
 * Keys one call looks at, at most (or `limit`, when larger: a page without a filter is always
 * full): about a millisecond of work whatever the filter (a lookup in the shard table per key).
 * Callers that want fuller pages call again, yielding between calls (the server's gatherPage).
 */
const MAX_EXAMINED = 4096

function check (options: ListShardsOptions): Required<Pick<ListShardsOptions, 'limit' | 'prefix'>> {
  const { after, limit = DEFAULT_LIST_LIMIT, state, prefix = '' } = options
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new InvalidArgumentError(`limit must be an integer 1..${MAX_LIST_LIMIT}`)
  }
  if (after !== undefined && typeof after !== 'string') throw new InvalidArgumentError('after must be a shard key')
  if (typeof prefix !== 'string') throw new InvalidArgumentError('prefix must be a string')
  if (state !== undefined && !SHARD_STATES.includes(state)) {
    throw new InvalidArgumentError(`state must be one of ${SHARD_STATES.join(', ')}`)
  }
  return { limit, prefix }
}

export function listShardsPage (shards: ShardMap, options: ListShardsOptions = {}): ShardPage {
  const { limit, prefix } = check(options)
  const { state } = options
  // Keys with the prefix are one contiguous run: start at its beginning unless the cursor is past it.
  const after = options.after !== undefined && options.after >= prefix ? options.after : undefined
  const page: ShardPage = { shards: [] }
  const bound = Math.max(limit, MAX_EXAMINED)
  let examined = 0
  let last: string | undefined
  const keys = after === undefined && prefix !== '' ? shards.keysFrom(prefix) : shards.keysAfter(after)
  for (const key of keys) {
    if (!key.startsWith(prefix)) return page
    if (page.shards.length === limit || examined === bound) {
      // There is at least one more key in range: the next page starts after the last one looked at.
      if (last !== undefined) page.next = last
      return page
    }
    examined++
    last = key
    const shard = shards.get(key)
    if (shard === undefined || (state !== undefined && shard.state !== state)) continue
    page.shards.push({ key, info: shard.info() })
  }
  return page
}
