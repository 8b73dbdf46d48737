/**
 * One block asked of the node that owns it (DESIGN §12): a DAG whose blocks sit in several
 * nodes' local files is gathered block by block, each from its owner's gateway as a raw block
 * (`GET {advertise}/ipfs/{cid}?format=raw`). The request carries PROXIED_HEADER, so the owner
 * answers from what it can read itself and never sends it on. The bytes are hash-verified
 * against the CID before anyone sees them: another node's answer is never trusted.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { CID } from 'multiformats/cid'
import { BlockNotFoundError, OwnerUnavailableError, type OwnerWhereabouts } from '../../base/errors.js'
import { HashVerifier } from '../../format/car/verify.js'
import { DEFAULT_MAX_SECTION_SIZE } from '../../format/car/sections.js'

/** Marks a request one node sends another: the node it reaches answers it, never sends it on. */
export const PROXIED_HEADER = 'x-dagstore-proxied-by'

/** How long a hop to an owner node may take; the gateway's whole-request hop uses the same. */
export interface OwnerHopTimeouts {
  /** Giving up on connecting to the owner. Default 1,000 ms. */
  connectTimeoutMs?: number
  /** Giving up on the owner's response head (connecting included). Default 2,000 ms. */
  responseTimeoutMs?: number
  /** Giving up on an owner's body that stalls this long. Default 30,000 ms. */
  idleTimeoutMs?: number
}

export interface OwnerHop extends OwnerHopTimeouts {
  /** This node's name, sent in PROXIED_HEADER. */
  node: string
}

/** Resolves with the owner's response head, or rejects with OwnerUnavailableError within the timeouts. */
export async function askOwner (target: URL, method: 'GET' | 'HEAD', headers: Record<string, string | string[]>, where: OwnerWhereabouts,
  hop: OwnerHop): Promise<IncomingMessage> {
  const responseTimeoutMs = hop.responseTimeoutMs ?? 2_000
  const connectTimeoutMs = Math.min(hop.connectTimeoutMs ?? 1_000, responseTimeoutMs)
  return await new Promise<IncomingMessage>((resolve, reject) => {
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest
    const out = send(target, { method, headers: { ...headers, [PROXIED_HEADER]: hop.node } })
    let settled = false
    const fail = (why: string, cause?: unknown): void => {
      if (settled) return
      settled = true
      clearTimeout(overall)
      out.destroy()
      reject(ownerUnavailable(where, why, cause))
    }
    const overall = setTimeout(() => { fail(`which did not answer within ${responseTimeoutMs} ms`) }, responseTimeoutMs)
    out.once('socket', (socket) => {
      if (!socket.connecting) return
      const connect = setTimeout(() => { fail(`which could not be connected to within ${connectTimeoutMs} ms`) }, connectTimeoutMs)
      socket.once('connect', () => { clearTimeout(connect) })
      socket.once('close', () => { clearTimeout(connect) })
    })
    out.on('error', (err) => { fail(`which could not be reached (${err.message})`, err) })
    out.once('response', (answer) => {
      if (settled) return
      settled = true
      clearTimeout(overall)
      resolve(answer)
    })
    out.end()
  })
}

export function ownerUnavailable (where: OwnerWhereabouts, why: string, cause?: unknown): OwnerUnavailableError {
  const message = `the block is held by node ${JSON.stringify(where.owner)}, ${why}`
  const err = new OwnerUnavailableError(message, cause === undefined ? undefined : { cause })
  err.where = where
  return err
}

/** The owner's base URL, or OwnerUnavailableError when it is down or cannot be reached. */
export function ownerBase (where: OwnerWhereabouts): URL {
  if (!where.alive) throw ownerUnavailable(where, 'which is down (its heartbeat is stale)')
  if (where.advertise === undefined) throw ownerUnavailable(where, 'which advertises no URL to reach it by')
  return new URL(where.advertise)
}

/** `path` (with its query) under the owner's base URL, which may have a path of its own. */
export function underBase (base: URL, path: string): URL {
  return new URL(base.pathname.replace(/\/+$/, '') + path, base)
}

export class OwnerBlocks {
  private readonly verifier = new HashVerifier([], { mismatchCode: 'ERR_HASH_MISMATCH' })

  constructor (private readonly hop: OwnerHop) {}

  /**
   * The block `cid` from its owner, hash-verified. @throws OwnerUnavailableError (the owner is
   * down or does not answer in time), BlockNotFoundError (the owner does not have it),
   * HashMismatchError (its bytes do not hash to the CID).
   */
  async get (cid: CID, where: OwnerWhereabouts): Promise<Uint8Array> {
    const target = underBase(ownerBase(where), `/ipfs/${cid.toString()}?format=raw`)
    const answer = await askOwner(target, 'GET', { accept: 'application/vnd.ipld.raw' }, where, this.hop)
    if (answer.statusCode !== 200) {
      answer.resume()
      const why = `node ${JSON.stringify(where.owner)} answered ${String(answer.statusCode)} for ${cid.toString()}`
      if (answer.statusCode === 404) throw new BlockNotFoundError(why)
      throw ownerUnavailable(where, `which answered ${String(answer.statusCode)}`)
    }
    const bytes = await readBody(answer, this.hop.idleTimeoutMs ?? 30_000, where)
    await this.verifier.check(cid.multihash.code, cid.multihash.digest, bytes, cid.bytes, 0)
    return bytes
  }
}

async function readBody (answer: IncomingMessage, idleTimeoutMs: number, where: OwnerWhereabouts): Promise<Uint8Array> {
  const declared = Number(answer.headers['content-length'] ?? NaN)
  if (declared > DEFAULT_MAX_SECTION_SIZE) {
    answer.destroy()
    throw ownerUnavailable(where, `whose answer is larger than any block (${declared} bytes)`)
  }
  answer.setTimeout(idleTimeoutMs, () => { answer.destroy(ownerUnavailable(where, `which stalled for ${idleTimeoutMs} ms`)) })
  const chunks: Buffer[] = []
  let length = 0
  try {
    for await (const chunk of answer as AsyncIterable<Buffer>) {
      length += chunk.byteLength
      if (length > DEFAULT_MAX_SECTION_SIZE) throw ownerUnavailable(where, 'whose answer is larger than any block')
      chunks.push(chunk)
    }
  } catch (err) {
    answer.destroy()
    if (err instanceof OwnerUnavailableError) throw err
    throw ownerUnavailable(where, `whose answer broke off (${(err as Error).message})`, err)
  }
  return new Uint8Array(Buffer.concat(chunks, length))
}
