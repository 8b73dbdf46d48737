// Destroy is crash-safe (docs/CONTRACT.md): a store in a child process (helpers/crash-child.ts) is
// killed with SIGKILL in the middle of its work, and every restart on the same folder must find
// each shard either as it was or gone without a trace: no index file, no top-level entry, no
// transient, and a key registered again serves its new CAR and nothing of the old one.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { DAGStore } from '../src/engine/store.js'
import { FileMount } from '../src/storage/mount/file.js'
import { HttpMount } from '../src/storage/mount/http.js'
import { FsIndexRepo } from '../src/storage/index/fs-repo.js'
import type { AnyLevel } from '../src/storage/state/state-store.js'
import { Running } from './helpers/cli.js'
import { carBlocks, fixture, tempDir } from './helpers/fixtures.js'
import { encodeCar, makeBlock, patterned, type Block } from './helpers/car-gen.js'
import { serve, standard, type TestServer } from './helpers/http-server.js'
import { openStore, until } from './helpers/store.js'

const CHILD = fileURLToPath(new URL('./helpers/crash-child.js', import.meta.url))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

interface ChildConfig { repos: string[], keys: string[], sources: string[] }

/** A child that has loaded everything and waits for go(). */
function spawnChild (mode: string, config: ChildConfig): Running {
  return new Running(spawn(process.execPath, [CHILD, mode, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] }))
}

async function go (child: Running): Promise<void> {
  await child.waitFor(/^loaded$/m)
  child.child.stdin?.write('go\n')
}

/** Blocks with no block in common with the fixtures or with other seeds. */
function generated (seed: number, count: number): Block[] {
  return Array.from({ length: count }, (_, i) => makeBlock('raw', patterned(512 + (i * 97) % 3000, seed * 1000 + i)))
}

async function indexKeys (dir: string): Promise<string[]> {
  const out: string[] = []
  for await (const key of new FsIndexRepo(join(dir, 'index')).keys()) out.push(key)
  return out.sort()
}

/** Every (shard key → multihashes) pair of the top-level index, read straight from LevelDB. */
async function topLevelPairs (db: AnyLevel): Promise<Map<string, Set<string>>> {
  const pairs = db.sublevel<Uint8Array, Uint8Array>('tli', { keyEncoding: 'view', valueEncoding: 'view' })
  const out = new Map<string, Set<string>>()
  for await (const k of pairs.keys()) {
    let len = 0
    let shift = 0
    let i = 0
    for (;;) {
      const b = k[i++] as number
      len += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
      shift += 7
    }
    const key = new TextDecoder().decode(k.subarray(i + len))
    let set = out.get(key)
    if (set === undefined) out.set(key, set = new Set())
    set.add(hex(k.subarray(i, i + len)))
  }
  return out
}

const test = suite('destroy crash safety')

test('a kill after a destroy commits and before its cleanup: the restart finishes it; the key registers afresh', async () => {
  const { dir, cleanup } = await tempDir()
  const child = spawnChild('freeze-on-destroy', { repos: [dir], keys: ['K'], sources: [fixture('sample-v1.car')] })
  try {
    await go(child)
    await child.waitFor(/^destroyed$/m)
  } finally {
    await child.kill()
  }
  const other = encodeCar(generated(1, 30))
  await writeFile(join(dir, 'other.car'), other.bytes)
  const sample = await carBlocks('sample-v1.car')
  const { store } = await openStore(dir)
  try {
    assert.equal([...store.allShardsInfo().keys()], [])
    assert.equal(await indexKeys(dir), [], 'no index file outlives its shard')
    assert.equal(await store.shardsContainingCid(sample[0]!.cid), [], 'no top-level entry outlives its shard')

    await store.register('K', new FileMount(join(dir, 'other.car')))
    const accessor = await store.acquire('K')
    for (const b of other.blocks) assert.equal(await accessor.blockstore().get(b.cid), b.bytes)
    // Identity CIDs hold their own bytes: every blockstore has them.
    for (const b of sample) if (b.cid.multihash.code !== 0) assert.not.ok(await accessor.blockstore().has(b.cid), 'nothing of the old shard')
    await accessor.close()
    assert.equal(await store.shardsContainingCid(other.blocks[0]!.cid), ['K'])
    assert.equal(await store.shardsContainingCid(sample[0]!.cid), [])
  } finally {
    await store.close()
    await cleanup()
  }
})

/** The mount URL a store records for a source the child registers. */
function urlOf (source: string): string {
  return (source.startsWith('http:') ? new HttpMount(source) : new FileMount(source)).serialize().href
}

const notIdentity = (b: Block): boolean => b.cid.multihash.code !== 0

/**
 * Opens a store on `repo` as a restart would and checks what a kill may never leave: an index
 * file, transient or top-level entry of a key without a shard, or a shard whose index,
 * entries or blocks are not exactly those of the CAR it was registered over.
 */
async function checkRestart (repo: string, cars: Map<string, Block[]>, round: string): Promise<void> {
  const db = new Level(join(repo, 'state')) as unknown as AnyLevel
  const store = new DAGStore({ dir: repo, datastore: db, onError: () => {} })
  const at = (what: string): string => `${round}: ${what}`
  try {
    await store.start()
    // Shards killed before they were indexed are registered again by the start.
    const settled = (): boolean => [...store.allShardsInfo().values()].every((i) => i.state !== 'new' && i.state !== 'initializing')
    await until(settled, at('re-registrations'), 30_000)
    const urls = new Map<string, string>()
    const owned = new Set<string>()
    for (const key of store.allShardsInfo().keys()) {
      const d = await store.describeShard(key)
      assert.is(d.state, 'available', at(`${key} is available`))
      urls.set(key, d.url)
      if (d.transient !== undefined) owned.add(d.transient)
    }
    for (const key of await indexKeys(repo)) assert.ok(urls.has(key), at(`index file of ${key}, which has no shard`))
    for (const name of await readdir(join(repo, 'transients'))) {
      assert.ok(owned.has(join(repo, 'transients', name)), at(`transient ${name} that no shard owns`))
    }
    const pairs = await topLevelPairs(db)
    for (const key of pairs.keys()) assert.ok(urls.has(key), at(`top-level entries of ${key}, which has no shard`))
    for (const [key, url] of urls) {
      const blocks = cars.get(url)
      assert.ok(blocks !== undefined, at(`${key} is registered over ${url}, a source of the test`))
      const want = new Set(blocks.filter(notIdentity).map((b) => hex(b.cid.multihash.bytes)))
      const have = pairs.get(key) ?? new Set<string>()
      const missing = [...want].filter((mh) => !have.has(mh)).length
      const extra = [...have].filter((mh) => !want.has(mh)).length
      assert.equal({ missing, extra }, { missing: 0, extra: 0 }, at(`top-level entries of ${key} are its CAR's blocks`))
      const accessor = await store.acquire(key)
      try {
        for (const b of blocks) assert.ok(Buffer.from(b.bytes).equals(await accessor.blockstore().get(b.cid)), at(`${key} serves its CAR`))
        for (const [other, theirs] of cars) {
          if (other === url) continue
          for (const b of theirs.filter(notIdentity)) assert.not.ok(await accessor.blockstore().has(b.cid), at(`${key} serves nothing of ${other}`))
        }
      } finally {
        await accessor.close()
      }
    }
    for (const [url, blocks] of cars) {
      const holders = [...urls].filter(([, u]) => u === url).map(([key]) => key).sort()
      const first = blocks.find(notIdentity) as Block
      assert.equal((await store.shardsContainingCid(first.cid)).sort(), holders, at(`shardsContainingCid for ${url}`))
    }
  } finally {
    await store.close()
    await db.close()
  }
}

// Each child runs REPOS stores side by side and is killed once: every repo is one kill point.
const ROUNDS = 15
const REPOS = 4

test(`SIGKILL at ${ROUNDS * REPOS} random points of register/destroy/re-register cycles: every restart finds nothing left over`, async () => {
  const { dir, cleanup } = await tempDir()
  const repos = Array.from({ length: REPOS }, (_, i) => join(dir, `repo${i}`))
  const a = encodeCar(generated(2, 40))
  const b = encodeCar(generated(3, 40))
  const c = encodeCar(generated(4, 40), { version: 2 })
  await writeFile(join(dir, 'a.car'), a.bytes)
  const srv: TestServer = await serve((req, res, n) => { standard(req.url?.startsWith('/b') === true ? b.bytes : c.bytes)(req, res, n) })
  const origin = new URL(srv.url).origin
  // Local files read in place and remote CARs downloaded to transients, no block in common.
  const sources = [fixture('sample-v1.car'), join(dir, 'a.car'), `${origin}/b.car`, `${origin}/c.car`]
  const cars = new Map<string, Block[]>([
    [urlOf(sources[0] as string), await carBlocks('sample-v1.car')],
    [urlOf(sources[1] as string), a.blocks],
    [urlOf(sources[2] as string), b.blocks],
    [urlOf(sources[3] as string), c.blocks]
  ])
  const config = { repos, keys: ['k0', 'k1', 'k2'], sources }
  // The next child loads while the last one's repos are checked.
  let next = spawnChild('cycles', config)
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const child = next
      next = spawnChild('cycles', config)
      try {
        await go(child)
        if (round % 4 === 3) {
          // Anywhere, by time.
          await child.waitFor(/^ready$/m)
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 60))
        } else {
          // Around the stores' own steps: after a random number of traces.
          const traces = 1 + Math.floor(Math.random() * 40 * REPOS)
          await child.waitFor(new RegExp(`(?:^t\\n){${traces}}`, 'm'))
        }
      } finally {
        await child.kill()
      }
      if (round % 5 === 4) {
        // Killed again while its start finishes what the first kill left.
        const again = next
        next = spawnChild('cycles', config)
        try {
          await go(again)
          await again.waitFor(/^starting$/m)
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 30))
        } finally {
          await again.kill()
        }
      }
      for (const [i, repo] of repos.entries()) await checkRestart(repo, cars, `round ${round}, repo ${i}`)
    }
  } finally {
    await next.kill()
    await srv.close()
    await cleanup()
  }
})

test.run()
