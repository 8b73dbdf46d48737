import type { Chunks } from './chunks.js'

/**
 * What the section cache needs from an origin: positional reads of one fixed version of it.
 * HttpMount provides one per source (ranged GETs checked against the validator it probed).
 */
export interface RangeTransport {
  /**
   * Exactly `length` bytes at `position`, in pieces of `pieceBytes` (the last one shorter when
   * the length is not a multiple), each piece the chunks its bytes arrived in: a request for
   * several sections is cached section by section without a copy. The cache never asks past
   * the end it was given. See ReadOptions for hearing of pieces early, buffers and gating.
   * Resolves with the pieces, or with [] when a gate was given (a run's pieces are handed over
   * through `onPiece` only: its reader does not keep them).
   */
  read: (position: number, length: number, pieceBytes: number, signal: AbortSignal, options?: ReadOptions) => Promise<Chunks[]>
  /** Lets go of connections: called once the source's last reader has closed. */
  close: () => Promise<void>
}

interface ReadOptions {
  /**
   * Hears of each piece as soon as its bytes are all there, in order and once each (a retried
   * request resumes after the pieces given), so a reader waiting for the first section of a
   * long request need not wait for the last.
   */
  onPiece?: ((index: number, piece: Chunks) => void) | undefined
  /**
   * Asked for a buffer (at least `pieceBytes` long) for each piece; the piece's bytes are
   * copied there: the cache reuses those buffers, and the response's chunks die young instead
   * of being kept.
   */
  into?: ((index: number) => Uint8Array) | undefined
  /**
   * Only pieces below `gate.granted` may arrive: the response is paused at the grant (its
   * timers stopped: the wait is the reader's, not the origin's) and resumed when it grows.
   */
  gate?: Gate | undefined
}

/** How far a gated read may go: pieces [0, granted) of it. */
export interface Gate {
  readonly granted: number
  /** `callback` runs once, the next time `granted` grows. */
  onGrant: (callback: () => void) => void
}

/** How to open a source: `key` says which sources are the same bytes (URL and validator), `label` is what stats show. */
export interface SourceSpec {
  readonly key: string
  readonly label: string
  readonly size: number
  /** Called when the source has no transport (first open, or reopened after its last close). */
  readonly transport: () => RangeTransport
}

/** One source's counters. `rangedRequests` counts ranged reads asked of the transport (a retry inside one is not another). */
export interface SourceStats {
  label: string
  size: number
  readers: number
  bytesFetched: number
  rangedRequests: number
  cachedBytes: number
}

/** Plain numbers for the engine's metrics. */
export interface SectionCacheStats {
  cacheBytes: number
  /** Bytes held in sections (and in exact random-get extents). */
  cachedBytes: number
  inFlightRequests: number
  /** Bytes reserved by requests in flight or about to start. */
  inFlightBytes: number
  /** Spare section buffers kept for the next sections to arrive in (counted in the budget). */
  pooledBytes: number
  /** Reads (and stream sections) answered from the cache alone. */
  hits: number
  /** Reads (and stream sections) that waited on a request, new or shared. */
  misses: number
  evictions: number
  /** Sum of the current read-ahead of the streams open now. */
  readAheadBytes: number
  bytesFetched: number
  rangedRequests: number
  sources: SourceStats[]
}
