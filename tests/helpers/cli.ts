// The `dagstore` CLI as spawned processes: one-shot runs, and long-running ones (serve) whose
// output is watched line by line. Every spawned process is tracked so a test's finally can
// kill whatever is left.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
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

/** Runs `dagstore ...args` to completion (killed after timeoutMs). */
export async function cli (args: string[], options: RunOptions = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(options.env), cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 30_000)
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (c, s) => { resolve([c, s]) })
    })
    const stdoutBytes = Buffer.concat(out)
    return { code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8') }
  } finally {
    clearTimeout(timer)
  }
}

/** A CLI process left running: its output so far, waits on lines, its exit. */
export class Running {
  readonly child: ChildProcess
  stdout = ''
  stderr = ''
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  private readonly waiters = new Set<() => void>()

  constructor (child: ChildProcess) {
    this.child = child
    const wake = (): void => { for (const w of this.waiters) w() }
    child.stdout?.setEncoding('utf8').on('data', (s: string) => { this.stdout += s; wake() })
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { this.stderr += s; wake() })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => { wake(); resolve({ code, signal }) })
    })
  }

  get alive (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** The first match of `re` in stdout; fails when the process exits first or after timeoutMs. */
  async waitFor (re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = re.exec(this.stdout)
      if (m !== null) return m
      if (!this.alive) throw new Error(`process exited (${String(this.child.exitCode ?? this.child.signalCode)}) before printing ${String(re)}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${String(re)}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)
      await new Promise<void>((resolve) => {
        const done = (): void => { clearTimeout(timer); this.waiters.delete(done); resolve() }
        const timer = setTimeout(done, Math.min(left, 250))
        this.waiters.add(done)
      })
    }
  }

  /** Sends `signal` and waits for the exit (SIGKILL after timeoutMs). */
  async stop (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
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

export function spawnCli (args: string[], options: RunOptions = {}): Running {
  return new Running(spawn(process.execPath, [CLI, ...args], { env: cliEnv(options.env), cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] }))
}

/** `dagstore serve` on `dir`, any free port; resolves once it has printed its URL. */
export async function startServe (dir: string, args: string[] = [], options: RunOptions = {}): Promise<{ serve: Running, url: string }> {
  const serve = spawnCli(['serve', '--dir', dir, '--listen', '127.0.0.1:0', ...args], options)
  try {
    const m = await serve.waitFor(/ at (http:\/\/\S+) \(pid \d+\)/)
    return { serve, url: at(m, 1) }
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
