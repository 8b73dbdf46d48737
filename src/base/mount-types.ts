export interface MountInfo {
  kind: 'local' | 'remote'
  sequential: boolean
  seek: boolean
  /** Positional reads (`MountReader.read`) are supported: such mounts need no transient. */
  random: boolean
}

export interface MountStat {
  exists: boolean
  size?: number | undefined
  /** False when fetching needs slow preparation first (e.g. unsealing); such fetches bypass the ready-fetch throttle. */
  ready: boolean
}

export interface MountReader {
  readonly size?: number | undefined
  /** The bytes from `start` (default 0) to the end. */
  stream: (start?: number) => AsyncIterable<Uint8Array>
  /** Exactly `length` bytes at `position`, fewer only at end of data. Present when the mount's info().random. */
  read?: ((position: number, length: number) => Promise<Uint8Array>) | undefined
  /**
   * Optional: the bytes `read` would give, now and without waiting, when the reader can answer
   * at once (a local file whose pages are in memory); `undefined` when it cannot — then use
   * `read`. An indexer probing thousands of section headers uses it to avoid a thread-pool round
   * trip per header. An implementation must never block for long: a read that would wait for a
   * device answers `undefined`. With `into` (at least `length` bytes) the bytes are read into it
   * and a view of it is returned, so a scan can reuse its buffer.
   */
  readNow?: ((position: number, length: number, into?: Uint8Array) => Uint8Array | undefined) | undefined
  /**
   * Optional: `read(position, target.byteLength)` into the caller's `target`; resolves to the
   * bytes read, fewer only at end of data. A sequential scan reuses a few buffers with it:
   * fresh memory for every read of a large window costs more than reading it (page faults,
   * and the collector counts every new buffer as external memory).
   */
  readInto?: ((position: number, target: Uint8Array) => Promise<number>) | undefined
  close: () => Promise<void>
}

export interface Mount {
  fetch: (signal?: AbortSignal) => Promise<MountReader>
  info: () => MountInfo
  stat: (signal?: AbortSignal) => Promise<MountStat>
  /** The URL the mount persists as; its scheme must be registered in the store's MountRegistry. */
  serialize: () => URL
  close?: () => Promise<void>
  /**
   * True when `serialize()` says all there is to the mount (no options, no state): the store
   * then keeps no mount object for an idle lazy shard and makes one from the URL when needed,
   * as it does after a restart. FileMount, BytesMount and an HttpMount made without options are.
   */
  readonly describedByUrl?: boolean
}

export type MountFactory = (url: URL) => Mount
