/**
 * What the conformance suites share. A suite registers its checks through a function the
 * caller passes in (uvu's `suite()`, node:test's `test`, mocha's `it`...), as abstract-level's
 * suite takes `test`: the package depends on no test runner. Checks fail by throwing
 * (node:assert), which every runner understands.
 */
import assert from 'node:assert/strict'

/** Registers one check; `fn` rejects when the implementation does not conform. */
export type RegisterTest = (name: string, fn: () => Promise<void>) => unknown

export function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function assertSameBytes (actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.ok(actual instanceof Uint8Array, `${what}: not a Uint8Array`)
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length`)
  assert.ok(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength)
    .equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)), `${what}: bytes differ`)
}

/** Awaits `p`, which must reject; hands the error to `check`. */
export async function assertRejects (p: Promise<unknown>, check: (err: unknown) => void, what: string): Promise<void> {
  let settled = false
  try {
    await p
    settled = true
  } catch (err) {
    check(err)
  }
  if (settled) assert.fail(`${what}: expected a rejection`)
}

export function codeOf (err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code
}

/** items[i]; a suite that reaches past its own fixtures fails here rather than on an undefined later. */
export function at<T> (items: ArrayLike<T>, i: number): T {
  const item = items[i]
  if (item === undefined) throw new RangeError(`no item ${i} among ${items.length}`)
  return item
}

/** XORs bytes[position] with `mask`; fails when position is outside bytes (a typed array would drop the write). */
export function flipBits (bytes: Uint8Array, position: number, mask: number): void {
  bytes[position] = at(bytes, position) ^ mask
}
