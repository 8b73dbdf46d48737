// The `dagstore` CLI from tests. Most tests run it in this process (runCli with streams in
// memory, an exit function that records the code, a stop signal for serve); a few spawn the
// bin, for what only a process has: signals, a terminal, `npm start`. Either way a run's
// output can be watched line by line and its end awaited; whatever a test started, its
// finally can kill.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { runCli } from '../../src/app/cli/commands/program.js'
import { at } from './assert.js'

/** dist/src/app/cli/main.js, seen from dist/tests/helpers. */
export const CLI = fileURLToPath(new URL('../../src/app/cli/main.js', import.meta.url))

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stdoutBytes: Buffer
  stderr: string
}

export interface Exit { code: number | null, signal: NodeJS.Signals | null }

/** The environment without the user's DAGSTORE_* settings, plus `extra`. */
export function cliEnv (extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of Object.keys(env)) if (name.startsWith('DAGSTORE_')) delete env[name]
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return env
}

export interface RunOptions {
  env?: Record<string, string | undefined>
  cwd?: string
  timeoutMs?: number
}

/** A run's output so far, and waits on it. */
abstract class Watched {
  stdout = ''
  stderr = ''
  private readonly waiters = new Set<() => void>()

  abstract get alive (): boolean
  /** How it ended, for failure messages. */
  protected abstract get ending (): string

  protected wake (): void {
    for (const w of this.waiters) w()
  }

  /** The first match of `re` in stdout; fails when the run ends first or after timeoutMs. */
  async waitFor (re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = re.exec(this.stdout)
      if (m !== null) return m
      if (!this.alive) throw new Error(`exited (${this.ending}) before printing ${String(re)}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${String(re)}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)
      await new Promise<void>((resolve) => {
        const done = (): void => { clearTimeout(timer); this.waiters.delete(done); resolve() }
        const timer = setTimeout(done, Math.min(left, 250))
        this.waiters.add(done)
      })
    }
  }
}

/** `dagstore ...args` running in this process. */
export class InProcess extends Watched {
  /** The serving process's pid, as serve.json records it. */
  readonly pid = process.pid
  readonly result: Promise<CliResult>
  readonly exited: Promise<Exit>
  private readonly stopper = new AbortController()
  private settled = false
  private code: number | null = null

  constructor (args: string[], options: RunOptions = {}) {
    super()
    const out: Buffer[] = []
    const err: Buffer[] = []
    const sink = (chunks: Buffer[], onText: (s: string) => void): Writable => new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        chunks.push(chunk)
        onText(chunk.toString('utf8'))
        this.wake()
        callback()
      }
    })
    // What would run at process exit: serve's removal of its serve.json if it did not get to.
    const exitHooks = new Set<() => void>()
    const run = runCli(args, {
      stdout: sink(out, (s) => { this.stdout += s }),
      stderr: sink(err, (s) => { this.stderr += s }),
      exit: (code) => { this.code = code },
      env: cliEnv(options.env),
      cwd: options.cwd ?? process.cwd(),
      stop: this.stopper.signal,
      onExit: (fn) => {
        exitHooks.add(fn)
        return () => { exitHooks.delete(fn) }
      }
    }).finally(() => {
      for (const fn of exitHooks) fn()
      this.settled = true
      this.wake()
    })
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.stopper.abort('timeout')
        reject(new Error(`dagstore ${args.join(' ')}: still running after ${options.timeoutMs ?? 30_000} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`))
      }, options.timeoutMs ?? 30_000)
    })
    this.result = Promise.race([run, timeout]).then(() => {
      const stdoutBytes = Buffer.concat(out)
      return { code: this.code, signal: null, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8') }
    }).finally(() => { clearTimeout(timer) })
    this.exited = this.result.then(({ code, signal }) => ({ code, signal }))
    // A test may await either; the other must not count as an unhandled rejection.
    this.exited.catch(() => {})
  }

  get alive (): boolean {
    return !this.settled
  }

  protected get ending (): string {
    return String(this.code)
  }

  /** What SIGINT/SIGTERM do to the bin: a serve stops cleanly. Waits for the exit. */
  async stop (signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    this.stopper.abort(signal)
    return await this.exited
  }

  /** For finally blocks: whatever state it is in, it has ended afterwards. */
  async kill (): Promise<void> {
    this.stopper.abort('SIGKILL')
    await this.exited.catch(() => {})
  }
}

/** Starts `dagstore ...args` in this process; `result` is what `cli` returns. */
export function startCli (args: string[], options: RunOptions = {}): InProcess {
  return new InProcess(args, options)
}

/** Runs `dagstore ...args` in this process to completion. */
export async function cli (args: string[], options: RunOptions = {}): Promise<CliResult> {
  return await startCli(args, options).result
}

/** A CLI process left running. */
export class Running extends Watched {
  readonly child: ChildProcess
  readonly exited: Promise<Exit>

  constructor (child: ChildProcess) {
    super()
    this.child = child
    child.stdout?.setEncoding('utf8').on('data', (s: string) => { this.stdout += s; this.wake() })
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { this.stderr += s; this.wake() })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => { this.wake(); resolve({ code, signal }) })
    })
  }

  get alive (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  protected get ending (): string {
    return String(this.child.exitCode ?? this.child.signalCode)
  }

  /** Sends `signal` and waits for the exit (SIGKILL after timeoutMs). */
  async stop (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<Exit> {
    if (this.alive) this.child.kill(signal)
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, timeoutMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /** For finally blocks: whatever state it is in, it is gone afterwards. */
  async kill (): Promise<void> {
    if (!this.alive) return
    this.child.kill('SIGKILL')
    await this.exited
  }
}

/** Spawns the bin: `node dist/src/app/cli/main.js ...args`. */
export function spawnCli (args: string[], options: RunOptions = {}): Running {
  return new Running(spawn(process.execPath, [CLI, ...args], { env: cliEnv(options.env), cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] }))
}

const SERVING = / at (http:\/\/\S+) \(pid \d+\)/

/** `dagstore serve` on `dir` in this process, any free port; resolves once it has printed its URL. */
export async function startServe (dir: string, args: string[] = [], options: RunOptions = {}): Promise<{ serve: InProcess, url: string }> {
  const serve = startCli(['serve', '--dir', dir, '--listen', '127.0.0.1:0', ...args], { timeoutMs: 300_000, ...options })
  try {
    return { serve, url: at(await serve.waitFor(SERVING), 1) }
  } catch (err) {
    await serve.kill()
    throw err
  }
}

/** The same as a spawned process, for tests that send it real signals. */
export async function spawnServe (dir: string, args: string[] = [], options: RunOptions = {}): Promise<{ serve: Running, url: string }> {
  const serve = spawnCli(['serve', '--dir', dir, '--listen', '127.0.0.1:0', ...args], options)
  try {
    return { serve, url: at(await serve.waitFor(SERVING), 1) }
  } catch (err) {
    await serve.kill()
    throw err
  }
}

export async function readServeJson (dir: string): Promise<{ pid: number, url: string | null, auth: string, startedAt: string } | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'serve.json'), 'utf8'))
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined
    throw err
  }
}

/** Lines of output that look like a stack trace. */
export function hasStack (text: string): boolean {
  return /^\s+at .+\(?.+:\d+:\d+\)?$/m.test(text)
}
