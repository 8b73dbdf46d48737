/**
 * A storage backend: what stands behind the store's three storage seams when it is not the
 * embedded default (LevelDB and index files under `dir`) — the PostgreSQL backend of
 * `dagstore/postgres`, say. The store opens it in start() and closes it in close(); its `dir`
 * then holds the transients only.
 */
import type { FullIndexRepo, TopLevelIndex } from '../../base/index-types.js'
import type { StateStore } from './state-store.js'

export interface BackendSeams {
  stateStore: StateStore
  indexRepo: FullIndexRepo
  topLevelIndex: TopLevelIndex
}

export interface StoreBackend {
  /** Connects (and prepares what it needs, such as a schema); the seams are usable once it fulfils. */
  open: (options?: { signal?: AbortSignal }) => Promise<BackendSeams>
  /** Releases what open() took. Idempotent; a closed backend may be opened again. */
  close: () => Promise<void>
}
