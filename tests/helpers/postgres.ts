/**
 * A throwaway PostgreSQL server for the test process, from the system's binaries
 * (/usr/lib/postgresql/<version>/bin). Started on first use and shared by every suite of the run
 * (uvu runs all suite files in one process); each suite gets a database of its own. Stopped when
 * the process exits, and by a watchdog process when it dies without running its exit handlers
 * (SIGKILL, a signal's default action), so no server and no temp dir outlive the run.
 *
 * The server refuses to run as root: as root (CI) the data dir belongs to the `postgres` system
 * user and the server's tools run through `runuser -u postgres`.
 */
import { spawn, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from './net.js'

export interface PostgresServer {
  /** A URL to a new, empty database of its own (a fresh name each call). */
  freshDatabase: (label?: string) => Promise<string>
  /** The URL of the server's maintenance database (`postgres`), for admin statements. */
  readonly adminUrl: string
  /** Stops the server (fast shutdown: sessions are cut, as a crash or failover cuts them). */
  stop: () => void
  /** Starts it again on the same port and data (after stop()). */
  start: () => void
}

const ROOT = '/usr/lib/postgresql'

/** The bin folder of the newest installed server, or undefined. */
function findBinaries (): string | undefined {
  if (!existsSync(ROOT)) return undefined
  const versions = readdirSync(ROOT).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  for (const v of versions) {
    const bin = join(ROOT, v, 'bin')
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin
  }
  return undefined
}

const BIN = findBinaries()

/**
 * Whether the PostgreSQL suites run. Without server binaries they fail in CI (a skipped suite
 * there would pass unnoticed) and are skipped locally with a message saying so.
 */
export function postgresAvailable (suite: string): boolean {
  if (BIN !== undefined) return true
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') {
    throw new Error(`${suite}: no PostgreSQL server binaries under ${ROOT}/*/bin; CI must run the PostgreSQL tests`)
  }
  console.log(`SKIPPING ${suite}: no PostgreSQL server binaries under ${ROOT}/*/bin (install postgresql to run them)`)
  return false
}

const asRoot = process.getuid?.() === 0

/** Runs a server tool, as the postgres user when we are root; throws with its output on failure. */
function tool (name: string, args: string[]): void {
  const file = join(BIN as string, name)
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args]
  const r = spawnSync(cmd, argv, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${name} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`)
}

function postmasterPid (dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Immediate shutdown, waited for (synchronously: it runs in the exit handler), then the dir goes. */
function stopSync (dir: string, dataDir: string): void {
  const pid = postmasterPid(dataDir)
  if (pid !== undefined && alive(pid)) {
    process.kill(pid, 'SIGQUIT')
    const sleeper = new Int32Array(new SharedArrayBuffer(4))
    for (let i = 0; i < 200 && alive(pid); i++) Atomics.wait(sleeper, 0, 0, 25)
    if (alive(pid)) process.kill(pid, 'SIGKILL')
  }
  rmSync(dir, { recursive: true, force: true })
}

/**
 * A detached shell that outlives this process only to clean up after it: once this process is
 * gone (however it died) it stops the server and removes the temp dir. After a normal exit the
 * exit handler has done both and the watchdog finds nothing left to do.
 */
function watchdog (dir: string, dataDir: string): void {
  const script = `
    while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done
    pid=$(head -n 1 "${dataDir}/postmaster.pid" 2>/dev/null)
    if [ -n "$pid" ]; then
      kill -QUIT "$pid" 2>/dev/null
      for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null
    fi
    rm -rf "${dir}"`
  spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' }).unref()
}

async function start (): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), 'dagstore-pg-'))
  const dataDir = join(dir, 'data')
  if (asRoot) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
    const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
    if (ids.status !== 0) throw new Error('running as root, but there is no `postgres` user to run the server as')
    chownSync(dir, Number(ids.stdout.trim()), Number(gids.stdout.trim()))
  }
  process.once('exit', () => { stopSync(dir, dataDir) })
  watchdog(dir, dataDir)
  tool('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'])
  const port = await freePort()
  // Durability is not under test against the server itself: fsync off keeps the suites fast.
  const settings = [
    `-p ${port}`, "-c listen_addresses='127.0.0.1'", `-c unix_socket_directories='${dir}'`,
    '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off', '-c max_connections=200'
  ].join(' ')
  const startServer = (): void => { tool('pg_ctl', ['-D', dataDir, '-l', join(dir, 'server.log'), '-o', settings, '-w', '-t', '60', 'start']) }
  startServer()
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`
  let n = 0
  return {
    adminUrl,
    stop: () => { tool('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']) },
    start: startServer,
    freshDatabase: async (label = 'suite') => {
      const name = `t${++n}_${label.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 40)}`
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      try {
        await client.query(`CREATE DATABASE "${name}"`)
      } finally {
        await client.end()
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`
    }
  }
}

let server: Promise<PostgresServer> | undefined

/** The shared server, started on first call. Call only after postgresAvailable() said true. */
export async function postgresServer (): Promise<PostgresServer> {
  server ??= start()
  return await server
}

/** Runs one statement on a fresh connection to `url` (tests inspect and arrange rows with it). */
export async function sql<T extends pg.QueryResultRow> (url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end()
  }
}
