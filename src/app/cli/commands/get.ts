/** `dagstore get <cid>`: a block's bytes, raw on stdout or into a file. */
import { writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { CliContext } from '../context.js'
import { parseCid } from '../targets.js'

export function addGet (program: Command, ctx: CliContext): void {
  program.command('get')
    .description('a block\'s bytes, to stdout or a file')
    .argument('<cid>')
    .option('-o, --output <file>', 'write the block to this file')
    .action(async (arg: string, opts: { output?: string }, cmd: Command) => {
      const cid = parseCid(arg)
      const bytes = await ctx.withBackend(cmd, async (backend) => await backend.get(cid))
      if (opts.output !== undefined) {
        await writeFile(ctx.path(opts.output), bytes)
        ctx.out(`wrote ${bytes.byteLength} bytes to ${opts.output}\n`)
      } else {
        await new Promise<void>((resolve, reject) => { ctx.io.stdout.write(bytes, (e) => { e == null ? resolve() : reject(e) }) })
      }
    })
}
