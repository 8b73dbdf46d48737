/** `dagstore verify [key…|--all] [--repair]`: hash every block of shards, check their indices. */
import type { Command } from 'commander'
import type { CliContext } from '../context.js'
import { CommandFailed, UsageError } from '../errors.js'
import { json } from '../format.js'
import type { VerifyListJson } from '../../wire.js'

interface VerifyCliOpts { all?: boolean, repair?: boolean, json?: boolean }

export function addVerify (program: Command, ctx: CliContext): void {
  program.command('verify')
    .description('re-read shards, hash every block against its CID, check the full index and top-level entries; exit 1 when anything is wrong')
    .argument('[key...]')
    .option('--all', 'every shard (lazy ones not yet indexed are skipped)')
    .option('--repair', 'rewrite the full index and top-level entries of shards whose data is sound but whose indices are not')
    .option('--json', 'JSON output: { shards: [report…] } (no progress)')
    .action(async (keys: string[], opts: VerifyCliOpts, cmd: Command) => {
      if ((keys.length === 0) === (opts.all !== true)) throw new UsageError('verify takes keys or --all (one of them)')
      const { verifyShards, settled } = await import('../verify.js')
      let skipped = 0
      const reports = await ctx.withBackend(cmd, async (backend) => {
        let targets = keys
        if (opts.all === true) {
          const states = await backend.states()
          // A lazy shard not yet indexed has nothing to compare; verifying it would fetch it.
          targets = states.filter((s) => s.state !== 'new').map((s) => s.key)
          skipped = states.length - targets.length
        }
        return await verifyShards(backend, targets, {
          repair: opts.repair === true,
          progress: opts.json === true ? 'none' : opts.all === true && ctx.io.stderr.isTTY === true ? 'bar' : 'lines',
          out: (line) => { ctx.out(line + '\n') },
          terminal: ctx.io.stderr
        })
      })
      const failed = reports.filter((r) => !settled(r)).length
      if (opts.json === true) {
        ctx.out(json({ shards: reports } satisfies VerifyListJson))
      } else if (opts.all === true || reports.length > 1) {
        const ok = reports.filter((r) => r.ok).length
        const repaired = reports.filter((r) => !r.ok && r.repaired).length
        ctx.out(`verified ${reports.length} shard${reports.length === 1 ? '' : 's'}: ${ok} ok, ${repaired} repaired, ${failed} failed` +
          (skipped > 0 ? ` (${skipped} lazy shards not yet indexed skipped)` : '') + '\n')
      }
      if (failed > 0) throw new CommandFailed()
    })
}
