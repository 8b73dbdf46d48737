/**
 * Destroys whose cleanup is not finished, per key. A destroy deletes the shard's record and
 * sets its key's tombstone in one commit; the cleanup (top-level entries, full index,
 * transients) runs after that commit, and the tombstone is cleared once it is done. A kill in
 * between leaves the tombstone, and the next start finishes the cleanup before anything else
 * touches the key (docs/CONTRACT.md, "Destroy is crash-safe").
 *
 * Loop-owned: only loop tasks call begin/end, so their counts and the drains' tombstone
 * writes are ordered the same way.
 */
import type { Drain } from './drain.js'
import type { ShardKey } from '../../base/types.js'

export class Tombstones {
  /** Cleanups begun and not ended, per key: the tombstone is cleared only when none is left. */
  readonly #running = new Map<ShardKey, number>()
  /** Keys whose tombstone stays because a cleanup failed: the next work on the key finishes it. */
  readonly #unfinished = new Set<ShardKey>()

  /** A destroy of `key` commits with `tx`: its tombstone is set in the same batch. */
  begin (key: ShardKey, tx: Drain): void {
    this.#running.set(key, (this.#running.get(key) ?? 0) + 1)
    tx.tombstones.set(key, true)
  }

  /**
   * A cleanup of `key` ended; `ok` when it removed everything of the key. `counted`: it is one
   * that begin() counted (not a late finish of an unfinished one). True when the tombstone is
   * cleared with `tx`.
   */
  end (key: ShardKey, ok: boolean, tx: Drain, counted: boolean): boolean {
    const running = (this.#running.get(key) ?? 0) - (counted ? 1 : 0)
    if (running > 0) this.#running.set(key, running)
    else this.#running.delete(key)
    // Every cleanup removes everything stored under the key, so one success covers earlier failures.
    if (ok) this.#unfinished.delete(key)
    else this.#unfinished.add(key)
    if (!ok || running > 0) return false
    tx.tombstones.set(key, false)
    return true
  }

  /** A tombstone whose cleanup failed (now, or at start): remembered until a cleanup succeeds. */
  markUnfinished (key: ShardKey): void {
    this.#unfinished.add(key)
  }

  /** Whether work on `key` must first finish the cleanup of a destroyed shard of the same key. */
  isUnfinished (key: ShardKey): boolean {
    return this.#unfinished.has(key)
  }
}
