/**
 * Shared helpers for the benchmarks (docs/PERFORMANCE.md): temp dirs, number formatting, and the one
 * line every figure is printed on — the store's figure next to a peer/limit measured in the
 * same run, their ratio, and the target (the bar) with PASS/MISS.
 *
 * Benchmarks print; they never assert on timings.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMount, type DAGStore, type ShardResult } from '../src/index.js'

/** The repository root, from a compiled file in dist/bench/ (fixtures stay in the source tree). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))

export function fixture (name: string): string {
  return join(REPO_ROOT, 'tests', 'fixtures', name)
}

/** A fresh temp folder and its remover. */
export async function tempDir (prefix = 'dagstore-bench-'): Promise<{ dir: string, cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

/** Monotonic milliseconds. */
export function now (): number {
  return performance.now()
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** 1234567.8 → "1,234,568"; small values keep `digits` significant decimals. */
/** The median of `values` (the mean of the middle two for an even count). */
export function median (values: number[]): number {
  const s = values.slice().sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

export function fmt (value: number, digits = 0): string {
  if (!Number.isFinite(value)) return String(value)
  const d = Math.abs(value) >= 1000 ? 0 : digits
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
}

/** A figure with up to three significant decimals below 10, none above 1000. */
export function fmtAuto (value: number): string {
  const a = Math.abs(value)
  return fmt(value, a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3)
}

export function fmtBytes (bytes: number): string {
  if (bytes < 1024) return `${fmtAuto(bytes)} B`
  if (bytes < 1024 * 1024) return `${fmtAuto(bytes / 1024)} KiB`
  if (bytes < 1024 * 1024 * 1024) return `${fmtAuto(bytes / 1024 / 1024)} MiB`
  return `${fmtAuto(bytes / 1024 / 1024 / 1024)} GiB`
}

/** A bar (docs/PERFORMANCE.md): the figure must be ≥ (`atLeast`) or ≤ (`atMost`) `value`. */
export interface Target {
  readonly atLeast?: number
  readonly atMost?: number
}

export function meets (value: number, target: Target): boolean {
  if (target.atLeast !== undefined && !(value >= target.atLeast)) return false
  if (target.atMost !== undefined && !(value <= target.atMost)) return false
  return true
}

function describeTarget (target: Target, unit: string): string {
  const parts: string[] = []
  if (target.atLeast !== undefined) parts.push(`>= ${fmtAuto(target.atLeast)} ${unit}`)
  if (target.atMost !== undefined) parts.push(`<= ${fmtAuto(target.atMost)} ${unit}`)
  return parts.join(' and ')
}

export interface ReportLine {
  name: string
  value: number
  unit: string
  peerName: string
  peerValue: number
  target?: Target
  ratio: number
  pass?: boolean
}

/** Every line printed so far, in order (a bench may dump them as JSON at the end). */
export const reported: ReportLine[] = []

/**
 * Prints one figure next to its peer, their ratio (value / peer) and, when the figure has a
 * target, PASS or MISS. Returns what it printed, for a summary.
 *
 *   name ............ <figure> cycles/s | peer: bare LevelDB … <figure> cycles/s | ratio <r> | target >= <bar> cycles/s: PASS|MISS
 */
export function report (name: string, value: number, unit: string, peerName: string, peerValue: number, target?: Target): ReportLine {
  const ratio = value / peerValue
  const line: ReportLine = { name, value, unit, peerName, peerValue, ratio }
  let text = `${name.padEnd(44, ' ')} ${fmtAuto(value).padStart(11)} ${unit}` +
    ` | peer: ${peerName} ${fmtAuto(peerValue)} ${unit}` +
    ` | ratio ${fmt(ratio, 2)}`
  if (target !== undefined) {
    line.target = target
    line.pass = meets(value, target)
    text += ` | target ${describeTarget(target, unit)}: ${line.pass ? 'PASS' : 'MISS'}`
  }
  reported.push(line)
  console.log(text)
  return line
}

/** A plain figure (no peer), e.g. a parameter or a sanity count. */
export function note (name: string, text: string): void {
  console.log(`${name.padEnd(44, ' ')} ${text}`)
}

export function header (title: string): void {
  console.log(`\n== ${title} (node ${process.version}, ${process.platform}/${process.arch}) ==`)
}

/** Forces full GCs (needs --expose-gc) and returns heapUsed afterwards. */
export async function settledHeap (): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with node --expose-gc')
  // Let pending callbacks/microtasks drop their references first.
  for (let i = 0; i < 3; i++) {
    await sleep(10)
    gc()
  }
  return process.memoryUsage().heapUsed
}

/** Zero-padded shard key: key(123, 6) → "shard-000123". */
export function shardKey (i: number, width: number): string {
  return 'shard-' + String(i).padStart(width, '0')
}

export function envInt (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw.replace(/_/g, ''))
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive integer, got ${raw}`)
  return n
}

/**
 * Registers `count` shards lazily (shard i: key `keyOf(i)`, a FileMount of `pathOf(key)`), with
 * the callback API, `window` calls at a time, each window awaiting its callbacks.
 */
export async function registerLazy (store: DAGStore, count: number, window: number,
  keyOf: (i: number) => string, pathOf: (key: string) => string): Promise<void> {
  for (let start = 0; start < count; start += window) {
    const end = Math.min(count, start + window)
    await new Promise<void>((resolve, reject) => {
      let pending = end - start
      let failed: Error | undefined
      const done = (r: ShardResult): void => {
        if (r.error !== undefined) failed ??= r.error
        if (--pending === 0) {
          if (failed !== undefined) reject(failed)
          else resolve()
        }
      }
      for (let i = start; i < end; i++) {
        const key = keyOf(i)
        store.registerShard(key, new FileMount(pathOf(key)), done, { lazy: true })
      }
    })
  }
}
