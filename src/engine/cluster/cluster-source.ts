/**
 * The all-shards blockstore's view of a cluster (DESIGN §12): a CID's holders come from the
 * shared database in one query, ordered this node's shards first, then other nodes' shards it
 * can read itself (http/https mounts, in place), then the rest, which only their owner can
 * serve: acquiring one of those throws ShardElsewhereError naming the owner and whether it is
 * alive, for the gateway's one proxied hop. A block that only such an owner can read is fetched
 * from it on its own by fetchElsewhere (the blocks of a DAG spread over several nodes' files).
 */
import type { CID } from 'multiformats/cid'
import type { ShardIndex } from '../../base/index-types.js'
import type { ShardAccessor, ShardInfo, ShardKey } from '../../base/types.js'
import { ShardUnknownError, type BlockNotFoundError } from '../../base/errors.js'
import type { ShardSource } from '../../read/all-shards.js'
import { isReachableUrl, type BlockHolder, type ClusterDirectory } from '../../storage/state/cluster.js'
import { elsewhere, type ForeignShards } from './foreign-shards.js'
import type { OwnerBlocks } from './owner-blocks.js'
import { ownerToAsk } from './whereabouts.js'

/** Other nodes' holders remembered between a lookup and the acquire that follows it. */
const MAX_REMEMBERED = 4096

/** What the cluster source needs of the local store (DAGStore provides it). */
export interface LocalShards {
  has: (key: ShardKey) => boolean
  acquire: (key: ShardKey) => Promise<ShardAccessor>
  getShardInfo: (key: ShardKey) => ShardInfo
  allShardsInfo: () => Map<ShardKey, ShardInfo>
  getIterableIndex: (key: ShardKey) => Promise<ShardIndex>
}

function rank (holder: BlockHolder, self: string): number {
  if (holder.owner === self) return 0
  return isReachableUrl(holder.url) ? 1 : 2
}

export class ClusterShardSource implements ShardSource {
  private readonly foreignHolders = new Map<ShardKey, BlockHolder>()

  constructor (private readonly local: LocalShards, private readonly cluster: ClusterDirectory, private readonly foreign: ForeignShards,
    private readonly owners: OwnerBlocks) {}

  async shardsContainingCid (cid: CID): Promise<ShardKey[]> {
    const holders = (await this.cluster.locate(cid.multihash.bytes)).filter((h) => h.owner !== undefined)
    const self = this.cluster.node
    holders.sort((a, b) => rank(a, self) - rank(b, self))
    for (const h of holders) {
      if (h.owner === self) continue
      this.foreignHolders.delete(h.shard)
      if (this.foreignHolders.size >= MAX_REMEMBERED) this.foreignHolders.delete(this.foreignHolders.keys().next().value as string)
      this.foreignHolders.set(h.shard, h)
    }
    return holders.map((h) => h.shard)
  }

  async acquire (key: ShardKey): Promise<ShardAccessor> {
    if (this.local.has(key)) return await this.local.acquire(key)
    const holder = this.foreignHolders.get(key)
    if (holder === undefined) throw new ShardUnknownError(`shard ${JSON.stringify(key)} not found`)
    if (!isReachableUrl(holder.url)) throw elsewhere(holder)
    return await this.foreign.open(holder)
  }

  /**
   * The block from the owner of a holder only its owner can read (named by the ShardElsewhereError
   * among the holders' failures), hash-verified; undefined when no holder is another node's.
   * @throws OwnerUnavailableError when that owner is down or does not answer in time
   */
  async fetchElsewhere (cid: CID, failure: BlockNotFoundError): Promise<Uint8Array | undefined> {
    const where = ownerToAsk(failure.cause)
    if (where === undefined) return undefined
    return await this.owners.get(cid, where)
  }

  getShardInfo (key: ShardKey): ShardInfo {
    return this.local.getShardInfo(key)
  }

  allShardsInfo (): Map<ShardKey, ShardInfo> {
    return this.local.allShardsInfo()
  }

  /**
   * Only this node's shards: the blockstore then finds a block in a cached shard without asking
   * the database. Another node's shard may be destroyed there at any time, so its cached
   * accessor is used only for blocks the database still lists it for.
   */
  async getIterableIndex (key: ShardKey): Promise<ShardIndex> {
    if (this.local.has(key)) return await this.local.getIterableIndex(key)
    throw new ShardUnknownError(`shard ${JSON.stringify(key)} is another node's`)
  }
}
