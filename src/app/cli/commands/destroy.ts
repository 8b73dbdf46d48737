/** `dagstore destroy <key>`: the shard's record, index and local copy; never the user's file. */
import type { Command } from 'commander'
import type { DestroyedJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { json } from '../format.js'

export function addDestroy (program: Command, ctx: CliContext): void {
  program.command('destroy')
    .description('remove a shard: its record, index and local copy (never your files)')
    .argument('<key>')
    .option('--json', 'JSON output')
    .action(async (key: string, opts: { json?: boolean }, cmd: Command) => {
      await ctx.withBackend(cmd, async (backend) => { await backend.destroy(key) })
      ctx.out(opts.json === true ? json({ key, destroyed: true } satisfies DestroyedJson) : `destroyed ${key}\n`)
    })
}
