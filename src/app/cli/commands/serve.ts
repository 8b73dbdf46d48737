/** `dagstore serve`: the options; serving itself is ../serve.ts. */
import { Option, type Command } from 'commander'
import type { CliContext } from '../context.js'
import { CommandFailed, EXIT_OK } from '../errors.js'
import { copyOption, intArg, verifyHashesOption, type EnvOptions } from '../options.js'
import type { CopyPolicy } from '../../../base/types.js'
import type { VerifyHashes } from '../../../base/index-types.js'
import { advertiseOption, dbOption, nodeOption, type DatabaseOpts } from '../database.js'

const DEFAULT_LISTEN = '127.0.0.1:8080'

interface ServeOpts extends DatabaseOpts {
  listen: string
  token?: string
  auth: boolean
  allowRoot: string[]
  importSample?: boolean
  shutdownGrace: number
  verifyHashes: VerifyHashes
  copy: CopyPolicy
}

export function addServe (program: Command, ctx: CliContext, env: EnvOptions): void {
  program.command('serve')
    .description('serve the repo over HTTP: admin API and /ipfs/{cid} gateway; other commands then go through it')
    .addOption(env.add(new Option('-l, --listen <host:port>', 'address to listen on (port 0: any free port)').default(DEFAULT_LISTEN),
      'DAGSTORE_LISTEN'))
    .addOption(env.add(new Option('--token <token>', 'admin API bearer token (default: <dir>/token, created on first use)'), 'DAGSTORE_TOKEN'))
    .option('--no-auth', 'no admin token (only on a loopback address)')
    .option('--allow-root <dir>', 'folder whose files the admin API may register (repeatable)',
      (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--import-sample', 'register the sample CAR shipped with the package and print the URL of one of its blocks')
    .option('--shutdown-grace <ms>', 'on SIGINT/SIGTERM, how long in-flight requests may finish before downloads are aborted', intArg('--shutdown-grace', 0), 5000)
    .addOption(verifyHashesOption(true))
    .addOption(env.add(copyOption('remote shards: auto (read in place when the origin honours Range, else copy), always (copy), never (in place or fail)')
      .default('auto'), 'DAGSTORE_COPY'))
    .addOption(dbOption(env, 'keep shard records and indices in this PostgreSQL-protocol database (postgres://…), shared by the nodes of a cluster'))
    .addOption(nodeOption(env))
    .addOption(advertiseOption(env))
    .action(async (opts: ServeOpts, cmd: Command) => {
      const g = ctx.globals(cmd)
      // Loaded here: the server (and gateway) code is for serve only; the other commands start faster without it.
      const { serve } = await import('../serve.js')
      const code = await serve({
        database: { db: opts.db, node: opts.node, advertise: opts.advertise },
        cwd: ctx.io.cwd,
        dir: g.dir,
        listen: opts.listen,
        token: opts.token,
        auth: opts.auth,
        allowRoot: opts.allowRoot,
        importSample: opts.importSample === true,
        shutdownGraceMs: opts.shutdownGrace,
        verifyHashes: opts.verifyHashes,
        copy: opts.copy,
        out: (line) => { ctx.out(line + '\n') },
        err: (line) => { ctx.err(line + '\n') },
        onError: ctx.warn(g.verbose),
        stop: ctx.io.stop,
        onExit: ctx.io.onExit
      })
      if (code !== EXIT_OK) throw new CommandFailed(code)
    })
}
