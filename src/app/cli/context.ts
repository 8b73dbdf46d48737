/**
 * What every command works with: the run's io, its two output streams, the global options,
 * and the backend (the repo's running server, or the store itself) a command goes through.
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import type { Backend } from './backend.js'
import type { VerifyHashes } from '../../base/index-types.js'
import { describeError } from './errors.js'
import type { CliIo } from './io.js'

export interface Globals {
  /** --dir, absolute. */
  dir: string
  verbose: boolean
}

export class CliContext {
  readonly io: CliIo

  constructor (io: CliIo) {
    this.io = io
  }

  out (text: string): void {
    this.io.stdout.write(text)
  }

  err (text: string): void {
    this.io.stderr.write(text)
  }

  globals (cmd: Command): Globals {
    const g = cmd.optsWithGlobals<{ dir: string, verbose?: boolean }>()
    return { dir: this.path(g.dir), verbose: g.verbose === true }
  }

  /** A path from the command line, absolute. */
  path (p: string): string {
    return resolve(this.io.cwd, p)
  }

  /** The store's onError: a warning line, with --verbose its stack. */
  warn (verbose: boolean): (e: unknown, context: string) => void {
    return (e, context) => {
      this.err(`dagstore: warning: ${context}: ${describeError(e)}\n`)
      if (verbose && e instanceof Error && e.stack !== undefined) this.err(e.stack + '\n')
    }
  }

  async withBackend<T> (cmd: Command, fn: (backend: Backend) => Promise<T>): Promise<T> {
    const g = this.globals(cmd)
    // Loaded on use: --help, usage errors and the like answer without loading the store.
    const { openBackend } = await import('./backend.js')
    // Commands that index (register, import, recover) take --verify-hashes; given, it is for a store opened here.
    const { verifyHashes } = cmd.opts<{ verifyHashes?: VerifyHashes }>()
    const backend = await openBackend({
      dir: g.dir,
      ...(verifyHashes === undefined ? {} : { verifyHashes }),
      envToken: this.io.env.DAGSTORE_TOKEN,
      onError: this.warn(g.verbose),
      log: g.verbose ? (line) => { this.err(`dagstore: ${line}\n`) } : undefined
    })
    try {
      return await fn(backend)
    } finally {
      await backend.close()
    }
  }
}
