/**
 * What a gateway request asks for: the format (raw block or CAR) from `?format=` or `Accept`
 * (q-values, most specific range wins), the CAR parameters, the DAG scope (default `all`, as
 * the spec says) and `entity-bytes` (406 and 400 otherwise). Pure: no I/O.
 */
import type { CID } from 'multiformats/cid'
import { HttpError } from './http-util.js'
import { CODE } from '../../base/errors/codes.js'
import type { DagScope, EntityBytes } from '../../read/dag-walk.js'

export const RAW_TYPE = 'application/vnd.ipld.raw'
export const CAR_TYPE = 'application/vnd.ipld.car'

const RAW_CODEC = 0x55
const DAG_PB_CODEC = 0x70
const ENTITY_BYTES = /^(-?\d+):(-?\d+|\*)$/
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

export interface Variant {
  format: 'raw' | 'car'
  /** `format` came from Accept, not the URL: Content-Location names the URL with it. */
  fromAccept: boolean
  dups: 'y' | 'n'
  scope: DagScope
  /** As asked for (it names the ETag), and parsed. */
  entityBytes?: { text: string, range: EntityBytes }
}

function notAcceptable (message: string): HttpError {
  return new HttpError(CODE.ERR_NOT_ACCEPTABLE, `${message}; this gateway serves ${RAW_TYPE} and ${CAR_TYPE}; version=1 (format=raw|car)`)
}

interface MediaRange { type: string, params: Map<string, string>, q: number, index: number }

/** Accept as media ranges; malformed ranges are skipped (they accept nothing). */
function parseAccept (header: string): MediaRange[] {
  const out: MediaRange[] = []
  const parts = header.split(',')
  for (const [index, part] of parts.entries()) {
    const [head = '', ...rest] = part.split(';')
    const type = head.trim().toLowerCase()
    if (!/^[^/\s]+\/[^/\s]+$/.test(type)) continue
    const params = new Map<string, string>()
    let q = 1
    let valid = true
    for (const p of rest) {
      const eq = p.indexOf('=')
      if (eq < 0) continue
      const name = p.slice(0, eq).trim().toLowerCase()
      let value = p.slice(eq + 1).trim()
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
      if (name === 'q') {
        if (!QVALUE.test(value)) valid = false
        q = Number(value)
      } else {
        params.set(name, value.toLowerCase())
      }
    }
    if (valid) out.push({ type, params, q, index })
  }
  return out
}

/** Absent or undefined: not asked for. */
interface CarParams { version?: string | undefined, order?: string | undefined, dups?: string | undefined }

/** The dups a CAR answer may declare for these asked-for params, or undefined if it cannot satisfy them. */
function carDups (p: CarParams): 'y' | 'n' | undefined {
  if (p.version !== undefined && p.version !== '1') return undefined
  if (p.order !== undefined && p.order !== 'dfs' && p.order !== 'unk') return undefined
  if (p.dups !== undefined && p.dups !== 'y' && p.dups !== 'n') return undefined
  return p.dups === 'y' ? 'y' : 'n'
}

interface Choice { format: 'raw' | 'car', dups: 'y' | 'n', q: number, index: number }

/**
 * RFC 9110 §12.5.1 over the two types served. Raw: the most specific range matching it decides
 * its q (its own type, then application/*, then *\/*). CAR: only explicit CAR ranges whose
 * params can be met (a wildcard never picks a CAR over the raw block). Highest q wins; a tie
 * goes to the range listed first, then to raw.
 */
function chooseFromAccept (ranges: MediaRange[]): { raw: Choice | undefined, car: Choice | undefined } {
  let exact: MediaRange | undefined
  let app: MediaRange | undefined
  let any: MediaRange | undefined
  let car: Choice | undefined
  for (const r of ranges) {
    if (r.type === RAW_TYPE) exact ??= r
    else if (r.type === 'application/*') app ??= r
    else if (r.type === '*/*') any ??= r
    else if (r.type === CAR_TYPE && r.q > 0) {
      const dups = carDups({ version: r.params.get('version'), order: r.params.get('order'), dups: r.params.get('dups') })
      if (dups !== undefined && (car === undefined || r.q > car.q)) car = { format: 'car', dups, q: r.q, index: r.index }
    }
  }
  const decides = exact ?? app ?? any
  const raw: Choice | undefined = decides !== undefined && decides.q > 0
    ? { format: 'raw', dups: 'n', q: decides.q, index: decides.index }
    : undefined
  return { raw, car }
}

export function negotiate (accept: string | undefined, query: URLSearchParams | undefined): Variant {
  const format = query?.get('format') ?? ''
  let chosen: Choice | undefined
  if (format !== '') {
    if (format !== 'raw' && format !== 'car') throw notAcceptable(`format=${format} is not served`)
    if (format === 'raw') {
      chosen = { format: 'raw', dups: 'n', q: 1, index: 0 }
    } else {
      // format=car picks the type; CAR ranges in Accept, if any, still say which variant.
      const carRanges = accept === undefined ? [] : parseAccept(accept).filter((r) => r.type === CAR_TYPE)
      chosen = carRanges.length === 0 ? { format: 'car', dups: 'n', q: 1, index: 0 } : chooseFromAccept(carRanges).car
      if (chosen === undefined) throw notAcceptable(`no CAR variant in Accept (${String(accept)}) can be served`)
    }
  } else {
    if (accept === undefined || accept.trim() === '') {
      throw new HttpError(CODE.ERR_FORMAT_REQUIRED, `say which response you want: Accept: ${RAW_TYPE} or ${CAR_TYPE}, or ?format=raw|car`)
    }
    const { raw, car } = chooseFromAccept(parseAccept(accept))
    if (raw !== undefined && car !== undefined) chosen = car.q > raw.q || (car.q === raw.q && car.index < raw.index) ? car : raw
    else chosen = raw ?? car
    if (chosen === undefined) throw notAcceptable(`nothing in Accept (${accept}) can be served`)
  }
  const variant: Variant = { format: chosen.format, fromAccept: format === '', dups: chosen.dups, scope: 'all' }
  if (variant.format === 'car' && query !== undefined) {
    // The URL's car-* parameters win over Accept's (spec).
    const fromQuery: CarParams = {}
    const version = query.get('car-version')
    const order = query.get('car-order')
    const dups = query.get('car-dups')
    if (version !== null) fromQuery.version = version
    if (order !== null) fromQuery.order = order
    if (dups !== null) fromQuery.dups = dups
    const d = carDups(fromQuery)
    if (d === undefined) throw notAcceptable(`car-version=${String(version)} car-order=${String(order)} car-dups=${String(dups)} cannot be served`)
    if (dups !== null) variant.dups = d
    const scope = query.get('dag-scope')
    if (scope !== null && scope !== '') {
      if (scope !== 'block' && scope !== 'entity' && scope !== 'all') {
        throw new HttpError(CODE.ERR_INVALID_REQUEST, `dag-scope must be block, entity or all, not ${JSON.stringify(scope)}`)
      }
      variant.scope = scope
    }
    const entityBytes = query.get('entity-bytes')
    if (entityBytes !== null) {
      variant.scope = 'entity'
      variant.entityBytes = { text: entityBytes, range: parseEntityBytes(entityBytes) }
    }
  }
  return variant
}

function parseEntityBytes (text: string): EntityBytes {
  const m = ENTITY_BYTES.exec(text)
  const from = Number(m?.[1])
  const to = m?.[2] === '*' ? '*' : Number(m?.[2])
  const bad = m === null || !Number.isSafeInteger(from) || (to !== '*' && !Number.isSafeInteger(to)) ||
    // Both from the start and in reverse order: no file has bytes there (mixed signs depend on the size).
    (from >= 0 && to !== '*' && to >= 0 && from > to)
  if (bad) {
    throw new HttpError(CODE.ERR_INVALID_REQUEST, `entity-bytes must be from:to (integers, to may be *, from <= to when both are offsets from the start), not ${JSON.stringify(text)}`)
  }
  return { from, to }
}

/**
 * True when the answer is the CID's block alone, whatever the DAG: `dag-scope=block`, a raw
 * block (no links), and `entity` of anything but dag-pb (entity is the block for non-UnixFS
 * data). Such a CAR has a length known from the index, and needs no decoding.
 */
export function isSingleBlock (cid: CID, variant: Variant): boolean {
  const { scope } = variant
  return scope === 'block' || cid.code === RAW_CODEC || (scope === 'entity' && cid.code !== DAG_PB_CODEC)
}
