/** `dagstore nodes` and `dagstore adopt --from <node>`: the cluster's nodes (docs/CLUSTER.md). */
import type { Command } from 'commander'
import type { CliContext } from '../context.js'
import { json, nodesTable } from '../format.js'

export function addNodes (program: Command, ctx: CliContext): void {
  program.command('nodes')
    .description('the cluster\'s nodes: name, alive, last heartbeat, advertised URL, shards by state')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const body = await ctx.withBackend(cmd, async (backend) => await backend.nodes())
      ctx.out(opts.json === true ? json(body) : nodesTable(body))
    })
}

export function addAdopt (program: Command, ctx: CliContext): void {
  program.command('adopt')
    .description('take over the http/https-mounted shards of a dead node (refused while it is alive)')
    .requiredOption('--from <node>', 'the dead node')
    .option('--json', 'JSON output')
    .action(async (opts: { from: string, json?: boolean }, cmd: Command) => {
      const body = await ctx.withBackend(cmd, async (backend) => await backend.adopt(opts.from))
      if (opts.json === true) ctx.out(json(body))
      else ctx.out(`adopted ${body.shards.length} shard(s) of ${body.from} on ${body.node}${body.shards.length === 0 ? '' : ':\n' + body.shards.join('\n')}\n`)
    })
}
