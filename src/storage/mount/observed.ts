/**
 * Mounts and readers that report how far into the bytes they have been read: what progress of
 * a long register is measured with (the store's describeShard, the CLI's direct mode).
 * Everything else is the wrapped mount's (same URL, same kind), so the store treats an
 * observed mount exactly as the original.
 */
import type { Mount, MountReader } from '../../base/mount-types.js'

/** `position`: the furthest byte read so far; `total`: the size when the reader knows it. */
export type ReadProgress = (position: number, total: number | undefined) => void

export function observedReader (reader: MountReader, report: ReadProgress): MountReader {
  let furthest = 0
  const reached = (position: number): void => {
    if (position <= furthest) return
    furthest = position
    report(furthest, reader.size)
  }
  const observed: MountReader = {
    get size () { return reader.size },
    stream: (start = 0) => ({
      async * [Symbol.asyncIterator] () {
        let position = start
        for await (const chunk of reader.stream(start)) {
          position += chunk.byteLength
          reached(position)
          yield chunk
        }
      }
    }),
    close: async () => { await reader.close() }
  }
  const read = reader.read
  if (read !== undefined) {
    observed.read = async (position, length) => {
      const bytes = await read.call(reader, position, length)
      reached(position + bytes.byteLength)
      return bytes
    }
  }
  const readNow = reader.readNow
  if (readNow !== undefined) {
    observed.readNow = (position, length, into) => {
      const bytes = readNow.call(reader, position, length, into)
      if (bytes !== undefined) reached(position + bytes.byteLength)
      return bytes
    }
  }
  const readInto = reader.readInto
  if (readInto !== undefined) {
    observed.readInto = async (position, target) => {
      const n = await readInto.call(reader, position, target)
      reached(position + n)
      return n
    }
  }
  return observed
}

export function observedMount (mount: Mount, report: ReadProgress): Mount {
  const observed: Mount = {
    fetch: async (signal) => observedReader(await mount.fetch(signal), report),
    info: () => mount.info(),
    stat: async (signal) => await mount.stat(signal),
    serialize: () => mount.serialize()
  }
  const close = mount.close
  if (close !== undefined) observed.close = async () => { await close.call(mount) }
  // A mount the store can read in place stays one: its ranged reads are observed too.
  const ranged = mount as Mount & Partial<RangeCapable>
  const { probeRange, openInPlace } = ranged
  if (probeRange !== undefined && openInPlace !== undefined) {
    const inPlace: RangeCapable = {
      probeRange: async (signal) => await probeRange.call(mount, signal),
      openInPlace: (cache, probe) => observedReader(openInPlace.call(mount, cache, probe), report)
    }
    Object.assign(observed, inPlace)
  }
  return observed
}

interface RangeCapable {
  probeRange: (signal?: AbortSignal) => Promise<unknown>
  openInPlace: (cache: unknown, probe: unknown) => MountReader
}
