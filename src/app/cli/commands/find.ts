/** `dagstore find <cid>`: the keys of the shards holding a block. */
import type { Command } from 'commander'
import type { FindJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { json } from '../format.js'
import { parseCid } from '../targets.js'

export function addFind (program: Command, ctx: CliContext): void {
  program.command('find')
    .description('the shards holding a block')
    .argument('<cid>')
    .option('--json', 'JSON output')
    .action(async (arg: string, opts: { json?: boolean }, cmd: Command) => {
      const cid = parseCid(arg)
      const shards = await ctx.withBackend(cmd, async (backend) => await backend.find(cid))
      if (opts.json === true) ctx.out(json({ cid: cid.toString(), shards } satisfies FindJson))
      else if (shards.length === 0) ctx.err(`no shard holds ${cid.toString()}\n`)
      else ctx.out(shards.join('\n') + '\n')
    })
}
