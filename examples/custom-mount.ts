// A mount of your own: shards whose bytes come from wherever you keep them — here, CARs held
// in a Map and named by `mem:<name>` URLs. The store only needs a Mount (fetch, info, stat,
// serialize); a MountRegistry entry for the scheme lets it re-create the mount from the
// persisted URL after a restart.
//
//   npm run build && node dist/examples/custom-mount.js
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CarWriter } from '@ipld/car/writer'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { DAGStore, MountRegistry, type Mount, type MountReader } from 'dagstore'

/** Where the CARs live; a real mount would talk to a disk, a database or a remote service. */
const cars = new Map<string, Uint8Array>()

/**
 * A sequential mount: it can only stream its bytes, so the store copies the shard into its
 * transients folder once (while indexing it in the same pass) and serves reads from the copy.
 * A mount that can also read at any position (info().random and MountReader.read) is read in
 * place instead, like FileMount.
 */
class MapMount implements Mount {
  constructor (readonly name: string) {}

  info (): ReturnType<Mount['info']> {
    return { kind: 'remote', sequential: true, seek: false, random: false }
  }

  async stat (): ReturnType<Mount['stat']> {
    const bytes = cars.get(this.name)
    return bytes === undefined ? { exists: false, ready: true } : { exists: true, size: bytes.length, ready: true }
  }

  async fetch (signal?: AbortSignal): Promise<MountReader> {
    signal?.throwIfAborted()
    const bytes = cars.get(this.name)
    if (bytes === undefined) throw new Error(`no CAR named ${this.name}`)
    return {
      size: bytes.length,
      stream: async function * (start = 0) {
        for (let at = start; at < bytes.length; at += 64 * 1024) yield bytes.subarray(at, at + 64 * 1024)
      },
      close: async () => {}
    }
  }

  serialize (): URL {
    return new URL(`mem:${encodeURIComponent(this.name)}`)
  }
}

/** A CAR of raw blocks, written with @ipld/car. */
async function makeCar (texts: string[]): Promise<{ car: Uint8Array, cids: CID[] }> {
  const blocks = await Promise.all(texts.map(async (text) => {
    const bytes = new TextEncoder().encode(text)
    return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
  }))
  const [root] = blocks
  if (root === undefined) throw new Error('a CAR needs at least one block')
  const { writer, out } = CarWriter.create([root.cid])
  const chunks: Uint8Array[] = []
  const collected = (async () => { for await (const chunk of out) chunks.push(chunk) })()
  for (const block of blocks) await writer.put(block)
  await writer.close()
  await collected
  return { car: Buffer.concat(chunks), cids: blocks.map((b) => b.cid) }
}

const texts = ['hello', 'from', 'a custom mount']
const { car, cids } = await makeCar(texts)
cars.set('greetings', car)

const mounts = new MountRegistry() // file:, bytes:, http: and https: are built in
mounts.register('mem', (url) => new MapMount(decodeURIComponent(url.pathname)))

const dir = await mkdtemp(join(tmpdir(), 'dagstore-example-'))
try {
  let store = new DAGStore({ dir, mounts })
  await store.start()
  await store.register('greetings', new MapMount('greetings'))
  const described = await store.describeShard('greetings')
  console.log(`registered ${described.url}: ${described.blocks ?? 0} blocks, copied to a ${described.size ?? 0}-byte transient`)
  await store.close()

  // A restart: the shard comes back from its persisted URL, through the registry.
  store = new DAGStore({ dir, mounts })
  await store.start()
  try {
    const accessor = await store.acquire('greetings')
    try {
      for (const cid of cids) {
        const bytes = await accessor.blockstore().get(cid)
        const digest = await sha256.digest(bytes)
        if (!Buffer.from(digest.bytes).equals(cid.multihash.bytes)) throw new Error(`${cid.toString()}: bytes do not match the CID`)
        console.log(`${cid.toString()}: "${new TextDecoder().decode(bytes)}" (hash verified)`)
      }
    } finally {
      await accessor.close()
    }
  } finally {
    await store.close()
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
