/**
 * How the CLI fails: one line `dagstore: CODE: message` on stderr and an exit code
 * (0 ok, 1 operation failed, 2 usage). Stacks only with --verbose.
 */
import { CODE } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'
import type { ErrorJson } from '../wire.js'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

/** A failure the CLI itself detected, with the code users (and scripts) see. */
export class CliError extends Error {
  readonly code: string
  readonly exitCode: number
  /** What to do about it, appended to the error line. */
  readonly hint: string | undefined
  /** HTTP status when the error came from the admin API. */
  readonly status: number | undefined

  constructor (
    code: string, message: string, options: { exitCode?: number, hint?: string | undefined, status?: number | undefined, cause?: unknown } = {}
  ) {
    super(message, { cause: options.cause })
    this.name = 'CliError'
    this.code = code
    this.exitCode = options.exitCode ?? EXIT_FAILED
    this.hint = options.hint
    this.status = options.status
  }
}

export class UsageError extends CliError {
  constructor (message: string, hint?: string) {
    super(CODE.ERR_USAGE, message, { exitCode: EXIT_USAGE, hint })
  }
}

export function errorCode (err: unknown): string {
  const code = codeOf(err)
  return code !== undefined && code !== '' ? code : CODE.ERR_FAILED
}

function oneLine (s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

/** The `{ code, message }` the admin API and every --json output use. */
export function errorJson (err: unknown): ErrorJson {
  return { code: errorCode(err), message: oneLine(err instanceof Error ? err.message : String(err)) }
}

/**
 * `CODE: message`, plus the innermost cause when the message does not already say it
 * (a wrapped InvalidCarError is what the user needs to see, not just "initialization failed").
 */
export function describeError (err: unknown): string {
  const { code, message } = errorJson(err)
  let text = `${code}: ${message}`
  let root: unknown = err
  for (let i = 0; i < 8 && root instanceof Error && root.cause !== undefined; i++) root = root.cause
  if (root !== err && root !== undefined) {
    const inner = errorJson(root)
    if (!message.includes(inner.message)) text += ` (cause: ${inner.code === CODE.ERR_FAILED ? '' : `${inner.code}: `}${inner.message})`
  }
  const hint = err instanceof CliError ? err.hint : undefined
  if (hint !== undefined) text += ` — ${hint}`
  return text
}

/** The error line; with `verbose`, the stack and every cause follow it. */
export function formatError (err: unknown, verbose: boolean): string {
  let out = `dagstore: ${describeError(err)}\n`
  if (verbose) {
    let e: unknown = err
    for (let i = 0; i < 8 && e !== undefined; i++) {
      out += (i === 0 ? '' : 'caused by: ') + (e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e)) + '\n'
      e = e instanceof Error ? e.cause : undefined
    }
  }
  return out
}

/** LevelDB refuses a second opener of the same folder with this code (in `cause`). */
export function isLevelLocked (err: unknown): boolean {
  for (let e: unknown = err, i = 0; i < 8 && e instanceof Error; e = e.cause, i++) {
    if (codeOf(e) === 'LEVEL_LOCKED') return true
  }
  return false
}

/**
 * Ends a command that has already said what failed (some of its targets did): the run exits
 * with `exitCode` and prints nothing more.
 */
export class CommandFailed extends Error {
  readonly exitCode: number

  constructor (exitCode = EXIT_FAILED) {
    super(`exit ${exitCode}`)
    this.name = 'CommandFailed'
    this.exitCode = exitCode
  }
}
