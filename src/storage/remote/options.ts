/** The section cache's options (one cache per store: the budget is process-wide). */
export interface SectionCacheOptions {
  /** Bounds every cached section and every in-flight buffer, at all times. Default 256 MiB. */
  cacheBytes?: number | undefined
  /** Streams read aligned sections of this size. Default 1 MiB. */
  sectionBytes?: number | undefined
  /** The most a sequential stream reads ahead of the section it is in. Default 16 MiB. */
  maxReadAheadBytes?: number | undefined
  /** How long a source's sections stay after its last reader closes before they are the first to go. Default 30 000 ms. */
  keepAfterCloseMs?: number | undefined
  /** Milliseconds (tests drive it by hand). Default performance.now. */
  clock?: (() => number) | undefined
}

export interface ResolvedCacheOptions {
  cacheBytes: number
  sectionBytes: number
  maxReadAheadBytes: number
  keepAfterCloseMs: number
  clock: () => number
}

const MiB = 1024 * 1024

export function resolveCacheOptions (options: SectionCacheOptions): ResolvedCacheOptions {
  const { cacheBytes = 256 * MiB, sectionBytes = MiB, maxReadAheadBytes = 16 * MiB, keepAfterCloseMs = 30_000 } = options
  for (const [name, n] of [['cacheBytes', cacheBytes], ['sectionBytes', sectionBytes]] as const) {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`remote.${name} must be a positive integer, got ${String(n)}`)
  }
  for (const [name, n] of [['maxReadAheadBytes', maxReadAheadBytes], ['keepAfterCloseMs', keepAfterCloseMs]] as const) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`remote.${name} must be a non-negative integer, got ${String(n)}`)
  }
  if (sectionBytes > cacheBytes) throw new RangeError(`remote.sectionBytes (${sectionBytes}) must not exceed remote.cacheBytes (${cacheBytes})`)
  return { cacheBytes, sectionBytes, maxReadAheadBytes, keepAfterCloseMs, clock: options.clock ?? (() => performance.now()) }
}
