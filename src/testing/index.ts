/**
 * `dagstore/testing`: the conformance suites the project runs its own implementations
 * through, for anyone writing another (a mount, an index repo, a state backend...). Each
 * suite takes the function that registers a test in your runner — uvu's `suite()`,
 * node:test's `test`, mocha's `it` — and asserts with node:assert:
 *
 *   import { test } from 'node:test'
 *   import { mountConformance } from 'dagstore/testing'
 *   mountConformance(test, async () => ({ mount: new MyMount(...), expected: bytes, cleanup: async () => {} }))
 */
export type { RegisterTest } from './harness.js'
export { mountConformance, type MountUnderTest } from './mount-conformance.js'
export {
  readBlockstoreConformance, interfaceBlockstoreReadConformance,
  type ReadBlockstoreFactory, type CarCase, type Opened
} from './read-blockstore-conformance.js'
export { shardIndexConformance, type ShardIndexFactory } from './shard-index-conformance.js'
export { fullIndexRepoConformance, sampleIndex, type RepoUnderTest } from './full-index-repo-conformance.js'
export { topLevelIndexConformance, type TopLevelIndexUnderTest } from './top-level-index-conformance.js'
export { stateStoreConformance, type StateStoreFactory } from './state-store-conformance.js'
export type { StateStore } from '../storage/state/state-store.js'
export type { ShardRecord } from '../storage/state/record.js'
