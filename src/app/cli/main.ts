#!/usr/bin/env node
/**
 * The `dagstore` bin: hands the CLI (commands/program.ts) this process's streams, environment,
 * working folder, signals and exit.
 */
import { getEventListeners } from 'node:events'
import { EXIT_FAILED, EXIT_OK, formatError } from './errors.js'
import { runCli } from './commands/program.js'

const args = process.argv.slice(2)

// `dagstore ls | head`: a reader that stops early is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(EXIT_OK)
  throw e
})

// Nothing may end the CLI with a stack trace unless asked to.
const verbose = args.includes('--verbose') || args.includes('-v')
const crash = (e: unknown): void => {
  process.stderr.write(formatError(e, verbose))
  process.exit(EXIT_FAILED)
}
process.on('uncaughtException', crash)
process.on('unhandledRejection', crash)

// The first SIGINT/SIGTERM asks serve to stop cleanly; a second one means "out, now" (the exit
// hooks still remove serve.json; LevelDB is crash-safe). A command that does not listen for
// the stop (all but serve) is ended by the signal itself, as if no handler were installed.
const stop = new AbortController()
const onSignal = (signal: NodeJS.Signals): void => {
  if (stop.signal.aborted) process.exit(130)
  if (getEventListeners(stop.signal, 'abort').length === 0) {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.kill(process.pid, signal)
    return
  }
  stop.abort(signal)
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

async function flushed (stream: NodeJS.WriteStream): Promise<void> {
  await new Promise<void>((resolve) => { stream.write('', () => { resolve() }) })
}

await runCli(args, {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  stop: stop.signal,
  onExit: (fn) => {
    process.on('exit', fn)
    return () => { process.off('exit', fn) }
  },
  exit: (code) => {
    void Promise.all([flushed(process.stdout), flushed(process.stderr)]).then(() => { process.exit(code) })
  }
})
