/**
 * Option helpers: integer arguments, and options that fall back to an environment variable.
 * Commander's own Option.env() reads process.env; the CLI's environment is its io's (an
 * in-process run has its own), so the variables are applied here instead, before the action,
 * and shown in help the way Option.env() shows them.
 */
import { Help, InvalidArgumentError, Option, type Command } from 'commander'
import type { VerifyHashes } from '../../base/index-types.js'
import { COPY_POLICIES } from '../../base/types.js'

export function intArg (name: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!/^\d+$/.test(value) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`)
    return n
  }
}

const VERIFY_HASHES: Readonly<Record<string, VerifyHashes>> = Object.freeze({ remote: 'remote', all: true, none: false })

/**
 * `--verify-hashes remote|all|none`: the store's verifyHashes ('remote', true, false). `serve`
 * gives it a default; commands that open the repo only when no server does leave it unset, so
 * that one given explicitly can be refused when a server (with its own setting) answers instead.
 */
export function verifyHashesOption (withDefault: boolean): Option {
  const which = 'remote (data from http(s) URLs), all, none'
  const option = new Option('--verify-hashes <which>', withDefault
    ? `hash blocks against their CIDs while indexing: ${which}`
    : `hash blocks against their CIDs while indexing: ${which}; default remote; not while a server has the repo`)
    .choices(Object.keys(VERIFY_HASHES))
    .argParser((value: string) => {
      const v = VERIFY_HASHES[value]
      if (v === undefined) throw new InvalidArgumentError(`expected remote, all or none, got ${JSON.stringify(value)}`)
      return v
    })
  return withDefault ? option.default('remote' satisfies VerifyHashes, 'remote') : option
}

/** `--copy auto|always|never`: how a remote shard is read (docs/REMOTE.md). */
export function copyOption (description: string): Option {
  return new Option('--copy <policy>', description).choices([...COPY_POLICIES])
}

/** Value options (without a parser of their own) whose default an environment variable overrides. */
export class EnvOptions {
  private readonly variables = new Map<Option, string>()
  private readonly env: Readonly<Record<string, string | undefined>>

  constructor (env: Readonly<Record<string, string | undefined>>) {
    this.env = env
  }

  add (option: Option, variable: string): Option {
    this.variables.set(option, variable)
    return option
  }

  /** For configureHelp(): `(default: ..., env: NAME)` as commander writes it. */
  describe (help: Help, option: Option): string {
    const variable = this.variables.get(option)
    const shown = variable === undefined ? option : Object.assign(Object.create(option) as Option, { envVar: variable })
    return Help.prototype.optionDescription.call(help, shown)
  }

  /** Sets, on `command` and its parents, what the environment gives where the command line gave nothing. */
  apply (command: Command): void {
    for (let cmd: Command | null = command; cmd !== null; cmd = cmd.parent) {
      for (const option of cmd.options) {
        const variable = this.variables.get(option)
        const value = variable === undefined ? undefined : this.env[variable]
        if (value === undefined) continue
        const key = option.attributeName()
        const source = cmd.getOptionValueSource(key)
        if (source === undefined || source === 'default') cmd.setOptionValueWithSource(key, value, 'env')
      }
    }
  }
}
