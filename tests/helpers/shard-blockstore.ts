import { ShardBlockstore } from '../../src/engine/accessor/blockstore.js'
import { indexCar } from '../../src/format/car/indexer.js'
import { readCarLayout } from '../../src/format/car/layout.js'
import type { ReadBlockstore } from '../../src/base/types.js'
import type { Opened } from '../../src/testing/index.js'
import { bytesReader, type TestReaderOptions } from './file-reader.js'

/** The accessor's blockstore without a store: CAR bytes in memory, indexed by the real indexer. */
export async function shardBlockstoreOver (car: Uint8Array, options: TestReaderOptions = {}): Promise<Opened<ReadBlockstore>> {
  const reader = bytesReader(car, options)
  const layout = await readCarLayout(reader)
  const { index } = await indexCar(reader.stream())
  const blockstore = new ShardBlockstore({ reader, index, payloadOffset: layout.payloadOffset, payloadSize: layout.payloadSize })
  return { blockstore, close: async () => { await reader.close() } }
}
