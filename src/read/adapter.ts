/**
 * A read-only `interface-blockstore` (v7) view of any ReadBlockstore — a shard accessor's or
 * the all-shards one — so helia and other IPFS JS tools can read from the store directly.
 */
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import { NotFoundError } from 'interface-store'
import type { CID } from 'multiformats/cid'
import { BlockNotFoundError, abortErrorFrom } from '../base/errors.js'
import type { ReadBlockstore } from '../base/types.js'
import { ReadOnlyError } from './errors.js'

/** interface-store's AbortOptions (from `abort-error`), restated to avoid a transitive import. */
interface AbortOptions { signal?: AbortSignal }

/** Blocks fetched ahead by getMany: enough to keep a file-backed store's reads overlapping. */
const DEFAULT_GET_MANY_CONCURRENCY = 16

export interface InterfaceBlockstoreOptions {
  /** Gets in flight at once inside getMany (results still come in input order). Default 16. */
  getManyConcurrency?: number
}

// A function rather than an inline test: TS narrows `signal.aborted` after a first check.
function throwIfAborted (signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortErrorFrom(signal)
}

/**
 * The ecosystem tells "not found" by name ('NotFoundError', as interface-store throws it); the
 * code stays ERR_NOT_FOUND either way and the store's error is kept as `cause`.
 */
function translate (err: unknown): unknown {
  if (!(err instanceof BlockNotFoundError)) return err
  const out = new NotFoundError(err.message)
  Object.defineProperty(out, 'cause', { value: err, configurable: true, writable: true })
  return out
}

function * once (bytes: Uint8Array): Generator<Uint8Array> {
  yield bytes
}

function readOnly (what: string): ReadOnlyError {
  return new ReadOnlyError(`${what}: this blockstore is read-only`)
}

/**
 * Read-only: `put`, `putMany`, `delete` and `deleteMany` fail with ReadOnlyError
 * (code ERR_READ_ONLY). `get` yields the block as one chunk; a missing block fails with
 * interface-store's NotFoundError (code ERR_NOT_FOUND). `getAll` walks `allKeys()`.
 * `options.signal` is checked before each block.
 */
export class ReadOnlyInterfaceBlockstore implements Blockstore {
  private readonly getManyConcurrency: number

  constructor (readonly blockstore: ReadBlockstore, options: InterfaceBlockstoreOptions = {}) {
    const c = options.getManyConcurrency ?? DEFAULT_GET_MANY_CONCURRENCY
    if (!Number.isSafeInteger(c) || c < 1) throw new RangeError(`getManyConcurrency must be a positive integer, got ${String(c)}`)
    this.getManyConcurrency = c
  }

  async has (key: CID, options?: AbortOptions): Promise<boolean> {
    throwIfAborted(options?.signal)
    return await this.blockstore.has(key)
  }

  async * get (key: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    yield await this.bytes(key, options?.signal)
  }

  async * getMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<Pair> {
    const signal = options?.signal
    // A window of gets in input order; each is caught at once so one abandoned by an early
    // return() is never an unhandled rejection (it is still rethrown when its turn comes).
    const window: Array<{ cid: CID, bytes: Promise<Uint8Array> }> = []
    for await (const cid of source) {
      throwIfAborted(signal)
      const bytes = this.bytes(cid, signal)
      bytes.catch(() => {})
      window.push({ cid, bytes })
      if (window.length >= this.getManyConcurrency) {
        const head = window.shift() as { cid: CID, bytes: Promise<Uint8Array> }
        yield { cid: head.cid, bytes: once(await head.bytes) }
      }
    }
    while (window.length > 0) {
      const head = window.shift() as { cid: CID, bytes: Promise<Uint8Array> }
      yield { cid: head.cid, bytes: once(await head.bytes) }
    }
  }

  async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    const signal = options?.signal
    throwIfAborted(signal)
    for await (const cid of this.blockstore.allKeys()) {
      yield { cid, bytes: once(await this.bytes(cid, signal)) }
    }
  }

  async put (_key: CID, _val: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, _options?: AbortOptions): Promise<CID> {
    throw readOnly('put')
  }

  async * putMany (_source: Iterable<InputPair> | AsyncIterable<InputPair>, _options?: AbortOptions): AsyncGenerator<CID> {
    throw readOnly('putMany')
  }

  async delete (_key: CID, _options?: AbortOptions): Promise<void> {
    throw readOnly('delete')
  }

  async * deleteMany (_source: Iterable<CID> | AsyncIterable<CID>, _options?: AbortOptions): AsyncGenerator<CID> {
    throw readOnly('deleteMany')
  }

  private async bytes (cid: CID, signal: AbortSignal | undefined): Promise<Uint8Array> {
    throwIfAborted(signal)
    try {
      return await this.blockstore.get(cid)
    } catch (err) {
      throw translate(err)
    }
  }
}

/**
 * `interface-blockstore` v7 view of a ReadBlockstore, e.g.
 * `toInterfaceBlockstore(accessor.blockstore())` or `toInterfaceBlockstore(store.blockstore())`.
 * It does not own `rb`: close the accessor or all-shards blockstore yourself.
 */
export function toInterfaceBlockstore (rb: ReadBlockstore, options?: InterfaceBlockstoreOptions): Blockstore {
  return new ReadOnlyInterfaceBlockstore(rb, options)
}
