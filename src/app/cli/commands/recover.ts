/** `dagstore recover <key> | --all-errored`: re-fetches and re-indexes errored shards. */
import type { Command } from 'commander'
import type { ErrorJson, ShardJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { CommandFailed, UsageError, describeError, errorJson } from '../errors.js'
import { json, shardSummary } from '../format.js'
import { verifyHashesOption } from '../options.js'

export function addRecover (program: Command, ctx: CliContext): void {
  program.command('recover')
    .description('re-fetch and re-index an errored shard (or all of them)')
    .argument('[key]')
    .option('--all-errored', 'every errored shard')
    .addOption(verifyHashesOption(false))
    .option('--json', 'JSON output')
    .action(async (key: string | undefined, opts: { allErrored?: boolean, json?: boolean }, cmd: Command) => {
      if ((key === undefined) === (opts.allErrored !== true)) throw new UsageError('recover takes a <key> or --all-errored (one of them)')
      const shards: ShardJson[] = []
      const errors: Array<{ key: string, error: ErrorJson }> = []
      await ctx.withBackend(cmd, async (backend) => {
        const keys = key !== undefined ? [key] : (await backend.states()).filter((s) => s.state === 'errored').map((s) => s.key)
        if (keys.length === 0 && opts.json !== true) ctx.out('no errored shards\n')
        for (const k of keys) {
          try {
            const shard = await backend.recover(k)
            shards.push(shard)
            if (opts.json !== true) ctx.out(`recovered ${k} (${shardSummary(shard)})\n`)
          } catch (e) {
            // A single key: its failure is the command's.
            if (key !== undefined && opts.json !== true) throw e
            errors.push({ key: k, error: errorJson(e) })
            if (opts.json !== true) ctx.err(`dagstore: ${describeError(e)}\n`)
          }
        }
      })
      if (opts.json === true) ctx.out(json({ shards, errors }))
      if (errors.length > 0) throw new CommandFailed()
    })
}
