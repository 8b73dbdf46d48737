/**
 * `dagstore import <dir>`: registers every .car below a folder. A progress bar on a TTY,
 * one plain line per file otherwise (logs and pipes read those; a bar would be noise).
 */
import { pathToFileURL } from 'node:url'
import cliProgress from 'cli-progress'
import { CODE } from '../../base/errors/codes.js'
import type { ErrorJson, ShardJson } from '../wire.js'
import type { Backend } from './backend.js'
import { CliError, describeError, errorCode, errorJson } from './errors.js'
import { shardSummary } from './format.js'
import { findCars } from './targets.js'

export interface ImportOptions {
  lazy: boolean
  prefix: string
  concurrency: number
  /** Folders not to descend into (the repo). */
  skip: string[]
  /** 'bar' on a TTY, 'lines' otherwise, 'none' for --json. */
  progress: 'bar' | 'lines' | 'none'
  out: (line: string) => void
  /** Where the bar is drawn (stderr). */
  terminal: NodeJS.WritableStream
}

export interface ImportResult {
  root: string
  imported: ShardJson[]
  skipped: string[]
  failed: Array<{ key: string, path: string, error: ErrorJson }>
}

export async function importDir (backend: Backend, root: string, options: ImportOptions): Promise<ImportResult> {
  const cars = await findCars(root, options.skip)
  const result: ImportResult = { root, imported: [], skipped: [], failed: [] }
  if (cars.length === 0) return result
  const existing = new Set((await backend.states()).map((s) => s.key))

  let bar: cliProgress.MultiBar | undefined
  let progress: cliProgress.SingleBar | undefined
  if (options.progress === 'bar') {
    bar = new cliProgress.MultiBar({
      format: 'importing [{bar}] {value}/{total} {key}',
      hideCursor: true,
      clearOnComplete: true,
      stopOnComplete: false,
      stream: options.terminal
    }, cliProgress.Presets.shades_classic)
    progress = bar.create(cars.length, 0, { key: '' })
  }
  // With a bar, lines go above it; without, straight out.
  const say = (line: string): void => {
    if (options.progress === 'lines') options.out(line)
    else if (bar !== undefined) bar.log(line + '\n')
  }

  let fatal: unknown
  // The workers share one iterator: each file goes to the first free worker.
  const pending = cars.values()
  const worker = async (): Promise<void> => {
    for (const car of pending) {
      if (fatal !== undefined) return
      const key = options.prefix + car.key
      progress?.update({ key })
      if (existing.has(key)) {
        result.skipped.push(key)
        say(`skipped ${key}: already registered`)
      } else {
        try {
          const shard = await backend.register(key, pathToFileURL(car.path).href, { lazy: options.lazy })
          result.imported.push(shard)
          say(`registered ${key} (${shardSummary(shard)})`)
        } catch (err) {
          if (errorCode(err) === CODE.ERR_SHARD_EXISTS) {
            result.skipped.push(key)
            say(`skipped ${key}: already registered`)
          } else if (err instanceof CliError && (err.status === 401 || err.status === 403 || err.code === CODE.ERR_SERVER_UNREACHABLE)) {
            // Every other file would fail the same way: one error line, not one per file.
            fatal ??= err
          } else {
            result.failed.push({ key, path: car.path, error: errorJson(err) })
            say(`failed ${key}: ${describeError(err)}`)
          }
        }
      }
      progress?.increment()
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, cars.length)) }, worker))
  } finally {
    // Logged lines wait for the next redraw, and stop() clears without one: flush them first.
    bar?.update()
    bar?.stop()
  }
  if (fatal !== undefined) throw fatal
  // Workers finish out of order; listings read better sorted.
  result.imported.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  result.skipped.sort()
  return result
}
