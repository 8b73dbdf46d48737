/**
 * The loop's shard table: a Map by key that also keeps its keys in order (a B+ tree of the
 * keys alone), so a listing can start anywhere and read a page without sorting or copying
 * every key. Order: JS string order (UTF-16 code units), the order of `Array.prototype.sort()`.
 */
import btree from 'sorted-btree'
import type { ShardKey } from '../../base/types.js'
import type { Shard } from './shard.js'

// A CommonJS module: its class is the `default` of what Node's ESM import hands over.
const BTree = btree.default

const byCodeUnits = (a: ShardKey, b: ShardKey): number => a < b ? -1 : a > b ? 1 : 0

export class ShardMap extends Map<ShardKey, Shard> {
  // Values stay undefined: the tree then stores keys only (it shares one empty value array).
  readonly #order = new BTree<ShardKey, undefined>(undefined, byCodeUnits)

  override set (key: ShardKey, shard: Shard): this {
    super.set(key, shard)
    this.#order.set(key, undefined)
    return this
  }

  override delete (key: ShardKey): boolean {
    this.#order.delete(key)
    return super.delete(key)
  }

  override clear (): void {
    this.#order.clear()
    super.clear()
  }

  /** Keys in order, from `first` (included) on. */
  keysFrom (first: ShardKey): IterableIterator<ShardKey> {
    return this.#order.keys(first)
  }

  /** Keys in order, from the first one after `after` (from the first key when undefined). */
  * keysAfter (after: ShardKey | undefined): Generator<ShardKey, void, undefined> {
    const keys = this.#order.keys(after)
    let first = true
    for (const key of keys) {
      // keys(lowest) starts at `lowest` itself when present.
      if (first && key === after) {
        first = false
        continue
      }
      first = false
      yield key
    }
  }
}
