/** Where errors with no caller to go to end up unless the user passes `onError`: one line on stderr. */
export function defaultReport (err: unknown, context: string): void {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  process.stderr.write(`dagstore: ${context}: ${message}\n`)
}
