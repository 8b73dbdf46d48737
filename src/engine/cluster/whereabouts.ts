/** Which node to ask for a block that no shard this node can read holds. */
import { ShardElsewhereError, type OwnerWhereabouts } from '../../base/errors.js'

/**
 * The owner of the first shard in `err` (or its causes) that only its owner can read; among
 * several holders' owners, one that is alive and reachable first.
 */
export function ownerToAsk (err: unknown): OwnerWhereabouts | undefined {
  const seen = new Set<unknown>()
  const walk = (e: unknown): OwnerWhereabouts | undefined => {
    if (e === null || typeof e !== 'object' || seen.has(e)) return undefined
    seen.add(e)
    if (e instanceof ShardElsewhereError && e.where !== undefined) return e.where
    if (e instanceof AggregateError) {
      const found = e.errors.map(walk).filter((w): w is OwnerWhereabouts => w !== undefined)
      return found.find((w) => w.alive && w.advertise !== undefined) ?? found[0]
    }
    return walk((e as { cause?: unknown }).cause)
  }
  return walk(err)
}
