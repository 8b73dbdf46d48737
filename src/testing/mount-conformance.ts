/** The behaviour every Mount implementation owes the store. */
import assert from 'node:assert/strict'
import { isAbortError } from '../base/errors.js'
import type { Mount, MountReader } from '../base/mount-types.js'
import { MountRegistry } from '../storage/mount/registry.js'
import { assertSameBytes, type RegisterTest } from './harness.js'

export interface MountUnderTest {
  mount: Mount
  /** The bytes the mount serves. */
  expected: Uint8Array
  /** Frees what `make` set up (servers, files); the suite closes the mount itself. */
  cleanup: () => Promise<void>
  /** A registry that can instantiate the mount's URL; default `new MountRegistry()`. */
  registry?: MountRegistry
}

async function collect (it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const chunk of it) {
    assert.ok(chunk instanceof Uint8Array, 'stream chunks are Uint8Arrays')
    parts.push(chunk)
  }
  return Buffer.concat(parts)
}

async function withReader<T> (mount: Mount, fn: (reader: MountReader) => Promise<T>): Promise<T> {
  const reader = await mount.fetch()
  try {
    return await fn(reader)
  } finally {
    await reader.close()
  }
}

/**
 * Registers the Mount checks with `test`; each check gets a fresh mount from `make`, then
 * closes it and calls its cleanup.
 */
export function mountConformance (test: RegisterTest, make: () => Promise<MountUnderTest>): void {
  async function using (fn: (m: MountUnderTest) => Promise<void>): Promise<void> {
    const m = await make()
    try {
      await fn(m)
    } finally {
      await m.mount.close?.()
      await m.cleanup()
    }
  }

  test('info() has the contract shape', () => using(async ({ mount }) => {
    const info = mount.info()
    assert.ok(info.kind === 'local' || info.kind === 'remote', `kind ${String(info.kind)}`)
    for (const k of ['sequential', 'seek', 'random'] as const) assert.equal(typeof info[k], 'boolean', k)
    assert.ok(info.sequential, 'every mount can at least be streamed')
  }))

  test('stat() reports existence, size and readiness', () => using(async ({ mount, expected }) => {
    const st = await mount.stat()
    assert.equal(st.exists, true)
    assert.equal(typeof st.ready, 'boolean')
    if (st.size !== undefined) assert.equal(st.size, expected.byteLength)
  }))

  test('fetch() → stream() yields the bytes; stream(start) the suffix', () => using(async ({ mount, expected }) => {
    await withReader(mount, async (reader) => {
      if (reader.size !== undefined) assert.equal(reader.size, expected.byteLength)
      assertSameBytes(await collect(reader.stream()), expected, 'stream()')
      const mid = Math.floor(expected.byteLength / 3)
      assertSameBytes(await collect(reader.stream(mid)), expected.subarray(mid), 'stream(mid)')
      assertSameBytes(await collect(reader.stream(expected.byteLength)), new Uint8Array(0), 'stream(size)')
    })
  }))

  test('two streams on one reader run concurrently', () => using(async ({ mount, expected }) => {
    await withReader(mount, async (reader) => {
      const [a, b] = await Promise.all([collect(reader.stream()), collect(reader.stream(1))])
      assertSameBytes(a, expected, 'first')
      assertSameBytes(b, expected.subarray(1), 'second')
    })
  }))

  test('read(position, length) when info().random', () => using(async ({ mount, expected }) => {
    if (!mount.info().random) return
    await withReader(mount, async (reader) => {
      assert.equal(typeof reader.read, 'function', 'random mounts offer read()')
      const read = (reader.read as NonNullable<MountReader['read']>).bind(reader)
      const n = expected.byteLength
      const mid = Math.floor(n / 2)
      assertSameBytes(await read(mid, Math.min(100, n - mid)), expected.subarray(mid, mid + 100), 'middle')
      assertSameBytes(await read(0, n), expected, 'whole')
      assertSameBytes(await read(Math.max(0, n - 10), 1000), expected.subarray(Math.max(0, n - 10)), 'clamped at the end')
      assertSameBytes(await read(n, 10), new Uint8Array(0), 'at the end')
      assertSameBytes(await read(n + 100, 10), new Uint8Array(0), 'past the end')
      assertSameBytes(await read(mid, 0), new Uint8Array(0), 'zero length')
      const reads = await Promise.all([0, 1, 2, 3].map(async (i) => await read(i * 7, 5)))
      reads.forEach((r, i) => { assertSameBytes(r, expected.subarray(i * 7, i * 7 + 5), `concurrent read ${i}`) })
    })
  }))

  test('readNow(position, length[, into]), when offered, gives read()\'s bytes or undefined', () => using(async ({ mount, expected }) => {
    await withReader(mount, async (reader) => {
      if (reader.readNow === undefined) return
      const readNow = reader.readNow.bind(reader)
      const n = expected.byteLength
      const mid = Math.floor(n / 2)
      const cases = [[0, Math.min(64, n), 'start'], [mid, Math.min(100, n - mid), 'middle'], [n + 10, 10, 'past the end']] as const
      for (const [position, length, what] of cases) {
        const want = expected.subarray(Math.min(position, n), Math.min(n, position + length))
        const got = readNow(position, length)
        if (got !== undefined) assertSameBytes(got, want, what)
        // Into the caller's buffer: a view of it with the same bytes, nothing written past them.
        const into = new Uint8Array(length + 2).fill(0xa5)
        const viewed = readNow(position, length, into)
        if (viewed === undefined) continue
        assertSameBytes(viewed, want, `${what}, into a buffer`)
        if (viewed.byteLength > 0) assert.ok(viewed.buffer === into.buffer && viewed.byteOffset === 0, `${what}: a view of the buffer given`)
        assert.ok(into[length] === 0xa5 && into[length + 1] === 0xa5, `${what}: nothing written past the length asked`)
      }
    })
  }))

  test('readInto(position, target), when offered, fills target with read()\'s bytes and counts them', () => using(async ({ mount, expected }) => {
    await withReader(mount, async (reader) => {
      if (reader.readInto === undefined) return
      const readInto = reader.readInto.bind(reader)
      const n = expected.byteLength
      const mid = Math.floor(n / 2)
      const cases = [[0, Math.min(64, n), 'start'], [mid, Math.min(100, n - mid), 'middle'], [Math.max(0, n - 3), 10, 'across the end'],
        [n + 10, 10, 'past the end']] as const
      for (const [position, length, what] of cases) {
        const target = new Uint8Array(length + 2).fill(0xa5)
        const got = await readInto(position, target.subarray(0, length))
        const want = expected.subarray(Math.min(position, n), Math.min(n, position + length))
        assert.equal(got, want.byteLength, `${what}: count`)
        assertSameBytes(target.subarray(0, got), want, what)
        assert.ok(target.subarray(length).every((b) => b === 0xa5), `${what}: nothing written past the target`)
      }
      // Reused targets, concurrently: each read lands in its own.
      const targets = [0, 1, 2, 3].map(() => new Uint8Array(5))
      await Promise.all(targets.map(async (t, i) => await readInto(i * 7, t)))
      targets.forEach((t, i) => {
        const want = expected.subarray(i * 7, i * 7 + 5)
        assertSameBytes(t.subarray(0, want.byteLength), want, `concurrent ${i}`)
      })
    })
  }))

  test('reader close() is idempotent', () => using(async ({ mount }) => {
    const reader = await mount.fetch()
    await reader.close()
    await reader.close()
    await Promise.all([reader.close(), reader.close()])
  }))

  test('serialize() round-trips through a registry', () => using(async ({ mount, expected, registry }) => {
    const url = mount.serialize()
    assert.ok(url instanceof URL, 'serialize() returns a URL')
    assert.match(url.protocol, /^[a-z][a-z0-9+.-]*:$/, `scheme ${url.protocol}`)
    const reg = registry ?? new MountRegistry()
    assert.equal(reg.represent(mount).href, url.href)
    for (const form of [url, url.href]) {
      const again = reg.instantiate(form)
      try {
        assert.equal(again.serialize().href, url.href, 'same URL again')
        assert.deepEqual(again.info(), mount.info())
        assertSameBytes(await withReader(again, async (r) => await collect(r.stream())), expected, 'instantiated mount')
      } finally {
        await again.close?.()
      }
    }
  }))

  test('fetch() with an aborted signal rejects with an AbortError', () => using(async ({ mount }) => {
    const ac = new AbortController()
    ac.abort()
    let reader: MountReader | undefined
    try {
      reader = await mount.fetch(ac.signal)
    } catch (err) {
      assert.ok(isAbortError(err), `got ${String(err)}`)
      return
    }
    await reader.close()
    assert.fail('fetch should have rejected')
  }))
}
