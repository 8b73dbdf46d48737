/**
 * Everything the CLI takes from the process it runs in. The bin hands it the real ones
 * (main.ts); a test runs the CLI in its own process with streams in memory.
 */
interface CliStream extends NodeJS.WritableStream {
  /** A progress bar is drawn only on a terminal. */
  isTTY?: boolean
  columns?: number
}

export interface CliIo {
  stdout: CliStream
  stderr: CliStream
  /** Ends the run with this exit code (0 ok, 1 failed, 2 usage). */
  exit: (code: number) => void
  /** Where DAGSTORE_DIR, DAGSTORE_LISTEN and DAGSTORE_TOKEN are read. */
  env: Readonly<Record<string, string | undefined>>
  /** What relative paths (--dir, files to register, -o) are relative to. */
  cwd: string
  /** Aborted to stop a running `serve`; the reason (the signal's name) is what it reports. */
  stop: AbortSignal
  /**
   * Runs `fn` when the process ends, however it ends (a crash included), so it must be
   * synchronous. Returns what removes it again.
   */
  onExit: (fn: () => void) => () => void
}
