/**
 * One repo, one process. LevelDB lets one process open a repo, so a running `serve` writes
 * `<dir>/serve.json` ({ pid, url, auth }) and every other CLI command on that repo goes
 * through its admin API instead of opening LevelDB. The admin token lives apart, in
 * `<dir>/token` (0600), so serve.json can stay world-readable.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, unlinkSync } from 'node:fs'
import { chmod, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CODE } from '../../base/errors/codes.js'
import { codeOf, isMissing } from '../../base/errors/inspect.js'
import { CliError } from './errors.js'

const SERVE_FILE = 'serve.json'
const TOKEN_FILE = 'token'

/** How clients authenticate: the repo token file, a token given to serve, or nothing. */
export type AuthMode = 'file' | 'token' | 'none'

interface ServeFile {
  pid: number
  /**
   * Where a client on this machine reaches the server (loopback when it listens on all
   * interfaces); null while it is starting (opening the store, binding the port).
   */
  url: string | null
  auth: AuthMode
  startedAt: string
}

export type LiveServeFile = ServeFile & { url: string }

export type ServerProbe =
  | { kind: 'none' }
  | { kind: 'live', file: LiveServeFile }
  | { kind: 'starting', file: ServeFile }
  /** `pidAlive`: the process exists but does not answer (or is not a dagstore any more). */
  | { kind: 'stale', file: ServeFile | undefined, reason: string, pidAlive: boolean }

function serveFilePath (dir: string): string {
  return join(dir, SERVE_FILE)
}

function parseServeFile (text: string): ServeFile | undefined {
  try {
    const v = JSON.parse(text) as Partial<ServeFile>
    if (!Number.isInteger(v.pid) || (typeof v.url !== 'string' && v.url !== null)) return undefined
    const auth: AuthMode = v.auth === 'token' || v.auth === 'none' ? v.auth : 'file'
    return { pid: v.pid as number, url: v.url, auth, startedAt: String(v.startedAt ?? '') }
  } catch {
    return undefined
  }
}

/** undefined when there is no file; 'invalid' when it cannot be read as one. */
async function readServeFile (dir: string): Promise<ServeFile | 'invalid' | undefined> {
  let text: string
  try {
    text = await readFile(serveFilePath(dir), 'utf8')
  } catch (err) {
    if (isMissing(err)) return undefined
    throw err
  }
  return parseServeFile(text) ?? 'invalid'
}

function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, it just belongs to someone else.
    return codeOf(err) === 'EPERM'
  }
}

async function healthy (url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const res = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(timeoutMs) })
    const body = await res.json().catch(() => undefined) as { ok?: unknown } | undefined
    return res.ok && body?.ok === true
  } catch {
    return false
  }
}

/** Is a server running on `dir`? Only a live pid that answers /healthz counts. */
export async function probeServer (dir: string): Promise<ServerProbe> {
  let file = await readServeFile(dir)
  if (file === 'invalid') {
    // The writer may be mid-write (the file is created, then filled): look once more.
    await new Promise((resolve) => setTimeout(resolve, 100))
    file = await readServeFile(dir)
  }
  if (file === undefined) return { kind: 'none' }
  if (file === 'invalid') return { kind: 'stale', file: undefined, reason: `${serveFilePath(dir)} is unreadable`, pidAlive: false }
  if (!pidAlive(file.pid)) return { kind: 'stale', file, reason: `process ${file.pid} is gone`, pidAlive: false }
  if (file.url === null) return { kind: 'starting', file }
  if (await healthy(file.url)) return { kind: 'live', file: { ...file, url: file.url } }
  return { kind: 'stale', file, reason: `process ${file.pid} does not answer at ${file.url}`, pidAlive: true }
}

/**
 * Claims the repo for a starting serve: creates serve.json exclusively with no URL yet, so
 * clients wait for this server instead of racing it for LevelDB. A stale file (its process
 * is gone) is replaced. Throws ERR_REPO_SERVED if another serve holds it.
 */
export async function claimServeFile (dir: string): Promise<void> {
  const path = serveFilePath(dir)
  const existing = await readServeFile(dir)
  if (existing === 'invalid' || (existing !== undefined && !pidAlive(existing.pid))) await unlink(path).catch(() => {})
  const file: ServeFile = { pid: process.pid, url: null, auth: 'file', startedAt: new Date().toISOString() }
  try {
    await writeFile(path, JSON.stringify(file, null, 2) + '\n', { flag: 'wx', mode: 0o644 })
  } catch (err) {
    if (codeOf(err) !== 'EEXIST') throw err
    const other = await readServeFile(dir)
    const who = other !== undefined && other !== 'invalid' ? ` (pid ${other.pid}${other.url === null ? ', starting' : ` at ${other.url}`})` : ''
    throw new CliError(CODE.ERR_REPO_SERVED, `another serve holds ${path}${who}`, { cause: err })
  }
}

/**
 * Publishes the running server. The caller holds the repo's LevelDB lock, so whatever
 * serve.json is there now is ours or stale: replaced atomically (rename), readers never see
 * half a file.
 */
export async function publishServeFile (dir: string, file: LiveServeFile): Promise<void> {
  const path = serveFilePath(dir)
  const tmp = `${path}.${process.pid}.tmp`
  try {
    await writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o644 })
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}

/**
 * Removes serve.json if it is still ours. Synchronous so it can run from an 'exit' handler;
 * never throws (exit paths must not fail on it).
 */
export function removeServeFileSync (dir: string, pid = process.pid): void {
  const path = serveFilePath(dir)
  try {
    const file = parseServeFile(readFileSync(path, 'utf8'))
    if (file?.pid === pid) unlinkSync(path)
  } catch {}
}

/** The repo's admin token, created (random, 0600) when absent. */
export async function ensureRepoToken (dir: string): Promise<string> {
  const path = join(dir, TOKEN_FILE)
  const existing = await readRepoToken(dir)
  if (existing !== undefined) return existing
  const token = randomBytes(32).toString('base64url')
  try {
    await writeFile(path, token + '\n', { flag: 'wx', mode: 0o600 })
    // The umask may have taken bits away, never added any; chmod anyway in case it was odd.
    await chmod(path, 0o600)
    return token
  } catch (err) {
    // Someone else created it between our read and our write: theirs wins.
    if (codeOf(err) === 'EEXIST') {
      const theirs = await readRepoToken(dir)
      if (theirs !== undefined) return theirs
    }
    throw err
  }
}

export async function readRepoToken (dir: string): Promise<string | undefined> {
  try {
    const token = (await readFile(join(dir, TOKEN_FILE), 'utf8')).trim()
    return token === '' ? undefined : token
  } catch (err) {
    if (isMissing(err)) return undefined
    throw err
  }
}
