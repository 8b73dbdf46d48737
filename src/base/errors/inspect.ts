/**
 * Reading what was thrown: anything may be (a DAGStoreError, a Node system error, a string),
 * so these never assume an Error.
 */

/** The string `code` of a thrown value (ours, or a Node system error's `ENOENT`...), else undefined. */
export function codeOf (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

/** `err` itself when it is an Error, else an Error saying what it was (for callers that keep or pass on Errors). */
export function toError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

/** A file-system path that is not there: ENOENT, or ENOTDIR (a path through a non-directory can no more exist than a missing one). */
export function isMissing (err: unknown): boolean {
  const code = codeOf(err)
  return code === 'ENOENT' || code === 'ENOTDIR'
}
