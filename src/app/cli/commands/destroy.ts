/**
 * `dagstore destroy <key> [--drain]`: the shard's record, index and local copy; never the
 * user's file. With --drain a shard in use (a serve's gateway reading it) takes no new
 * readers and goes once the last one is done, instead of failing with ERR_SHARD_IN_USE.
 */
import type { Command } from 'commander'
import type { DestroyedJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { json } from '../format.js'

export function addDestroy (program: Command, ctx: CliContext): void {
  program.command('destroy')
    .description('remove a shard: its record, index and local copy (never your files)')
    .argument('<key>')
    .option('--drain', 'if the shard is in use, refuse new readers and destroy it once the current ones finish')
    .option('--json', 'JSON output')
    .action(async (key: string, opts: { drain?: boolean, json?: boolean }, cmd: Command) => {
      await ctx.withBackend(cmd, async (backend) => { await backend.destroy(key, opts.drain === true) })
      ctx.out(opts.json === true ? json({ key, destroyed: true } satisfies DestroyedJson) : `destroyed ${key}\n`)
    })
}
