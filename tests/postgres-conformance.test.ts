// The StateStore, FullIndexRepo and TopLevelIndex conformance suites on PostgreSQL: the seams
// of postgresBackend() against a throwaway server (tests/helpers/postgres.ts). Each suite has a
// database of its own; each check starts from empty tables.
import pg from 'pg'
import { postgresBackend } from '../src/postgres.js'
import type { BackendSeams } from '../src/storage/state/backend.js'
import type { StateStore } from '../src/storage/state/state-store.js'
import { fullIndexRepoConformance, stateStoreConformance, topLevelIndexConformance } from '../src/testing/index.js'
import { runConformance } from './helpers/conformance.js'
import { postgresAvailable, postgresServer } from './helpers/postgres.js'

/** One database for a suite, made on first use; `empty()` clears what a check left. */
function suiteDatabase (label: string): { url: () => Promise<string>, empty: () => Promise<void> } {
  let url: Promise<string> | undefined
  const get = async (): Promise<string> => await (url ??= postgresServer().then(async (s) => await s.freshDatabase(label)))
  return {
    url: get,
    empty: async () => {
      const client = new pg.Client({ connectionString: await get() })
      await client.connect()
      try {
        await client.query('DELETE FROM dagstore_blocks; DELETE FROM dagstore_indices; DELETE FROM dagstore_shards; DELETE FROM dagstore_tombstones')
      } finally {
        await client.end()
      }
    }
  }
}

interface Opened { seams: BackendSeams, close: () => Promise<void> }

async function open (url: string, node: string): Promise<Opened> {
  const backend = postgresBackend({ url, node })
  const seams = await backend.open()
  return { seams, close: async () => { await backend.close() } }
}

if (postgresAvailable('PostgreSQL conformance')) {
  {
    const db = suiteDatabase('state_store')
    const opened = new WeakMap<StateStore, Opened & { node: string }>()
    let n = 0
    const openStore = async (node: string): Promise<StateStore> => {
      const o = await open(await db.url(), node)
      opened.set(o.seams.stateStore, { ...o, node })
      return o.seams.stateStore
    }
    const of = (store: StateStore): Opened & { node: string } => {
      const o = opened.get(store)
      if (o === undefined) throw new Error('a store this factory did not open')
      return o
    }
    runConformance('StateStore conformance: PostgreSQL', (test) => {
      stateStoreConformance(test, {
        open: async () => await openStore(`node-${++n}`),
        // A restart: a new pool, the same node.
        reopen: async (store) => {
          const { node, close } = of(store)
          await close()
          return await openStore(node)
        },
        close: async (store) => {
          await of(store).close()
          await db.empty()
        }
      })
    })
  }

  {
    const db = suiteDatabase('full_index_repo')
    runConformance('PostgreSQL: FullIndexRepo conformance', (test) => {
      fullIndexRepoConformance(test, async () => {
        const o = await open(await db.url(), 'node-a')
        return { repo: o.seams.indexRepo, cleanup: async () => { await o.close(); await db.empty() } }
      })
    })
  }

  {
    const db = suiteDatabase('top_level_index')
    runConformance('TopLevelIndex conformance: PostgreSQL', (test) => {
      topLevelIndexConformance(test, async () => {
        const o = await open(await db.url(), 'node-a')
        return { index: o.seams.topLevelIndex, cleanup: async () => { await o.close(); await db.empty() } }
      })
    })
  }
}
