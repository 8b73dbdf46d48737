/**
 * The `dagstore` program: global options, output settings and the commands (commands/*),
 * wired to the io it is given. Every command but `serve` goes through a running server of
 * the repo when there is one (LevelDB allows one process per repo), else opens the store
 * itself. Exit codes: 0 ok, 1 operation failed, 2 usage.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError, Option, type Help } from 'commander'
import { CODE } from '../../../base/errors/codes.js'
import { CliContext } from '../context.js'
import { CliError, CommandFailed, EXIT_FAILED, EXIT_OK, EXIT_USAGE, formatError } from '../errors.js'
import type { CliIo } from '../io.js'
import { EnvOptions } from '../options.js'
import { addDestroy } from './destroy.js'
import { addFind } from './find.js'
import { addGc } from './gc.js'
import { addGet } from './get.js'
import { addImport } from './import.js'
import { addInfo } from './info.js'
import { addLs } from './ls.js'
import { addMigrate } from './migrate.js'
import { addAdopt, addNodes } from './nodes.js'
import { addRecover } from './recover.js'
import { addRegister } from './register.js'
import { addServe } from './serve.js'
import { addVerify } from './verify.js'

function packageVersion (): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../../../package.json', import.meta.url), 'utf8')) as { version?: string }
    return pkg.version ?? '0.0.0'
  } catch {
    return '0.0.0'
  }
}

function buildProgram (io: CliIo): Command {
  const ctx = new CliContext(io)
  const env = new EnvOptions(io.env)
  const program = new Command('dagstore')
  program
    .description('A shard store for CAR files: registers them, indexes them, serves their blocks by CID.')
    .version(packageVersion(), '-V, --version')
    .addOption(env.add(new Option('-d, --dir <path>', 'the repo folder').default('.dagstore'), 'DAGSTORE_DIR'))
    .option('-v, --verbose', 'say whether a command goes through the server; stack traces on errors')
    .exitOverride()
    .showSuggestionAfterError()
    // configureHelp() copies these onto commander's Help: `this` is that Help.
    .configureHelp({ optionDescription (option) { return env.describe(this as Help, option) } })
    .configureOutput({
      writeOut: (s) => { ctx.out(s) },
      writeErr: (s) => { ctx.err(s) },
      getOutHelpWidth: () => (io.stdout.isTTY === true ? io.stdout.columns : undefined) ?? 80,
      getErrHelpWidth: () => (io.stderr.isTTY === true ? io.stderr.columns : undefined) ?? 80,
      // The CLI writes no colour; this only tells commander there is none to strip.
      getOutHasColors: () => false,
      getErrHasColors: () => false,
      // Commander's own errors (unknown option, missing argument) in the CLI's one-line format.
      outputError: (str, write) => { write(`dagstore: ${CODE.ERR_USAGE}: ${str.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')} (see dagstore --help)\n`) }
    })
    .hook('preAction', (_program, action) => { env.apply(action) })
  program.addHelpText('after', `
Every command but serve goes through the repo's running server (see <dir>/serve.json) when
there is one, else opens the repo itself. Exit codes: 0 ok, 1 failed, 2 usage.
Environment: DAGSTORE_DIR (--dir), DAGSTORE_LISTEN (serve --listen), DAGSTORE_TOKEN (admin token),
DAGSTORE_DB, DAGSTORE_NODE, DAGSTORE_ADVERTISE (serve --db/--node/--advertise; migrate --db).`)

  addServe(program, ctx, env)
  addRegister(program, ctx)
  addImport(program, ctx)
  addLs(program, ctx, env)
  addInfo(program, ctx)
  addFind(program, ctx)
  addGet(program, ctx)
  addGc(program, ctx)
  addRecover(program, ctx)
  addVerify(program, ctx)
  addDestroy(program, ctx)
  addMigrate(program, ctx, env)
  addNodes(program, ctx)
  addAdopt(program, ctx)
  return program
}

/** Runs `dagstore ...args` (the arguments after the program name) and ends it through io.exit. */
export async function runCli (args: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io)
  let code: number
  try {
    await program.parseAsync(args, { from: 'user' })
    code = EXIT_OK
  } catch (e) {
    if (e instanceof CommanderError) {
      code = e.exitCode === 0 ? EXIT_OK : EXIT_USAGE
    } else if (e instanceof CommandFailed) {
      code = e.exitCode
    } else {
      const verbose = program.opts<{ verbose?: boolean }>().verbose === true || args.includes('--verbose') || args.includes('-v')
      io.stderr.write(formatError(e, verbose))
      code = e instanceof CliError ? e.exitCode : EXIT_FAILED
    }
  }
  io.exit(code)
  return code
}
