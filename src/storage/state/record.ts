/**
 * The persisted form of a shard: JSON with one-letter keys (as the Go dagstore's, so a
 * million records stay small). refs, waiters and jobs are never persisted: after a restart
 * nobody holds a reference.
 */
import { ShardState, SHARD_STATES, type ShardKey } from '../../base/types.js'

export interface ShardRecord {
  key: ShardKey
  url: string
  state: ShardState
  lazy: boolean
  transient?: string
  error?: string
  errorCode?: string
}

interface Persisted { k: string, u: string, s: string, l?: 1, t?: string, e?: string, c?: string }

export function encodeRecord (r: ShardRecord): string {
  const p: Persisted = { k: r.key, u: r.url, s: r.state }
  if (r.lazy) p.l = 1
  if (r.transient !== undefined) p.t = r.transient
  if (r.error !== undefined) p.e = r.error
  if (r.errorCode !== undefined) p.c = r.errorCode
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
  return r
}
