/** `dagstore info <key>`: one shard in detail. */
import type { Command } from 'commander'
import type { CliContext } from '../context.js'
import { json, shardDetails } from '../format.js'

export function addInfo (program: Command, ctx: CliContext): void {
  program.command('info')
    .description('one shard in detail')
    .argument('<key>')
    .option('--json', 'JSON output')
    .action(async (key: string, opts: { json?: boolean }, cmd: Command) => {
      const shard = await ctx.withBackend(cmd, async (backend) => await backend.info(key))
      ctx.out(opts.json === true ? json(shard) : shardDetails(shard))
    })
}
