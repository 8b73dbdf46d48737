#!/usr/bin/env node
/**
 * The `dagstore` command. Every command but `serve` goes through a running server of the
 * repo when there is one (LevelDB allows one process per repo), else opens the store itself.
 * Exit codes: 0 ok, 1 operation failed, 2 usage.
 */
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import type { Backend, ShardJson } from './backend.js'
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, describeError, errorCode, errorJson, formatError, type ErrorJson } from './errors.js'
import { formatBytes, json, shardDetails, shardSummary, shardTable } from './format.js'
import { keyFor, parseCid, parseTarget } from './targets.js'

const DEFAULT_LISTEN = '127.0.0.1:8080'

interface Globals {
  dir: string
  verbose?: boolean
}

interface ServeFlags {
  listen: string
  token?: string
  auth: boolean
  allowRoot: string[]
  importSample?: boolean
  shutdownGrace: number
}

const out = (s: string): void => { process.stdout.write(s) }
const err = (s: string): void => { process.stderr.write(s) }

/** The exit code of a command that did part of its work (some targets failed). */
let partialFailure = false

function globals (cmd: Command): Globals {
  return cmd.optsWithGlobals<Globals>()
}

function warn (verbose: boolean): (e: unknown, context: string) => void {
  return (e, context) => {
    err(`dagstore: warning: ${context}: ${describeError(e)}\n`)
    if (verbose && e instanceof Error && e.stack !== undefined) err(e.stack + '\n')
  }
}

async function withBackend<T> (cmd: Command, fn: (backend: Backend) => Promise<T>): Promise<T> {
  const g = globals(cmd)
  // Loaded on use: --help, usage errors and the like answer without loading the store.
  const { openBackend } = await import('./backend.js')
  const backend = await openBackend({
    dir: resolve(g.dir),
    onError: warn(g.verbose === true),
    log: g.verbose === true ? (line) => { err(`dagstore: ${line}\n`) } : undefined
  })
  try {
    return await fn(backend)
  } finally {
    await backend.close()
  }
}

function intArg (name: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!/^\d+$/.test(value) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`)
    return n
  }
}

/** A failed register leaves an errored shard behind: say what to do with it. */
function registerFailure (e: unknown, key: string): unknown {
  if (errorCode(e) !== 'ERR_SHARD_INITIALIZATION_FAILED') return e
  return new CliError(errorCode(e), errorJson(e).message, {
    hint: `shard ${JSON.stringify(key)} stays registered as errored: fix its source and \`dagstore recover ${key}\`, or \`dagstore destroy ${key}\``,
    status: e instanceof CliError ? e.status : undefined,
    cause: e instanceof CliError ? e.cause : e
  })
}

function packageVersion (): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: string }
    return pkg.version ?? '0.0.0'
  } catch {
    return '0.0.0'
  }
}

export function buildProgram (): Command {
  const program = new Command('dagstore')
  program
    .description('A shard store for CAR files: registers them, indexes them, serves their blocks by CID.')
    .version(packageVersion(), '-V, --version')
    .addOption(new Option('-d, --dir <path>', 'the repo folder').env('DAGSTORE_DIR').default('.dagstore'))
    .option('-v, --verbose', 'say whether a command goes through the server; stack traces on errors')
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({
      writeOut: out,
      writeErr: err,
      // Commander's own errors (unknown option, missing argument) in the CLI's one-line format.
      outputError: (str, write) => { write(`dagstore: ERR_USAGE: ${str.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')} (see dagstore --help)\n`) }
    })
  program.addHelpText('after', `
Every command but serve goes through the repo's running server (see <dir>/serve.json) when
there is one, else opens the repo itself. Exit codes: 0 ok, 1 failed, 2 usage.
Environment: DAGSTORE_DIR (--dir), DAGSTORE_LISTEN (serve --listen), DAGSTORE_TOKEN (admin token).`)

  program.command('serve')
    .description('serve the repo over HTTP: admin API and /ipfs/{cid} gateway; other commands then go through it')
    .addOption(new Option('-l, --listen <host:port>', 'address to listen on (port 0: any free port)').env('DAGSTORE_LISTEN').default(DEFAULT_LISTEN))
    .addOption(new Option('--token <token>', 'admin API bearer token (default: <dir>/token, created on first use)').env('DAGSTORE_TOKEN'))
    .option('--no-auth', 'no admin token (only on a loopback address)')
    .option('--allow-root <dir>', 'folder whose files the admin API may register (repeatable)',
      (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--import-sample', 'register the sample CAR shipped with the package and print the URL of one of its blocks')
    .option('--shutdown-grace <ms>', 'on SIGINT/SIGTERM, how long in-flight requests may finish before downloads are aborted',
      intArg('--shutdown-grace', 0), 5000)
    .action(async (opts: ServeFlags, cmd: Command) => {
      const g = globals(cmd)
      // Loaded here: the server (and gateway) code is for serve only; the other commands start faster without it.
      const { serve } = await import('./serve.js')
      const code = await serve({
        dir: g.dir,
        listen: opts.listen,
        token: opts.token,
        auth: opts.auth,
        allowRoot: opts.allowRoot,
        importSample: opts.importSample === true,
        shutdownGraceMs: opts.shutdownGrace,
        out: (line) => { out(line + '\n') },
        err: (line) => { err(line + '\n') },
        onError: warn(g.verbose === true)
      })
      if (code !== EXIT_OK) partialFailure = true
    })

  program.command('register')
    .description('register CAR files (paths or http(s) URLs); key: the file name without .car')
    .argument('<path|url...>')
    .option('--lazy', 'index on first use instead of now')
    .option('--key <key>', 'the shard key (with a single path or URL)')
    .option('--json', 'JSON output')
    .action(async (args: string[], opts: { lazy?: boolean, key?: string, json?: boolean }, cmd: Command) => {
      if (opts.key !== undefined && args.length !== 1) throw new UsageError('--key goes with exactly one <path|url>')
      const shards: ShardJson[] = []
      const errors: Array<{ target: string, key?: string, error: ErrorJson }> = []
      await withBackend(cmd, async (backend) => {
        for (const arg of args) {
          let key: string | undefined
          try {
            const target = await parseTarget(arg)
            key = opts.key ?? keyFor(target)
            let shard: ShardJson
            try {
              shard = await backend.register(key, target.url, opts.lazy === true)
            } catch (e) {
              throw registerFailure(e, key)
            }
            shards.push(shard)
            if (opts.json !== true) out(`registered ${shard.key} (${shardSummary(shard)})\n`)
          } catch (e) {
            if (e instanceof CliError && (e.exitCode === EXIT_USAGE || e.status === 401 || e.code === 'ERR_SERVER_UNREACHABLE')) throw e
            partialFailure = true
            errors.push({ target: arg, ...(key === undefined ? {} : { key }), error: errorJson(e) })
            if (opts.json !== true) err(`dagstore: ${describeError(e)}\n`)
          }
        }
      })
      if (opts.json === true) out(json({ shards, errors }))
    })

  program.command('import')
    .description('register every .car file below a folder; key: its path below the folder without .car')
    .argument('<dir>')
    .option('--lazy', 'index on first use instead of now')
    .option('--prefix <prefix>', 'put before every key', '')
    .option('--concurrency <n>', 'registrations at once', intArg('--concurrency', 1), 4)
    .option('--json', 'JSON output (no progress)')
    .action(async (dir: string, opts: { lazy?: boolean, prefix: string, concurrency: number, json?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const { importDir } = await import('./import.js')
      const result = await withBackend(cmd, async (backend) => await importDir(backend, resolve(dir), {
        lazy: opts.lazy === true,
        prefix: opts.prefix,
        concurrency: opts.concurrency,
        skip: [resolve(g.dir)],
        progress: opts.json === true ? 'none' : process.stderr.isTTY ? 'bar' : 'lines',
        out: (line) => { out(line + '\n') }
      }))
      if (result.failed.length > 0) partialFailure = true
      if (opts.json === true) {
        out(json(result))
      } else {
        const total = result.imported.length + result.skipped.length + result.failed.length
        out(total === 0
          ? `no .car files below ${result.root}\n`
          : `imported ${result.imported.length}, skipped ${result.skipped.length} (already registered), failed ${result.failed.length} of ${total} .car files below ${result.root}\n`)
      }
    })

  program.command('ls')
    .description('list shards: key, state, refs, size, error')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const shards = await withBackend(cmd, async (backend) => await backend.list())
      if (opts.json === true) out(json({ shards }))
      else out(shards.length === 0 ? 'no shards\n' : shardTable(shards))
    })

  program.command('info')
    .description('one shard in detail')
    .argument('<key>')
    .option('--json', 'JSON output')
    .action(async (key: string, opts: { json?: boolean }, cmd: Command) => {
      const shard = await withBackend(cmd, async (backend) => await backend.info(key))
      out(opts.json === true ? json(shard) : shardDetails(shard))
    })

  program.command('find')
    .description('the shards holding a block')
    .argument('<cid>')
    .option('--json', 'JSON output')
    .action(async (arg: string, opts: { json?: boolean }, cmd: Command) => {
      const cid = parseCid(arg)
      const shards = await withBackend(cmd, async (backend) => await backend.find(cid))
      if (opts.json === true) out(json({ cid: cid.toString(), shards }))
      else if (shards.length === 0) err(`no shard holds ${cid.toString()}\n`)
      else out(shards.join('\n') + '\n')
    })

  program.command('get')
    .description('a block\'s bytes, to stdout or a file')
    .argument('<cid>')
    .option('-o, --output <file>', 'write the block to this file')
    .action(async (arg: string, opts: { output?: string }, cmd: Command) => {
      const cid = parseCid(arg)
      const bytes = await withBackend(cmd, async (backend) => await backend.get(cid))
      if (opts.output !== undefined) {
        await writeFile(opts.output, bytes)
        out(`wrote ${bytes.byteLength} bytes to ${opts.output}\n`)
      } else {
        await new Promise<void>((resolve, reject) => { process.stdout.write(bytes, (e) => { e == null ? resolve() : reject(e) }) })
      }
    })

  program.command('gc')
    .description('reclaim the local copies of idle shards')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const res = await withBackend(cmd, async (backend) => await backend.gc())
      const failed = Object.entries(res.shards).filter((e): e is [string, ErrorJson] => e[1] !== null)
      if (failed.length > 0) partialFailure = true
      if (opts.json === true) {
        out(json(res))
        return
      }
      const done = Object.keys(res.shards).length - failed.length
      out(`reclaimed ${formatBytes(res.reclaimedBytes)} from ${done} shard(s)\n`)
      for (const [key, e] of failed) err(`dagstore: ${e.code}: ${key}: ${e.message}\n`)
    })

  program.command('recover')
    .description('re-fetch and re-index an errored shard (or all of them)')
    .argument('[key]')
    .option('--all-errored', 'every errored shard')
    .option('--json', 'JSON output')
    .action(async (key: string | undefined, opts: { allErrored?: boolean, json?: boolean }, cmd: Command) => {
      if ((key === undefined) === (opts.allErrored !== true)) throw new UsageError('recover takes a <key> or --all-errored (one of them)')
      const shards: ShardJson[] = []
      const errors: Array<{ key: string, error: ErrorJson }> = []
      await withBackend(cmd, async (backend) => {
        const keys = key !== undefined ? [key] : (await backend.states()).filter((s) => s.state === 'errored').map((s) => s.key)
        if (keys.length === 0 && opts.json !== true) out('no errored shards\n')
        for (const k of keys) {
          try {
            const shard = await backend.recover(k)
            shards.push(shard)
            if (opts.json !== true) out(`recovered ${k} (${shardSummary(shard)})\n`)
          } catch (e) {
            // A single key: its failure is the command's.
            if (key !== undefined && opts.json !== true) throw e
            partialFailure = true
            errors.push({ key: k, error: errorJson(e) })
            if (opts.json !== true) err(`dagstore: ${describeError(e)}\n`)
          }
        }
      })
      if (opts.json === true) out(json({ shards, errors }))
    })

  program.command('destroy')
    .description('remove a shard: its record, index and local copy (never your files)')
    .argument('<key>')
    .option('--json', 'JSON output')
    .action(async (key: string, opts: { json?: boolean }, cmd: Command) => {
      await withBackend(cmd, async (backend) => { await backend.destroy(key) })
      out(opts.json === true ? json({ key, destroyed: true }) : `destroyed ${key}\n`)
    })

  return program
}

async function flush (): Promise<void> {
  await new Promise<void>((resolve) => { process.stdout.write('', () => { resolve() }) })
  await new Promise<void>((resolve) => { process.stderr.write('', () => { resolve() }) })
}

export async function main (argv: string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    return partialFailure ? EXIT_FAILED : EXIT_OK
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE
    const verbose = program.opts<Globals>().verbose === true || argv.includes('--verbose') || argv.includes('-v')
    err(formatError(e, verbose))
    return e instanceof CliError ? e.exitCode : EXIT_FAILED
  }
}

// `dagstore ls | head`: a reader that stops early is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(EXIT_OK)
  throw e
})

// Nothing may end the CLI with a stack trace unless asked to.
const verboseArg = process.argv.includes('--verbose') || process.argv.includes('-v')
process.on('uncaughtException', (e) => {
  err(formatError(e, verboseArg))
  process.exit(EXIT_FAILED)
})
process.on('unhandledRejection', (e) => {
  err(formatError(e, verboseArg))
  process.exit(EXIT_FAILED)
})

const code = await main(process.argv)
await flush()
process.exit(code)
