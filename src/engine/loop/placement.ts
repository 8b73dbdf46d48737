/**
 * Where a remote shard's bytes are read from: a transient copy, or the origin itself by ranged
 * requests through the store's section cache (docs/REMOTE.md). Decided per shard from its copy
 * policy and what the origin answers to one ranged GET; the answer is kept with the mount
 * object, so after a restart it is re-learnt by one request on first use.
 */
import type { Core } from './core.js'
import type { Shard } from '../shard/shard.js'
import type { Mount, MountReader } from '../../base/mount-types.js'
import type { CopyPolicy } from '../../base/types.js'
import { RangeNotSupportedError } from '../../base/errors.js'
import type { SectionCache } from '../../storage/remote/section-cache.js'
import type { RangeProbe, RangedProbe } from '../../storage/mount/http.js'

/** A mount that can be read in place (HttpMount; a custom mount may offer the same two methods). */
interface RangeCapable extends Mount {
  probeRange: (signal?: AbortSignal) => Promise<RangeProbe>
  openInPlace: (cache: SectionCache, probe: RangedProbe) => MountReader
}

function rangeCapable (mount: Mount): mount is RangeCapable {
  const m = mount as Partial<RangeCapable>
  return typeof m.probeRange === 'function' && typeof m.openInPlace === 'function'
}

/** What the origin answered, per mount object (ranged or not): dropped on recovery (which re-learns it). */
const probes = new WeakMap<Mount, RangeProbe>()

function policyOf (core: Core, shard: Shard): CopyPolicy {
  return shard.copy ?? core.copyPolicy
}

/**
 * A reader of the shard in place, or undefined when it is to be copied (policy 'always', a
 * local or non-ranged mount, a transient already there, or an origin that ignores Range under
 * 'auto'). Under 'never' an origin that cannot be read in place is RangeNotSupportedError.
 */
export async function openInPlace (
  core: Core, shard: Shard, mount: Mount, transient: string | undefined, signal: AbortSignal
): Promise<MountReader | undefined> {
  const policy = policyOf(core, shard)
  if (policy === 'always' || transient !== undefined) return undefined
  if (!rangeCapable(mount)) {
    if (policy === 'never' && mount.info().kind === 'remote') {
      throw new RangeNotSupportedError(`shard ${JSON.stringify(shard.key)} has copy 'never', but its mount cannot be read by ranged requests`)
    }
    return undefined
  }
  let probe = probes.get(mount)
  if (probe === undefined) {
    probe = await mount.probeRange(signal)
    probes.set(mount, probe)
  }
  if (!probe.ranged) {
    if (policy === 'never') {
      throw new RangeNotSupportedError(`shard ${JSON.stringify(shard.key)} has copy 'never', but its origin cannot be read in place (${probe.reason})`)
    }
    return undefined
  }
  return withHead(mount.openInPlace(core.sections, probe), probe.head)
}

/** Reads inside the bytes the probe already holds (a CAR's header) cost no request. */
function withHead (reader: MountReader, head: Uint8Array): MountReader {
  const read = reader.read
  if (read === undefined) return reader
  return {
    get size () { return reader.size },
    stream: (start?: number) => reader.stream(start),
    read: async (position: number, length: number) => position + length <= head.length
      ? head.slice(position, position + length)
      : await read.call(reader, position, length),
    close: async () => { await reader.close() }
  }
}

/** Forgets what the origin answered: the next open asks again (recovery re-learns the origin). */
export function forgetOrigin (shard: Shard): void {
  if (shard.mount !== undefined) probes.delete(shard.mount)
}
