/**
 * The loop's shard table: a Map by key that also keeps its keys in order, so a listing can
 * start anywhere and read a page without sorting or copying every key. Order: JS string order
 * (UTF-16 code units), the order of `Array.prototype.sort()`.
 *
 * Two ordered sets, merged when read: the keys a restart loaded in ascending order, in a plain
 * array (4 bytes a key, one push each), and every other key in a B+ tree of the keys alone
 * (`sorted-btree`). Inserting a million restored keys into the tree one by one was a third of
 * start-up. A deleted key stays in the array until the next restart; reads skip keys the Map no
 * longer has, and a key in both sets (destroyed, then registered again) is read once.
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
  /** Keys loaded at start-up in ascending order. */
  readonly #loaded: ShardKey[] = []

  override set (key: ShardKey, shard: Shard): this {
    super.set(key, shard)
    this.#order.set(key, undefined)
    return this
  }

  /** Start-up (each key once): a key in ascending order after the previous one costs one array slot. */
  load (key: ShardKey, shard: Shard): void {
    const last = this.#loaded.at(-1)
    if (last !== undefined && !(last < key)) {
      this.set(key, shard)
      return
    }
    super.set(key, shard)
    this.#loaded.push(key)
  }

  override delete (key: ShardKey): boolean {
    this.#order.delete(key)
    return super.delete(key)
  }

  override clear (): void {
    this.#order.clear()
    this.#loaded.length = 0
    super.clear()
  }

  /** Keys in order, from `first` (included) on. */
  keysFrom (first: ShardKey): IterableIterator<ShardKey> {
    return this.merged(first, true)
  }

  /** Keys in order, from the first one after `after` (from the first key when undefined). */
  keysAfter (after: ShardKey | undefined): IterableIterator<ShardKey> {
    return after === undefined ? this.merged(undefined, true) : this.merged(after, false)
  }

  private * merged (from: ShardKey | undefined, inclusive: boolean): Generator<ShardKey, undefined, undefined> {
    const loaded = this.#loaded
    let i = from === undefined ? 0 : firstAtOrAfter(loaded, from)
    if (!inclusive && loaded[i] === from) i++
    const tree = this.#order.keys(from)
    let next = tree.next()
    if (!inclusive && !next.done && next.value === from) next = tree.next()
    for (;;) {
      const a = loaded[i]
      const b = next.done === true ? undefined : next.value
      let key: ShardKey
      if (a === undefined && b === undefined) return
      if (b === undefined || (a !== undefined && a < b)) {
        key = a as ShardKey
        i++
      } else {
        key = b
        next = tree.next()
        if (a === b) i++
      }
      if (super.has(key)) yield key
    }
  }
}

/** The position of the first key ≥ `key` in the ascending `keys`. */
function firstAtOrAfter (keys: readonly ShardKey[], key: ShardKey): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((keys[mid] as ShardKey) < key) lo = mid + 1
    else hi = mid
  }
  return lo
}
