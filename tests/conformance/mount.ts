import { suite } from 'uvu'
import type { Test } from 'uvu'
import * as assert from 'uvu/assert'
import { isAbortError } from '../../src/base/errors.js'
import { MountRegistry } from '../../src/storage/mount/registry.js'
import type { Mount, MountReader } from '../../src/base/mount-types.js'

export interface MountUnderTest {
  mount: Mount
  /** The bytes the mount serves. */
  expected: Uint8Array
  cleanup: () => Promise<void>
  /** A registry that can instantiate the mount's URL; default `new MountRegistry()`. */
  registry?: MountRegistry
}

async function collect (it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const chunk of it) {
    assert.instance(chunk, Uint8Array)
    parts.push(chunk)
  }
  return Buffer.concat(parts)
}

function same (actual: Uint8Array, expected: Uint8Array, msg: string): void {
  assert.is(actual.byteLength, expected.byteLength, `${msg}: length`)
  assert.ok(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength)
    .equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)), `${msg}: bytes differ`)
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
 * The behaviour every Mount implementation owes the store. Returns the suite; the caller runs
 * it (`mountConformance(…).run()`), so it can add implementation-specific tests first.
 */
export function mountConformance (name: string, make: () => Promise<MountUnderTest>): Test {
  const s = suite(`mount conformance: ${name}`)

  async function using (fn: (m: MountUnderTest) => Promise<void>): Promise<void> {
    const m = await make()
    try {
      await fn(m)
    } finally {
      await m.mount.close?.()
      await m.cleanup()
    }
  }

  s('info() has the contract shape', () => using(async ({ mount }) => {
    const info = mount.info()
    assert.ok(info.kind === 'local' || info.kind === 'remote', `kind ${String(info.kind)}`)
    for (const k of ['sequential', 'seek', 'random'] as const) assert.type(info[k], 'boolean', k)
    assert.ok(info.sequential, 'every mount can at least be streamed')
  }))

  s('stat() reports existence, size and readiness', () => using(async ({ mount, expected }) => {
    const st = await mount.stat()
    assert.is(st.exists, true)
    assert.type(st.ready, 'boolean')
    if (st.size !== undefined) assert.is(st.size, expected.byteLength)
  }))

  s('fetch() → stream() yields the bytes; stream(start) the suffix', () => using(async ({ mount, expected }) => {
    await withReader(mount, async (reader) => {
      if (reader.size !== undefined) assert.is(reader.size, expected.byteLength)
      same(await collect(reader.stream()), expected, 'stream()')
      const mid = Math.floor(expected.byteLength / 3)
      same(await collect(reader.stream(mid)), expected.subarray(mid), 'stream(mid)')
      same(await collect(reader.stream(expected.byteLength)), new Uint8Array(0), 'stream(size)')
    })
  }))

  s('two streams on one reader run concurrently', () => using(async ({ mount, expected }) => {
    await withReader(mount, async (reader) => {
      const [a, b] = await Promise.all([collect(reader.stream()), collect(reader.stream(1))])
      same(a, expected, 'first')
      same(b, expected.subarray(1), 'second')
    })
  }))

  s('read(position, length) when info().random', () => using(async ({ mount, expected }) => {
    await withReader(mount, async (reader) => {
      if (!mount.info().random) {
        assert.ok(true)
        return
      }
      assert.type(reader.read, 'function', 'random mounts offer read()')
      const read = reader.read!
      const n = expected.byteLength
      const mid = Math.floor(n / 2)
      same(await read(mid, Math.min(100, n - mid)), expected.subarray(mid, mid + 100), 'middle')
      same(await read(0, n), expected, 'whole')
      same(await read(Math.max(0, n - 10), 1000), expected.subarray(Math.max(0, n - 10)), 'clamped at the end')
      same(await read(n, 10), new Uint8Array(0), 'at the end')
      same(await read(n + 100, 10), new Uint8Array(0), 'past the end')
      same(await read(mid, 0), new Uint8Array(0), 'zero length')
      const reads = await Promise.all([0, 1, 2, 3].map(async (i) => await read(i * 7, 5)))
      reads.forEach((r, i) => { same(r, expected.subarray(i * 7, i * 7 + 5), `concurrent read ${i}`) })
    })
  }))

  s('reader close() is idempotent', () => using(async ({ mount }) => {
    const reader = await mount.fetch()
    await reader.close()
    await reader.close()
    await Promise.all([reader.close(), reader.close()])
  }))

  s('serialize() round-trips through a registry', () => using(async ({ mount, expected, registry }) => {
    const url = mount.serialize()
    assert.instance(url, URL)
    assert.type(url.protocol, 'string')
    assert.ok(/^[a-z][a-z0-9+.-]*:$/.test(url.protocol), `scheme ${url.protocol}`)
    const reg = registry ?? new MountRegistry()
    assert.is(reg.represent(mount).href, url.href)
    for (const form of [url, url.href]) {
      const again = reg.instantiate(form)
      try {
        assert.is(again.serialize().href, url.href, 'same URL again')
        assert.equal(again.info(), mount.info())
        same(await withReader(again, async (r) => await collect(r.stream())), expected, 'instantiated mount')
      } finally {
        await again.close?.()
      }
    }
  }))

  s('fetch() with an aborted signal rejects with an AbortError', () => using(async ({ mount }) => {
    const ac = new AbortController()
    ac.abort()
    try {
      const reader = await mount.fetch(ac.signal)
      await reader.close()
      assert.unreachable('fetch should have rejected')
    } catch (err) {
      assert.ok(isAbortError(err), `got ${String(err)}`)
    }
  }))

  return s
}
