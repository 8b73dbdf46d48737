/**
 * Shards another node owns, read by this node itself (DESIGN §12): an http/https-mounted shard
 * is read in place through this store's section cache (docs/REMOTE.md), with its full index
 * from the shared database, so it stays served while its owner is down. Every block is
 * hash-verified (a located read always is). Nothing here changes the shard's state: the shard
 * is its owner's alone to fail. A read that fails (the origin changed under the shard, serves
 * other bytes, or cannot be reached) drops what this node cached of the origin (its probe, its
 * cached sections) and throws ShardElsewhereError, so the block is asked of the owner instead.
 */
import type { FullIndexRepo, ShardIndex } from '../../base/index-types.js'
import type { ReadBlockstore, ShardAccessor, ShardKey } from '../../base/types.js'
import { BlockNotFoundError, ShardElsewhereError, isAbortError, type OwnerWhereabouts } from '../../base/errors.js'
import { HttpMount, type RangeProbe } from '../../storage/mount/http.js'
import type { SectionCache } from '../../storage/remote/section-cache.js'
import type { InPlaceReader } from '../../storage/remote/in-place-reader.js'
import type { BlockHolder } from '../../storage/state/cluster.js'
import { readCarLayout } from '../../format/car/layout.js'
import { SectionLengths } from '../../format/index/section-lengths.js'
import { ShardBlockstore } from '../accessor/blockstore.js'

/** How long what an origin answered to the range probe is trusted before it is asked again. */
const PROBE_TTL_MS = 30_000
/** Probes remembered at most (one per origin URL). */
const MAX_PROBES = 1024

function whereabouts (holder: BlockHolder): OwnerWhereabouts {
  return { owner: holder.owner ?? '', advertise: holder.advertise, alive: holder.alive }
}

export function elsewhere (holder: BlockHolder, cause?: unknown): ShardElsewhereError {
  const err = new ShardElsewhereError(`shard ${JSON.stringify(holder.shard)} is held by node ${JSON.stringify(holder.owner)}` +
    (cause === undefined ? '' : ', whose origin this node cannot read in place'), cause === undefined ? undefined : { cause })
  err.where = whereabouts(holder)
  return err
}

export class ForeignShards {
  private readonly probes = new Map<string, { probe: RangeProbe, at: number }>()

  constructor (private readonly sections: SectionCache, private readonly indexRepo: FullIndexRepo) {}

  /**
   * An accessor of another node's http-mounted shard, read in place. @throws ShardElsewhereError
   * (with `cause`) when the origin cannot be read in place: the owner has to answer.
   */
  async open (holder: BlockHolder): Promise<ShardAccessor> {
    const url = holder.url as string
    let reader: InPlaceReader | undefined
    try {
      const mount = new HttpMount(url)
      const probe = await this.probe(mount, url)
      if (!probe.ranged) throw new Error(`the origin cannot be read in place (${probe.reason})`)
      reader = mount.openInPlace(this.sections, probe)
      const index = await this.indexRepo.get(holder.shard)
      const opened = reader
      return await accessor(holder.shard, reader, index, (err) => {
        this.forget(url, opened)
        return elsewhere(holder, err)
      })
    } catch (err) {
      // An origin that does not honour Range keeps its probe (the owner answers until it expires);
      // one that failed once opened is asked again next time.
      if (reader !== undefined) {
        this.forget(url, reader)
        await reader.close().catch(() => {})
      }
      throw elsewhere(holder, err)
    }
  }

  /** The origin changed or failed: neither its probe nor what is cached of that version is used again. */
  private forget (url: string, reader: InPlaceReader): void {
    this.probes.delete(url)
    reader.discardCached()
  }

  private async probe (mount: HttpMount, url: string): Promise<RangeProbe> {
    const known = this.probes.get(url)
    if (known !== undefined && Date.now() - known.at < PROBE_TTL_MS) return known.probe
    const probe = await mount.probeRange()
    if (this.probes.size >= MAX_PROBES) this.probes.delete(this.probes.keys().next().value as string)
    this.probes.set(url, { probe, at: Date.now() })
    return probe
  }
}

/**
 * Reads that fail for any other reason than a block the shard lacks (or the caller's abort) are
 * turned by `failed` into the error to throw: the owner is asked instead.
 */
function fallingBack (store: ReadBlockstore, failed: (err: unknown) => Error): ReadBlockstore {
  const guard = async <T>(read: () => Promise<T>): Promise<T> => {
    try {
      return await read()
    } catch (err) {
      if (err instanceof BlockNotFoundError || isAbortError(err)) throw err
      throw failed(err)
    }
  }
  return {
    has: async (cid) => await store.has(cid),
    get: async (cid) => await guard(async () => await store.get(cid)),
    getSize: async (cid) => await guard(async () => await store.getSize(cid)),
    allKeys: () => store.allKeys()
  }
}

async function accessor (key: ShardKey, reader: InPlaceReader, index: ShardIndex, failed: (err: unknown) => Error): Promise<ShardAccessor> {
  const layout = await readCarLayout(reader, undefined, { size: reader.size })
  const payloadSize = layout.payloadSize ?? reader.size - layout.payloadOffset
  const blocks = new ShardBlockstore({
    reader,
    index,
    payloadOffset: layout.payloadOffset,
    payloadSize: layout.payloadSize,
    located: new SectionLengths(index, payloadSize, layout.payloadOffset)
  })
  const store = fallingBack(blocks, failed)
  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closing ??= reader.close()
    await closing
  }
  return {
    key,
    blockstore: () => store,
    reader: (start = 0) => reader.stream(start),
    close,
    [Symbol.asyncDispose]: close
  }
}
