/**
 * The cluster's shards for listings (GET /shards, `dagstore ls` on a clustered store): this
 * node's shards described live, as in one process; every other node's from its record in the
 * database, which is that owner's restart form (the state it last persisted, serving shown as
 * available, no refs, its error if it failed).
 */
import { RestoredShardError } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'
import type { ShardDescription, ShardKey } from '../../base/types.js'
import type { ClusterDirectory, ClusterListQuery, ClusterShardEntry } from '../../storage/state/cluster.js'

export interface ClusterListing {
  shards: ShardDescription[]
  next?: ShardKey
}

/** Another node's shard as its record says. */
export function describeRecord (entry: ClusterShardEntry): ShardDescription {
  const { record } = entry
  const out: ShardDescription = { key: record.key, state: record.state, refs: 0, url: record.url, node: entry.owner }
  if (record.error !== undefined) out.error = new RestoredShardError(record.error, record.errorCode ?? CODE.ERR_SHARD_ERRORED)
  if (record.url.startsWith('file:')) out.placement = 'local'
  else if (record.inPlace === true) out.placement = 'in-place'
  else if (record.transient !== undefined) out.placement = 'copy'
  if (record.copy !== undefined) out.copy = record.copy
  if (entry.blocks !== undefined) out.blocks = entry.blocks
  return out
}

/** What a listing needs of the local store. */
export interface LocalDescriber {
  has: (key: ShardKey) => boolean
  describe: (key: ShardKey) => Promise<ShardDescription>
}

export async function listClusterShards (local: LocalDescriber, cluster: ClusterDirectory, query: ClusterListQuery): Promise<ClusterListing> {
  const page = await cluster.listShards(query)
  const shards = await Promise.all(page.shards.map(async (entry) => {
    if (entry.owner !== cluster.node || !local.has(entry.record.key)) return describeRecord(entry)
    try {
      const live = await local.describe(entry.record.key)
      // The database has the restart form; this node knows better, and the filter is about now.
      return query.state === undefined || live.state === query.state ? live : undefined
    } catch (err) {
      if (codeOf(err) === CODE.ERR_SHARD_UNKNOWN) return undefined // destroyed since
      throw err
    }
  }))
  const out: ClusterListing = { shards: shards.filter((s): s is ShardDescription => s !== undefined) }
  if (page.next !== undefined) out.next = page.next
  return out
}
