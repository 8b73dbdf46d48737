/** `dagstore register <path|url...>`: one shard per file or URL; the others go on when one fails. */
import type { Command } from 'commander'
import { CODE } from '../../../base/errors/codes.js'
import { redactUrl } from '../../../base/redact.js'
import type { ErrorJson, ShardJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { CliError, CommandFailed, EXIT_USAGE, UsageError, describeError, errorCode, errorJson } from '../errors.js'
import { json, shardSummary } from '../format.js'
import { keyFor, parseTarget } from '../targets.js'
import { copyOption, verifyHashesOption } from '../options.js'
import type { CopyPolicy } from '../../../base/types.js'
import type { RegisterJson } from '../backend.js'

function registerOpts (opts: { lazy?: boolean, copy?: CopyPolicy }): RegisterJson {
  return opts.copy === undefined ? { lazy: opts.lazy === true } : { lazy: opts.lazy === true, copy: opts.copy }
}
import { ByteProgress, type ProgressMode } from '../progress.js'

/** A failed register leaves an errored shard behind: say what to do with it. */
function registerFailure (e: unknown, key: string): unknown {
  if (errorCode(e) !== CODE.ERR_SHARD_INITIALIZATION_FAILED) return e
  return new CliError(errorCode(e), errorJson(e).message, {
    hint: `shard ${JSON.stringify(key)} stays registered as errored: fix its source and \`dagstore recover ${key}\`, or \`dagstore destroy ${key}\``,
    status: e instanceof CliError ? e.status : undefined,
    cause: e instanceof CliError ? e.cause : e
  })
}

/** Failures no other target would escape (usage, auth, no server): the command's, not one target's. */
function endsTheCommand (e: unknown): boolean {
  return e instanceof CliError && (e.exitCode === EXIT_USAGE || e.status === 401 || e.code === CODE.ERR_SERVER_UNREACHABLE)
}

export function addRegister (program: Command, ctx: CliContext): void {
  program.command('register')
    .description('register CAR files (paths or http(s) URLs); key: the file name without .car')
    .argument('<path|url...>')
    .option('--lazy', 'index on first use instead of now')
    .option('--key <key>', 'the shard key (with a single path or URL)')
    .addOption(verifyHashesOption(false))
    .addOption(copyOption('remote URLs: auto (read in place when the origin honours Range, else copy), always (copy), never (in place or fail); default: the store\'s'))
    .option('--json', 'JSON output')
    .action(async (args: string[], opts: { lazy?: boolean, key?: string, json?: boolean, copy?: CopyPolicy }, cmd: Command) => {
      if (opts.key !== undefined && args.length !== 1) throw new UsageError('--key goes with exactly one <path|url>')
      const shards: ShardJson[] = []
      const errors: Array<{ target: string, key?: string, error: ErrorJson }> = []
      // Like import: a bar on a terminal, plain lines otherwise, nothing with --json.
      const progressMode: ProgressMode = opts.json === true ? 'none' : ctx.io.stderr.isTTY === true ? 'bar' : 'lines'
      await ctx.withBackend(cmd, async (backend) => {
        for (const arg of args) {
          let key: string | undefined
          try {
            const target = await parseTarget(arg, ctx.io.cwd)
            key = opts.key ?? keyFor(target)
            let shard: ShardJson
            const progress = new ByteProgress({ mode: progressMode, label: `register ${key}`, terminal: ctx.io.stderr })
            try {
              shard = await backend.register(key, target.url, registerOpts(opts), (position, total) => { progress.update(position, total) })
            } catch (e) {
              throw registerFailure(e, key)
            } finally {
              progress.stop()
            }
            shards.push(shard)
            if (opts.json !== true) ctx.out(`registered ${shard.key} (${shardSummary(shard)})\n`)
          } catch (e) {
            if (endsTheCommand(e)) throw e
            errors.push({ target: redactUrl(arg), ...(key === undefined ? {} : { key }), error: errorJson(e) })
            if (opts.json !== true) ctx.err(`dagstore: ${describeError(e)}\n`)
          }
        }
      })
      if (opts.json === true) ctx.out(json({ shards, errors }))
      if (errors.length > 0) throw new CommandFailed()
    })
}
