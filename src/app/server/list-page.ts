/**
 * The shards of one GET /shards page, gathered in chunks. One listShards call examines a
 * bounded number of keys, so a `state` that few shards match can leave a call short of the
 * limit; the page then takes further calls, yielding the event loop between them (other
 * requests go on), until it is full, the listing ends, or GATHER_BUDGET_MS has passed.
 */
import { setImmediate as yieldLoop } from 'node:timers/promises'
import type { DAGStore } from '../../engine/store.js'
import type { ListShardsOptions, ShardPage } from '../../base/types.js'

/** Wall time a page may spend gathering before it answers what it has, with a `next`. */
const GATHER_BUDGET_MS = 20

export async function gatherPage (store: DAGStore, query: ListShardsOptions & { limit: number }): Promise<ShardPage> {
  const deadline = performance.now() + GATHER_BUDGET_MS
  const page = store.listShards(query)
  while (page.next !== undefined && page.shards.length < query.limit && performance.now() < deadline) {
    await yieldLoop()
    const more = store.listShards({ ...query, after: page.next, limit: query.limit - page.shards.length })
    page.shards.push(...more.shards)
    if (more.next === undefined) delete page.next
    else page.next = more.next
  }
  return page
}
