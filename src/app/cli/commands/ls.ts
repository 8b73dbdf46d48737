/** `dagstore ls`: every shard, as a table or JSON. */
import type { Command } from 'commander'
import type { ShardListJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { json, shardTable } from '../format.js'

export function addLs (program: Command, ctx: CliContext): void {
  program.command('ls')
    .description('list shards: key, state, refs, size, error')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const shards = await ctx.withBackend(cmd, async (backend) => await backend.list())
      if (opts.json === true) ctx.out(json({ shards } satisfies ShardListJson))
      else ctx.out(shards.length === 0 ? 'no shards\n' : shardTable(shards))
    })
}
