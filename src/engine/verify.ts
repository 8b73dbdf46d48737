/**
 * DAGStore.verifyShard: re-reads a shard's bytes with every block hashed against its CID and
 * compares what it finds with the stored full index and the top-level entries; with `repair`,
 * rewrites both when the data is sound and they disagree with it.
 */
import { raiseBarrier, type Core } from './loop/core.js'
import { multihashesOf, removeShardIndices, storeShardIndices } from './loop/cleanup.js'
import type { Shard } from './shard/shard.js'
import type { ShardIndex } from '../base/index-types.js'
import type { MountReader } from '../base/mount-types.js'
import type { ShardAccessor, ShardKey, VerifyOpts, VerifyProblem, VerifyReport } from '../base/types.js'
import { ShardUnknownError } from '../base/errors.js'
import { codeOf, toError } from '../base/errors/inspect.js'
import { CODE, errorCodeInfo } from '../base/errors/codes.js'

/** Problems of one kind listed one by one; past it, one more line counts the rest. */
const LISTED_PER_KIND = 10

type Acquire = (key: ShardKey, signal: AbortSignal | undefined) => Promise<ShardAccessor>

/** Fatal for the call rather than a finding about the shard. */
const THROWN: ReadonlySet<string> = new Set([CODE.ABORT_ERR, CODE.ERR_STORE_CLOSED, CODE.ERR_SHARD_UNKNOWN])

class Findings {
  readonly problems: VerifyProblem[] = []
  private readonly counts = new Map<string, number>()

  add (code: string, message: string): void {
    const n = (this.counts.get(code) ?? 0) + 1
    this.counts.set(code, n)
    if (n <= LISTED_PER_KIND) this.problems.push({ code, message })
  }

  /** Appends the count of every kind that had more problems than were listed. */
  summarize (): VerifyProblem[] {
    for (const [code, n] of this.counts) {
      if (n > LISTED_PER_KIND) this.problems.push({ code, message: `${n - LISTED_PER_KIND} more of this kind (${n} in all)` })
    }
    return this.problems
  }

  get empty (): boolean { return this.counts.size === 0 }
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export async function verifyShard (core: Core, shard: Shard, acquire: Acquire, opts: VerifyOpts): Promise<VerifyReport> {
  const { key } = shard
  const findings = new Findings()
  // An acquire rebuilds a missing index (jobs.ts): whether it was there must be seen before.
  const wasAvailable = shard.info().state === 'available'
  const before = await core.indexRepo.stat(key)
  if (wasAvailable && !before.exists) {
    findings.add(CODE.ERR_INDEX_NOT_FOUND, 'the shard had no full index (acquiring it to verify rebuilt one from its data)')
  }
  let accessor: ShardAccessor
  try {
    // Held until the end: a destroy meanwhile is refused, or with drain waits for it.
    accessor = await acquire(key, opts.signal)
  } catch (err) {
    const code = codeOf(err)
    if (code === undefined || THROWN.has(code)) throw err
    findings.add(code, `cannot read the shard: ${toError(err).message}`)
    return { key, ok: false, blocks: 0, problems: findings.summarize(), repaired: false }
  }
  try {
    let fromData: ShardIndex
    try {
      fromData = await core.indexer(key, streamOf(accessor), opts.signal ?? new AbortController().signal, { verifyHashes: true })
    } catch (err) {
      const code = codeOf(err)
      if (code === CODE.ABORT_ERR || code === CODE.ERR_STORE_CLOSED) throw err
      // Bad data (or bytes that could not be read): nothing to repair from, so the indices stay.
      const finding = dataFinding(err)
      findings.add(finding.code, finding.message)
      return { key, ok: false, blocks: 0, problems: findings.summarize(), repaired: false }
    }
    const indexSound = await compareFullIndex(core, key, fromData, findings)
    await compareTopLevel(core, key, fromData, findings)
    const problems = findings.summarize()
    let repaired = false
    if (opts.repair === true && !findings.empty) {
      await rewriteIndices(core, shard, fromData, indexSound)
      repaired = true
    }
    return { key, ok: findings.empty, blocks: fromData.size, problems, repaired }
  } finally {
    await accessor.close()
  }
}

/**
 * What a failed re-read of the data says about the shard. A block that does not hash to its
 * CID is ERR_HASH_MISMATCH: the indexer reports it as a bad CAR (ERR_INVALID_CAR) whose cause
 * is the mismatch, and ERR_INVALID_CAR stays for damage to the CAR's structure.
 */
function dataFinding (err: unknown): VerifyProblem {
  const cause = (err as { cause?: unknown } | null | undefined)?.cause
  if (codeOf(err) === CODE.ERR_INVALID_CAR && codeOf(cause) === CODE.ERR_HASH_MISMATCH) {
    return { code: CODE.ERR_HASH_MISMATCH, message: toError(cause).message }
  }
  const code = codeOf(err)
  const registered = code !== undefined && errorCodeInfo(code) !== undefined
  return { code: registered ? code : CODE.ERR_INTERNAL, message: toError(err).message }
}

/** The shard's bytes from byte 0, as the indexer reads them: one sequential pass. */
function streamOf (accessor: ShardAccessor): MountReader {
  return { size: undefined, stream: (start?: number) => accessor.reader(start), close: async () => {} }
}

/** Whether the stored full index holds exactly the (multihash, offset) pairs of the data. */
async function compareFullIndex (core: Core, key: ShardKey, fromData: ShardIndex, findings: Findings): Promise<boolean> {
  let stored: ShardIndex
  try {
    // From storage: the repo's in-memory copy would hide damage done to the files meanwhile.
    stored = await core.indexRepo.get(key, { fromStorage: true })
  } catch (err) {
    const code = codeOf(err) ?? CODE.ERR_INDEX_MISMATCH
    findings.add(code, `cannot read the stored full index: ${toError(err).message}`)
    return false
  }
  let sound = true
  for (const { multihash, offset } of fromData) {
    const at = stored.get(multihash)
    if (at === offset) continue
    sound = false
    findings.add(CODE.ERR_INDEX_MISMATCH, at === undefined
      ? `block ${hex(multihash)} at payload offset ${offset} is missing from the full index`
      : `block ${hex(multihash)} is at payload offset ${offset}, the full index says ${at}`)
  }
  for (const { multihash, offset } of stored) {
    if (fromData.get(multihash) !== undefined) continue
    sound = false
    findings.add(CODE.ERR_INDEX_MISMATCH, `the full index lists block ${hex(multihash)} at payload offset ${offset}, which the shard does not hold`)
  }
  return sound
}

async function compareTopLevel (core: Core, key: ShardKey, fromData: ShardIndex, findings: Findings): Promise<void> {
  for (const multihash of multihashesOf(fromData)) {
    const keys = await core.topLevelIndex.shardsForMultihash(multihash)
    if (!keys.includes(key)) findings.add(CODE.ERR_TOP_LEVEL_MISSING, `block ${hex(multihash)} is not mapped to the shard in the top-level index`)
  }
}

/**
 * Under the key's barrier, like an index rebuild on acquire: new acquires wait for it, and a
 * shard destroyed meanwhile gets nothing written back. Top-level entries are dropped before
 * the full index and added after it, so they stay a subset of it throughout.
 */
async function rewriteIndices (core: Core, shard: Shard, fromData: ShardIndex, indexSound: boolean): Promise<void> {
  const { key } = shard
  await raiseBarrier(core, key, async () => {
    if (core.shards.get(key) !== shard) throw new ShardUnknownError(`shard ${JSON.stringify(key)} was destroyed`)
    if (indexSound) {
      await core.topLevelIndex.addMultihashesForShard(key, multihashesOf(fromData))
      return
    }
    await removeShardIndices(core, key)
    await storeShardIndices(core, key, fromData)
    // Pooled readers keep the index they loaded: the next acquire loads the rewritten one.
    core.readers.invalidate(key)
  }).start()
}
