/**
 * A real LevelDB whose chained-batch writes (the state store's group commits) can be held at
 * a gate, to observe what the store does while a commit is in flight. Writes are counted.
 */
import { Level } from 'level'
import type { DAGStoreOptions } from '../../src/engine/options.js'

export interface GatedLevel {
  datastore: NonNullable<DAGStoreOptions['datastore']>
  /** Chained-batch writes started so far. */
  readonly writes: number
  /** Holds every write started from now on until release(). */
  hold: () => void
  release: () => void
  /** Resolves once a write is being held. */
  held: () => Promise<void>
  /** The store does not close a datastore it was given. */
  closeDb: () => Promise<void>
}

export function gatedLevel (path: string): GatedLevel {
  const db = new Level(path)
  let writes = 0
  let gate: Promise<void> | undefined
  let open: (() => void) | undefined
  const onHeld: Array<() => void> = []
  let holding = 0
  const batch = db.batch.bind(db) as (...args: unknown[]) => unknown
  // Only the no-argument form (a chained batch) is the state store's commit.
  ;(db as unknown as { batch: (...args: unknown[]) => unknown }).batch = (...args: unknown[]) => {
    const chained = batch(...args)
    if (args.length > 0) return chained
    const c = chained as { write: (options?: object) => Promise<void> }
    const write = c.write.bind(c)
    c.write = async (options?: object) => {
      writes++
      if (gate !== undefined) {
        holding++
        for (const resolve of onHeld.splice(0)) resolve()
        await gate
        holding--
      }
      await write(options)
    }
    return chained
  }
  return {
    datastore: db as unknown as NonNullable<DAGStoreOptions['datastore']>,
    get writes () { return writes },
    hold: () => { gate ??= new Promise<void>((resolve) => { open = resolve }) },
    release: () => {
      gate = undefined
      open?.()
      open = undefined
    },
    closeDb: async () => { await db.close() },
    held: async () => {
      if (holding > 0) return
      await new Promise<void>((resolve) => { onHeld.push(resolve) })
    }
  }
}
