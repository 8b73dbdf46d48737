// A tiny tmpfs for fault tests: a disk that fills up (ENOSPC) or turns read-only (EROFS) on
// demand. Needs root (mount(2)); tests call canMountTmpfs() first and skip when it says no.
//
// Every mount made here is unmounted by unmount() (call it in a finally block), and a process
// 'exit' safety net lazily unmounts whatever a crashed or interrupted run left behind, so no
// mount ever outlives the test process.
import { execFile, spawnSync } from 'node:child_process'
import { mkdtemp, rmdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Tmpfs {
  /** The mount point. */
  dir: string
  /** `mount -o remount,ro`: every write in `dir` fails with EROFS. */
  remountReadOnly: () => Promise<void>
  /** `mount -o remount,rw`. */
  remountReadWrite: () => Promise<void>
  /** `mount -o remount,size=N`: grow it (space back) or shrink it (never below what is used). */
  resize: (bytes: number) => Promise<void>
  /** Unmounts (idempotent); also removes `dir` if mountTmpfs created it. */
  unmount: () => Promise<void>
}

/** Mount points currently mounted by this process. */
const live = new Set<string>()
let netInstalled = false

function lazyUnmountSync (dir: string): void {
  // -l: detach even if a file in it is still open, so the exit never hangs or fails.
  spawnSync('umount', ['-l', dir], { stdio: 'ignore' })
  spawnSync('rmdir', [dir], { stdio: 'ignore' })
}

function installSafetyNet (): void {
  if (netInstalled) return
  netInstalled = true
  process.on('exit', () => {
    for (const dir of live) lazyUnmountSync(dir)
    live.clear()
  })
  // An interrupted run ('exit' is not emitted on a signal): clean up, then die of that signal.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      for (const dir of live) lazyUnmountSync(dir)
      live.clear()
      process.removeListener(sig, onSignal)
      process.kill(process.pid, sig)
    }
    process.on(sig, onSignal)
  }
}

async function mountCmd (args: string[]): Promise<void> {
  try {
    await run('mount', args)
  } catch (err) {
    const e = err as { stderr?: string, message?: string }
    throw new Error(`mount ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err })
  }
}

/**
 * Mounts a fresh tmpfs of `sizeBytes` at `dir` (created under the OS temp folder when omitted;
 * an existing `dir` must be an empty folder).
 */
export async function mountTmpfs (dir: string | undefined, sizeBytes: number): Promise<Tmpfs> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new RangeError(`tmpfs size must be a positive integer, got ${sizeBytes}`)
  const created = dir === undefined
  const at = dir ?? await mkdtemp(join(tmpdir(), 'dagstore-tmpfs-'))
  installSafetyNet()
  try {
    await mountCmd(['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', at])
  } catch (err) {
    if (created) await rmdir(at).catch(() => {})
    throw err
  }
  live.add(at)
  let mounted = true
  const remount = async (opts: string): Promise<void> => {
    if (!mounted) throw new Error(`tmpfs at ${at} is not mounted`)
    await mountCmd(['-o', `remount,${opts}`, at])
  }
  return {
    dir: at,
    remountReadOnly: async () => { await remount('ro') },
    remountReadWrite: async () => { await remount('rw') },
    resize: async (bytes) => {
      if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`tmpfs size must be a positive integer, got ${bytes}`)
      await remount(`size=${bytes}`)
    },
    unmount: async () => {
      if (!mounted) return
      try {
        await run('umount', [at])
      } catch {
        // Busy (a file still open somewhere): detach it anyway, never leave it behind.
        await run('umount', ['-l', at])
      }
      mounted = false
      live.delete(at)
      if (created) await rmdir(at).catch(() => {})
    }
  }
}

let probe: Promise<boolean> | undefined
let reason: string | undefined

/** Whether this process can mount a tmpfs: root, and one real mount + unmount works. Tried once. */
export async function canMountTmpfs (): Promise<boolean> {
  probe ??= (async () => {
    if (process.getuid?.() !== 0) {
      reason = `not root (uid ${String(process.getuid?.())}): mounting a tmpfs needs root`
      return false
    }
    try {
      const t = await mountTmpfs(undefined, 64 * 1024)
      await t.unmount()
      return true
    } catch (err) {
      reason = `running as root but mounting a tmpfs failed: ${(err as Error).message}`
      return false
    }
  })()
  return await probe
}

/** Why canMountTmpfs() said no (undefined while it says yes or has not been asked). */
export function tmpfsUnavailableReason (): string | undefined {
  return reason
}
