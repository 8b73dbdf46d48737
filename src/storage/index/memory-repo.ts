import { IndexNotFoundError } from '../../base/errors.js'
import type { ShardKey } from '../../base/types.js'
import type { FullIndexRepo, ShardIndex } from '../../base/index-types.js'

/** Full indices held in memory, for tests and ephemeral stores. Indices are kept as given (not copied). */
export class MemoryIndexRepo implements FullIndexRepo {
  private readonly indices = new Map<ShardKey, ShardIndex>()

  async add (key: ShardKey, index: ShardIndex): Promise<void> {
    this.indices.set(key, index)
  }

  async get (key: ShardKey): Promise<ShardIndex> {
    const index = this.indices.get(key)
    if (index === undefined) throw new IndexNotFoundError(`index not found for shard ${JSON.stringify(key)}`)
    return index
  }

  async drop (key: ShardKey): Promise<boolean> {
    return this.indices.delete(key)
  }

  async stat (key: ShardKey): Promise<{ exists: boolean, size: number }> {
    const index = this.indices.get(key)
    return index === undefined ? { exists: false, size: 0 } : { exists: true, size: index.size }
  }

  async * keys (): AsyncIterable<ShardKey> {
    // A snapshot: callers may add or drop while iterating.
    yield * [...this.indices.keys()]
  }
}
