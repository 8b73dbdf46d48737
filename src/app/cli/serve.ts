/**
 * `dagstore serve`: the store plus its HTTP server (admin API and gateway) on one repo.
 * It holds the repo's LevelDB lock for its whole life and publishes itself in serve.json so
 * other CLI commands on the repo go through it; the `stop` signal (SIGINT/SIGTERM in the bin)
 * stops it cleanly.
 */
import { mkdir, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { CODE } from '../../base/errors/codes.js'
import { codeOf } from '../../base/errors/inspect.js'
import { DAGStore } from '../../engine/store.js'
import type { VerifyHashes } from '../../base/index-types.js'
import type { CopyPolicy } from '../../base/types.js'
import { startServer, type DagstoreServer } from '../server/index.js'
import { isLoopback } from '../loopback.js'
import { CliError, EXIT_OK, UsageError, isLevelLocked } from './errors.js'
import { lockedError } from './backend.js'
import { claimServeFile, ensureRepoToken, probeServer, publishServeFile, removeServeFileSync, type AuthMode, type ServerProbe } from './repo.js'
import { ensureSample } from './sample.js'

export interface ServeCommandOptions {
  /** Relative paths (--dir, --allow-root) are relative to this. */
  cwd: string
  dir: string
  listen: string
  /** A token given on the command line or in DAGSTORE_TOKEN. */
  token: string | undefined
  /** false with --no-auth. */
  auth: boolean
  allowRoot: string[]
  importSample: boolean
  shutdownGraceMs: number
  /** The store's verifyHashes. */
  verifyHashes: VerifyHashes
  /** The store's remote.copy (default 'auto'). */
  copy?: CopyPolicy
  out: (line: string) => void
  err: (line: string) => void
  onError: (err: unknown, context: string) => void
  /** Aborted to stop serving; its reason (a signal's name) is what the stop line says. */
  stop: AbortSignal
  /** See CliIo.onExit. */
  onExit: (fn: () => void) => () => void
}

/** `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT`. */
function parseListen (value: string): { host: string, port: number } {
  const bad = (): UsageError => new UsageError(`invalid --listen ${JSON.stringify(value)}: expected HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:0)`)
  let host = '127.0.0.1'
  let portText: string
  const [, v6Host, v6Port] = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? []
  if (v6Host !== undefined && v6Port !== undefined) {
    host = v6Host
    portText = v6Port
  } else if (/^\d+$/.test(value)) {
    portText = value
  } else {
    const i = value.lastIndexOf(':')
    if (i < 0) throw bad()
    if (i > 0) host = value.slice(0, i)
    portText = value.slice(i + 1)
    if (host.includes(':')) throw bad()
  }
  if (!/^\d+$/.test(portText)) throw bad()
  const port = Number(portText)
  if (port > 65535) throw bad()
  return { host, port }
}

/** The URL a client on this machine uses: an any-address listener is reached on loopback. */
function localUrl (server: DagstoreServer): string {
  const host = server.host === '0.0.0.0' ? '127.0.0.1' : server.host === '::' ? '::1' : server.host
  return `http://${host.includes(':') ? `[${host}]` : host}:${server.port}`
}

/** Resolves when the server has stopped (after `stop`); the caller exits with its result. */
export async function serve (o: ServeCommandOptions): Promise<number> {
  const dir = resolve(o.cwd, o.dir)
  const { host, port } = parseListen(o.listen)
  if (!o.auth && !isLoopback(host)) {
    throw new UsageError(`--no-auth is only allowed on a loopback address, not ${host}`,
      'drop --no-auth (clients then use the repo token) or listen on 127.0.0.1')
  }
  const allowRoots = o.allowRoot.map((r) => resolve(o.cwd, r))
  for (const root of allowRoots) {
    const st = await stat(root).catch(() => undefined)
    if (st?.isDirectory() !== true) throw new UsageError(`--allow-root ${root}: ${st === undefined ? 'no such folder' : 'not a folder'}`)
  }
  const probe = await probeServer(dir)
  if (probe.kind === 'live' || probe.kind === 'starting') {
    const where = probe.kind === 'live' ? `at ${probe.file.url}` : '(starting)'
    throw new CliError(CODE.ERR_REPO_SERVED, `the repo ${dir} is already served by pid ${probe.file.pid} ${where}`, {
      hint: 'other dagstore commands on this repo go through it; stop it first to serve again'
    })
  }
  // Whatever way the process ends (a crash, a second signal), it must not leave its serve.json
  // behind; the removal checks the pid, so it never takes another server's file.
  const dropExitHook = o.onExit(() => { removeServeFileSync(dir) })
  try {
    return await serveRepo(o, dir, host, port, allowRoots, probe)
  } finally {
    dropExitHook()
  }
}

async function serveRepo (
  o: ServeCommandOptions, dir: string, host: string, port: number, allowRoots: string[], probe: ServerProbe
): Promise<number> {
  // A file whose process lives but does not answer is not ours to delete: if that process
  // still holds LevelDB, opening the store fails below; if not, publishing replaces it.
  await mkdir(dir, { recursive: true })
  if (!(probe.kind === 'stale' && probe.pidAlive)) await claimServeFile(dir)

  const store = new DAGStore({ dir, onError: o.onError, verifyHashes: o.verifyHashes, remote: { copy: o.copy ?? 'auto' } })
  try {
    await store.start()
  } catch (err) {
    removeServeFileSync(dir)
    if (isLevelLocked(err)) throw lockedError(dir, probe, err)
    throw err
  }

  let server: DagstoreServer | undefined
  let stopping: Promise<number> | undefined
  const stop = async (reason: string): Promise<number> => {
    o.err(`dagstore: ${reason}: stopping (in-flight requests get ${o.shutdownGraceMs} ms)`)
    const closing = server?.close().catch((err: unknown) => { o.onError(err, 'server close failed') })
    // close() lets in-flight requests finish for the grace period, then drops them: one stuck
    // on a stalled download must not hold the repo for ever. Closing the store then aborts
    // the download itself.
    if (closing !== undefined) await within(closing, o.shutdownGraceMs + 1000)
    await store.close().catch((err: unknown) => { o.onError(err, 'store close failed') })
    if (closing !== undefined) await within(closing, 5000)
    removeServeFileSync(dir)
    return EXIT_OK
  }
  let finish: (code: number) => void = () => {}
  const done = new Promise<number>((resolve) => { finish = resolve })
  const onStop = (): void => {
    stopping = stop(typeof o.stop.reason === 'string' ? o.stop.reason : 'stop')
    stopping.then(finish, () => { finish(1) })
  }
  if (o.stop.aborted) onStop()
  else o.stop.addEventListener('abort', onStop, { once: true })
  try {
    let token: string | null = null
    let auth: AuthMode = 'none'
    if (o.auth) {
      if (o.token !== undefined && o.token !== '') {
        token = o.token
        auth = 'token'
      } else {
        token = await ensureRepoToken(dir)
        auth = 'file'
      }
    }
    try {
      server = await startServer(store, {
        host,
        port,
        token,
        allowRoots,
        shutdownTimeoutMs: Math.max(1, o.shutdownGraceMs),
        onError: o.onError
      })
    } catch (err) {
      // startServer validates its options with these (a malformed --token, ...): the user's to fix.
      if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(err.message)
      if (codeOf(err) === 'EADDRINUSE') {
        throw new CliError(CODE.ERR_ADDRESS_IN_USE, `${o.listen} is already in use`, {
          hint: 'listen elsewhere with --listen HOST:PORT or DAGSTORE_LISTEN (port 0 picks a free one)',
          cause: err
        })
      }
      throw err
    }
    const url = localUrl(server)
    await publishServeFile(dir, { pid: process.pid, url, auth, startedAt: new Date().toISOString() })
    o.out(`dagstore serving ${dir} at ${server.url} (pid ${process.pid})`)
    o.out(auth === 'file' ? `admin API token: ${dir}/token` : auth === 'token' ? 'admin API token: as given' : 'admin API: no auth (loopback only)')
    o.out(`status page: ${url}/`)
    if (o.importSample && stopping === undefined) {
      const sample = await ensureSample(store)
      o.out(`sample shard ${JSON.stringify(sample.key)} ${sample.action}: ${sample.blocks ?? '?'} blocks; one of them:`)
      o.out(`${url}/ipfs/${sample.cid.toString()}`)
    }
  } catch (err) {
    // Interrupted while starting: the signal's shutdown owns the exit.
    if (stopping !== undefined) return await stopping
    o.stop.removeEventListener('abort', onStop)
    await server?.close().catch(() => {})
    await store.close().catch(() => {})
    removeServeFileSync(dir)
    throw err
  }
  return await done
}

/** Waits for `p`, at most `ms`. */
async function within (p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([p, new Promise((resolve) => { timer = setTimeout(resolve, ms) })])
  clearTimeout(timer)
}
