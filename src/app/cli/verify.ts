/**
 * `dagstore verify`: shard after shard, one report each. A progress bar on a TTY for --all
 * (the lines go above it), plain lines otherwise, none with --json.
 */
import cliProgress from 'cli-progress'
import { CODE } from '../../base/errors/codes.js'
import type { VerifyJson } from '../wire.js'
import type { Backend } from './backend.js'
import { errorCode, errorJson } from './errors.js'

export interface VerifyOptions {
  repair: boolean
  progress: 'bar' | 'lines' | 'none'
  out: (line: string) => void
  /** Where the bar is drawn (stderr). */
  terminal: NodeJS.WritableStream
}

/** A key that names no shard is a finding about that key; anything else (no server, no token) ends the command. */
const PER_KEY: ReadonlySet<string> = new Set([CODE.ERR_SHARD_UNKNOWN, CODE.ERR_INVALID_SHARD_KEY])

/** Whether the shard is fine now: nothing found, or only what the repair rewrote. */
export function settled (r: VerifyJson): boolean {
  return r.ok || r.repaired
}

function reportLines (r: VerifyJson): string[] {
  const head = r.ok
    ? `ok ${r.key}: ${r.blocks} blocks`
    : `${r.repaired ? 'repaired' : 'FAILED'} ${r.key}: ${r.problems.length === 1 ? '1 problem' : `${r.problems.length} problems`}` +
      (r.repaired ? ', full index and top-level entries rewritten' : '')
  return [head, ...r.problems.map((p) => `  ${p.code}: ${p.message}`)]
}

export async function verifyShards (backend: Backend, keys: string[], options: VerifyOptions): Promise<VerifyJson[]> {
  let bar: cliProgress.MultiBar | undefined
  let progress: cliProgress.SingleBar | undefined
  if (options.progress === 'bar') {
    bar = new cliProgress.MultiBar({
      format: 'verifying [{bar}] {value}/{total} {key}',
      hideCursor: true,
      clearOnComplete: true,
      stopOnComplete: false,
      stream: options.terminal
    }, cliProgress.Presets.shades_classic)
    progress = bar.create(keys.length, 0, { key: '' })
  }
  const say = (lines: string[]): void => {
    if (options.progress === 'lines') for (const line of lines) options.out(line)
    else if (bar !== undefined) bar.log(lines.join('\n') + '\n')
  }
  const reports: VerifyJson[] = []
  try {
    for (const key of keys) {
      progress?.update({ key })
      let report: VerifyJson
      try {
        report = await backend.verify(key, options.repair)
      } catch (err) {
        if (!PER_KEY.has(errorCode(err))) throw err
        report = { key, ok: false, blocks: 0, problems: [errorJson(err)], repaired: false }
      }
      reports.push(report)
      say(reportLines(report))
      progress?.increment()
    }
  } finally {
    // Logged lines wait for the next redraw, and stop() clears without one: flush them first.
    bar?.update()
    bar?.stop()
  }
  return reports
}
