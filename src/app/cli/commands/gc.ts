/** `dagstore gc`: reclaims the local copies of idle shards; a shard that could not be is a failure. */
import type { Command } from 'commander'
import type { ErrorJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { CommandFailed } from '../errors.js'
import { formatBytes, json } from '../format.js'

export function addGc (program: Command, ctx: CliContext): void {
  program.command('gc')
    .description('reclaim the local copies of idle shards')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const res = await ctx.withBackend(cmd, async (backend) => await backend.gc())
      const failed = Object.entries(res.shards).filter((e): e is [string, ErrorJson] => e[1] !== null)
      if (opts.json === true) {
        ctx.out(json(res))
      } else {
        const done = Object.keys(res.shards).length - failed.length
        ctx.out(`reclaimed ${formatBytes(res.reclaimedBytes)} from ${done} shard(s)\n`)
        for (const [key, e] of failed) ctx.err(`dagstore: ${e.code}: ${key}: ${e.message}\n`)
      }
      if (failed.length > 0) throw new CommandFailed()
    })
}
