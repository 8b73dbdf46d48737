/** `dagstore import <dir>`: the options and the summary line; the import itself is ../import.ts. */
import type { Command } from 'commander'
import type { CliContext } from '../context.js'
import { CommandFailed } from '../errors.js'
import { json } from '../format.js'
import { intArg, verifyHashesOption } from '../options.js'

interface ImportOpts {
  lazy?: boolean
  prefix: string
  concurrency: number
  json?: boolean
}

export function addImport (program: Command, ctx: CliContext): void {
  program.command('import')
    .description('register every .car file below a folder; key: its path below the folder without .car')
    .argument('<dir>')
    .option('--lazy', 'index on first use instead of now')
    .option('--prefix <prefix>', 'put before every key', '')
    .option('--concurrency <n>', 'registrations at once', intArg('--concurrency', 1), 4)
    .addOption(verifyHashesOption(false))
    .option('--json', 'JSON output (no progress)')
    .action(async (dir: string, opts: ImportOpts, cmd: Command) => {
      const g = ctx.globals(cmd)
      const { importDir } = await import('../import.js')
      const result = await ctx.withBackend(cmd, async (backend) => await importDir(backend, ctx.path(dir), {
        lazy: opts.lazy === true,
        prefix: opts.prefix,
        concurrency: opts.concurrency,
        skip: [g.dir],
        progress: opts.json === true ? 'none' : ctx.io.stderr.isTTY === true ? 'bar' : 'lines',
        out: (line) => { ctx.out(line + '\n') },
        terminal: ctx.io.stderr
      }))
      if (opts.json === true) {
        ctx.out(json(result))
      } else {
        const total = result.imported.length + result.skipped.length + result.failed.length
        ctx.out(total === 0
          ? `no .car files below ${result.root}\n`
          : `imported ${result.imported.length}, skipped ${result.skipped.length} (already registered), failed ${result.failed.length} of ${total} .car files below ${result.root}\n`)
      }
      if (result.failed.length > 0) throw new CommandFailed()
    })
}
