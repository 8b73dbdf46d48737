/**
 * adopt --from <node> in a running store: the database moves the dead node's http-mounted
 * shards to this node (one transaction, refused while that node is alive), then this node's
 * loop takes the records in as a restart would (serving → available, interrupted registers run
 * again), so the shards are served and owned here at once, without a restart.
 */
import type { Core } from '../loop/core.js'
import type { ClusterDirectory } from '../../storage/state/cluster.js'
import type { ShardKey } from '../../base/types.js'
import { RestoredShardError, StoreClosedError } from '../../base/errors.js'
import { CODE } from '../../base/errors/codes.js'
import { Shard } from '../shard/shard.js'

export async function adoptShards (core: Core, cluster: ClusterDirectory, from: string): Promise<ShardKey[]> {
  const records = await cluster.adopt(from)
  return await new Promise<ShardKey[]>((resolve, reject) => {
    core.loop.submit({
      control: (tx) => {
        const adopted: ShardKey[] = []
        const again: Shard[] = []
        for (const r of records) {
          if (core.shards.has(r.key)) continue
          const shard = new Shard(r.key, r.url, r.lazy, r.state, undefined, undefined, r.copy)
          if (r.inPlace === true) shard.inPlace = true
          if (r.error !== undefined) shard.error = new RestoredShardError(r.error, r.errorCode ?? CODE.ERR_SHARD_ERRORED)
          if (shard.state === 'serving') shard.state = 'available'
          else if (shard.state === 'recovering') shard.state = 'errored'
          else if (shard.state === 'initializing' || (shard.state === 'new' && !shard.lazy)) {
            // Its index, if the dead node stored it, is in the database: the register finds it.
            shard.state = 'new'
            again.push(shard)
          }
          if (shard.state !== r.state) tx.markDirty(shard)
          core.shards.load(shard.key, shard)
          core.counts[shard.state]++
          adopted.push(shard.key)
        }
        for (const shard of again) core.loop.submit({ op: 'register', key: shard.key, shard, eager: true })
        resolve(adopted)
      },
      abandon: () => { reject(new StoreClosedError()) }
    })
  })
}
