/**
 * Progress of reading one CAR (bytes, rate, ETA when the size is known): a bar on a terminal,
 * otherwise a plain line at most every `intervalMs` (logs and pipes get a few lines, never a
 * flood). Fed by observedMount (storage/mount/observed.ts) as the store reads the shard, or by the
 * shard's progress polled from a running server.
 */
import cliProgress from 'cli-progress'
import { formatBytes } from './format.js'

export type ProgressMode = 'bar' | 'lines' | 'none'

export interface ByteProgressOptions {
  mode: ProgressMode
  /** What is being read, e.g. `register sample`. */
  label: string
  /** Where the bar or the lines go (stderr: stdout keeps the command's results). */
  terminal: NodeJS.WritableStream
  /** Lines mode: at most one line this often. Default 5 s. */
  intervalMs?: number
  /** The clock (ms); default performance.now. */
  now?: () => number
}

const DEFAULT_INTERVAL_MS = 5_000

export class ByteProgress {
  private readonly options: ByteProgressOptions
  private readonly now: () => number
  private bar: cliProgress.SingleBar | undefined
  private started: number | undefined
  private lastLine = 0
  private stopped = false

  constructor (options: ByteProgressOptions) {
    this.options = options
    this.now = options.now ?? (() => performance.now())
  }

  /** `position` bytes of `total` (undefined: not known) read so far. */
  update (position: number, total: number | undefined): void {
    if (this.stopped || this.options.mode === 'none') return
    const now = this.now()
    if (this.started === undefined) {
      this.started = now
      this.lastLine = now
      if (this.options.mode === 'bar') this.startBar(total)
    }
    const rate = now > this.started ? position / ((now - this.started) / 1000) : undefined
    const values = { done: formatBytes(position), size: formatBytes(total), speed: rate === undefined ? '-' : `${formatBytes(Math.round(rate))}/s` }
    if (this.bar !== undefined) {
      if (total !== undefined && total !== this.bar.getTotal()) this.bar.setTotal(total)
      this.bar.update(position, values)
      return
    }
    if (now - this.lastLine < (this.options.intervalMs ?? DEFAULT_INTERVAL_MS)) return
    this.lastLine = now
    const share = total === undefined || total === 0 ? '' : ` (${Math.floor(position / total * 100)}%)`
    this.options.terminal.write(`${this.options.label}: ${values.done}${total === undefined ? '' : ` of ${values.size}`}${share}, ${values.speed}\n`)
  }

  /** Ends the bar (cleared from the terminal); later updates are ignored. */
  stop (): void {
    this.stopped = true
    this.bar?.stop()
  }

  private startBar (total: number | undefined): void {
    const known = total !== undefined
    this.bar = new cliProgress.SingleBar({
      format: known
        ? `${this.options.label} [{bar}] {percentage}% | {done} of {size} | {speed} | ETA {eta_formatted}`
        : `${this.options.label} {done} | {speed}`,
      hideCursor: true,
      clearOnComplete: true,
      stream: this.options.terminal
    }, cliProgress.Presets.shades_classic)
    this.bar.start(total ?? 0, 0, { done: formatBytes(0), size: formatBytes(total), speed: '-' })
  }
}
