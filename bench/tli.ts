/**
 * bench/tli — the top-level index (multihash → shards) in LevelDB: insertion and lookup
 * rates, each next to a bare LevelDB doing the same physical work in the same run.
 *
 * Insert peer: chained batches of the very same key bytes (the index adds nothing but key
 * construction). Lookup peer: a bare range read over the same keys with the same bounds
 * (the index adds decoding of shard keys), and point gets as the floor of one LevelDB read.
 */
import { join } from 'node:path'
import { randomBytes, createHash } from 'node:crypto'
import { Level } from 'level'
import { LevelTopLevelIndex } from '../src/storage/index/level-top-level.js'
import { envInt, fmt, header, note, now, report, tempDir } from './util.js'

const SHARDS = envInt('TLI_SHARDS', 200)
const PER_SHARD = envInt('TLI_PER_SHARD', 2_500)
const LOOKUPS = envInt('TLI_LOOKUPS', 50_000)

function multihash (seed: Buffer): Uint8Array {
  const digest = createHash('sha256').update(seed).digest()
  const out = new Uint8Array(34)
  out[0] = 0x12
  out[1] = 0x20
  out.set(digest, 2)
  return out
}

async function main (): Promise<void> {
  header('bench/tli: top-level index insert and lookup')
  note('parameters', `${fmt(SHARDS)} shards × ${fmt(PER_SHARD)} multihashes = ${fmt(SHARDS * PER_SHARD)} pairs; ${fmt(LOOKUPS)} lookups; one multihash in 10 is shared by 2 shards`)
  const { dir, cleanup } = await tempDir()
  try {
    const base = randomBytes(16)
    const mhs: Uint8Array[][] = []
    for (let s = 0; s < SHARDS; s++) {
      const list: Uint8Array[] = []
      for (let i = 0; i < PER_SHARD; i++) {
        // Every tenth block also lives in the next shard: lookups return 1 or 2 shards.
        const owner = i % 10 === 0 && s > 0 ? s - 1 : s
        list.push(multihash(Buffer.concat([base, Buffer.from(`${owner}:${i}`)])))
      }
      mhs.push(list)
    }

    const db = new Level(join(dir, 'store'))
    await db.open()
    const index = new LevelTopLevelIndex(db as never)
    let t0 = now()
    for (const [s, list] of mhs.entries()) await index.addMultihashesForShard(`shard-${s}`, list)
    const insertMs = now() - t0
    const pairs = SHARDS * PER_SHARD

    // Peer: the same key bytes, chained batches of the same size, on a bare LevelDB.
    const peer = new Level<Uint8Array, Uint8Array>(join(dir, 'peer'), { keyEncoding: 'view', valueEncoding: 'view' })
    await peer.open()
    const enc = new TextEncoder()
    const empty = new Uint8Array(0)
    const keyBytes = (mh: Uint8Array, shard: string): Uint8Array => {
      const k = enc.encode(shard)
      const out = new Uint8Array(1 + mh.length + k.length)
      out[0] = mh.length
      out.set(mh, 1)
      out.set(k, 1 + mh.length)
      return out
    }
    t0 = now()
    for (const [s, list] of mhs.entries()) {
      let batch = peer.batch()
      for (const mh of list) {
        batch.put(keyBytes(mh, `shard-${s}`), empty)
        if (batch.length >= 8192) { await batch.write(); batch = peer.batch() }
      }
      await batch.write()
    }
    const peerInsertMs = now() - t0
    report('top-level insert', pairs / insertMs * 1000, 'pairs/s', 'bare LevelDB chained batches of the same keys', pairs / peerInsertMs * 1000)

    // mhs holds SHARDS lists of PER_SHARD multihashes.
    const probes = Array.from({ length: LOOKUPS }, (_, i) => mhs[(i * 7919) % SHARDS]![(i * 104729) % PER_SHARD]!)
    let found = 0
    t0 = now()
    for (const mh of probes) found += (await index.shardsForMultihash(mh)).length
    const lookupMs = now() - t0
    let peerFound = 0
    t0 = now()
    for (const mh of probes) {
      const lo = new Uint8Array(1 + mh.length)
      lo[0] = mh.length
      lo.set(mh, 1)
      const hi = new Uint8Array(lo.length + 1)
      hi.set(lo)
      hi[lo.length] = 0xff
      for await (const _ of peer.keys({ gte: lo, lt: hi })) peerFound++
    }
    const peerRangeMs = now() - t0
    t0 = now()
    for (const [i, mh] of probes.entries()) await peer.get(keyBytes(mh, `shard-${(i * 7919) % SHARDS}`))
    const peerGetMs = now() - t0
    note('lookups', `${fmt(found)} shard keys found for ${fmt(LOOKUPS)} multihashes (peer range read found ${fmt(peerFound)})`)
    const lookupsPerSec = LOOKUPS / lookupMs * 1000
    report('top-level lookup (shardsForMultihash)', lookupsPerSec, 'lookups/s', 'bare LevelDB range read, same bounds', LOOKUPS / peerRangeMs * 1000)
    report('top-level lookup (shardsForMultihash)', lookupsPerSec, 'lookups/s',
      'bare LevelDB point get (floor of one read)', LOOKUPS / peerGetMs * 1000)

    t0 = now()
    for (let s = 0; s < SHARDS; s++) await index.removeShard(`shard-${s}`, mhs[s])
    const removeMs = now() - t0
    note('remove', `${fmt(pairs)} pairs removed in ${fmt(removeMs)} ms (${fmt(pairs / removeMs * 1000)} pairs/s)`)
    await db.close()
    await peer.close()
  } finally {
    await cleanup()
  }
}

await main()
