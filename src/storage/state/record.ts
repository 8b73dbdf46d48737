/**
 * The persisted form of a shard: JSON with one-letter keys (as the Go dagstore's, so a
 * million records stay small). refs, waiters and jobs are never persisted: after a restart
 * nobody holds a reference.
 */
import { ShardState, SHARD_STATES, COPY_POLICIES, type CopyPolicy, type ShardKey } from '../../base/types.js'

export interface ShardRecord {
  key: ShardKey
  url: string
  state: ShardState
  lazy: boolean
  transient?: string
  error?: string
  errorCode?: string
  /** The copy policy the shard was registered with, when it overrides the store's. */
  copy?: CopyPolicy
  /** Read in place when last served (a restart starts from it; the origin is asked again on first use). */
  inPlace?: boolean
}

interface Persisted { k: string, u: string, s: string, l?: 1, t?: string, e?: string, c?: string, m?: string, i?: 1 }

const POLICIES = new Set<string>(COPY_POLICIES)

export function encodeRecord (r: ShardRecord): string {
  const p: Persisted = { k: r.key, u: r.url, s: r.state }
  if (r.lazy) p.l = 1
  if (r.transient !== undefined) p.t = r.transient
  if (r.error !== undefined) p.e = r.error
  if (r.errorCode !== undefined) p.c = r.errorCode
  if (r.copy !== undefined) p.m = r.copy
  if (r.inPlace === true) p.i = 1
  return JSON.stringify(p)
}

const STATES = new Set<string>(SHARD_STATES)

/** @throws Error on a record that is not one of ours (the caller skips and reports it). */
export function decodeRecord (json: string): ShardRecord {
  const p = JSON.parse(json) as Partial<Persisted>
  if (typeof p.k !== 'string' || typeof p.u !== 'string' || typeof p.s !== 'string' || !STATES.has(p.s)) {
    throw new Error('malformed shard record')
  }
  const r: ShardRecord = { key: p.k, url: p.u, state: p.s as ShardState, lazy: p.l === 1 }
  if (typeof p.t === 'string') r.transient = p.t
  if (typeof p.e === 'string') r.error = p.e
  if (typeof p.c === 'string') r.errorCode = p.c
  if (typeof p.m === 'string' && POLICIES.has(p.m)) r.copy = p.m as CopyPolicy
  if (p.i === 1) r.inPlace = true
  return r
}
