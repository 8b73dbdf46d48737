import * as assert from 'uvu/assert'

/** Asserts `p` rejects and hands the error to `check`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- checks read fields of whatever was thrown
export async function rejectsWith (p: Promise<unknown>, check: (err: any) => void): Promise<void> {
  try {
    await p
  } catch (err) {
    check(err)
    return
  }
  assert.unreachable('expected a rejection')
}

/** The `code` of the error `p` rejects with (undefined if it resolves). */
export async function codeOf (p: Promise<unknown>): Promise<string | undefined> {
  return await p.then(() => undefined, (e: unknown) => (e as { code?: string }).code)
}

/** items[i], failing the test right here (not with an undefined read further on) when there is none. */
export function at<T> (items: ArrayLike<T>, i: number): T {
  const item = items[i]
  if (item === undefined) throw new RangeError(`no item ${i} among ${items.length}`)
  return item
}
