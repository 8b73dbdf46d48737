/** Human output: tables, sizes, one-line shard summaries. */
import type { NodesJson, ShardJson } from '../wire.js'

export function formatBytes (n: number | undefined): string {
  if (n === undefined) return '-'
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}

function columnWidths (header: string[], rows: string[][]): number[] {
  return header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
}

/** Left-aligned columns; the last one is not padded (it may be long: error messages). */
function table (header: string[], rows: string[][], widths = columnWidths(header, rows)): string {
  const line = (cells: string[]): string => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}

const SHARD_COLUMNS = ['KEY', 'STATE', 'REFS', 'SIZE', 'ERROR']
/** In a cluster, which node owns each shard. */
const CLUSTER_COLUMNS = ['KEY', 'STATE', 'REFS', 'SIZE', 'NODE', 'ERROR']

function shardRow (s: ShardJson, withNode: boolean): string[] {
  const error = s.error === undefined ? '' : `${s.error.code}: ${s.error.message}`
  const row = [s.key, s.state, String(s.refs), formatBytes(s.size)]
  if (withNode) row.push(s.node ?? '-')
  row.push(error)
  return row
}

/**
 * A shard table written a page at a time: the header once, each page's columns as wide as
 * that page and every page before it needed (one page reads as one aligned table).
 */
export class ShardTableStream {
  private widths: number[] | undefined
  private columns: string[] | undefined

  page (shards: ShardJson[]): string {
    this.columns ??= shards.some((s) => s.node !== undefined) ? CLUSTER_COLUMNS : SHARD_COLUMNS
    const columns = this.columns
    const rows = shards.map((s) => shardRow(s, columns === CLUSTER_COLUMNS))
    const first = this.widths === undefined
    const widths = columns.map((h, i) => Math.max(this.widths?.[i] ?? h.length, ...rows.map((r) => (r[i] ?? '').length)))
    this.widths = widths
    const text = table(columns, rows, widths)
    return first ? text : text.slice(text.indexOf('\n') + 1)
  }
}

/**
 * `{ "shards": [...] }` written a page at a time, byte for byte what json({ shards }) writes
 * for all of them at once.
 */
export class ShardJsonStream {
  private count = 0

  page (shards: ShardJson[]): string {
    let text = ''
    for (const s of shards) {
      text += (this.count === 0 ? '{\n  "shards": [\n' : ',\n') + JSON.stringify(s, null, 2).replace(/^/gm, '    ')
      this.count++
    }
    return text
  }

  end (): string {
    return this.count === 0 ? '{\n  "shards": []\n}\n' : '\n  ]\n}\n'
  }
}

/** `state, N blocks, size` — what a register/recover line says about the result. */
export function shardSummary (s: ShardJson): string {
  const parts = [s.state]
  if (s.blocks !== undefined) parts.push(`${s.blocks} blocks`)
  if (s.size !== undefined) parts.push(formatBytes(s.size))
  return parts.join(', ')
}

export function shardDetails (s: ShardJson): string {
  const rows: Array<[string, string]> = [
    ['key', s.key],
    ['state', s.state],
    ['refs', String(s.refs)],
    ['url', s.url],
    ['size', s.size === undefined ? '-' : `${formatBytes(s.size)} (${s.size} bytes)`],
    ['blocks', s.blocks === undefined ? '-' : String(s.blocks)],
    // Where its bytes are read from: local file, a copy, or the origin in place (ranged reads).
    ['read', s.placement === undefined ? '-' : s.placement + (s.copy === undefined ? '' : ` (copy ${s.copy})`)]
  ]
  if (s.node !== undefined) rows.push(['node', s.node])
  if (s.error !== undefined) rows.push(['error', `${s.error.code}: ${s.error.message}`])
  return rows.map(([k, v]) => `${k.padEnd(7)} ${v}`).join('\n') + '\n'
}

/** `dagstore nodes`: one row per node, its shards by state. */
export function nodesTable (body: NodesJson): string {
  if (body.nodes.length === 0) return 'no nodes\n'
  const rows = body.nodes.map((n) => [
    n.name,
    n.alive ? 'yes' : 'no',
    n.heartbeatAt ?? '-',
    n.advertise ?? '-',
    Object.entries(n.shards).map(([state, count]) => `${state}=${count}`).join(' ') || '-'
  ])
  return table(['NODE', 'ALIVE', 'HEARTBEAT', 'ADVERTISE', 'SHARDS'], rows)
}

export function json (value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n'
}
