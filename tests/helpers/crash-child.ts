// Stores in a child process that tests/store-crash.test.ts kills with SIGKILL at chosen
// moments. Run as: node crash-child.js <mode> <json config>. It loads everything, prints
// "loaded" and waits for a line on stdin, so the parent can have the next child ready while it
// checks the last one's leftovers. Progress goes to stdout with synchronous writes, one line per
// event, so a line the parent reads was really reached. "starting" is printed just before the
// stores start (and finish what a kill left).
//
//   freeze-on-destroy: registers config.keys[0] over config.sources[0] in config.repos[0],
//     destroys it, and on the destroy's trace (the deletion is durable, the cleanup has not run)
//     prints "destroyed" and blocks the thread until it is killed.
//   cycles: in every repo, one worker per key registers it over a random source, sometimes
//     reads from it, destroys it (sometimes before its registration finished) and registers it
//     again at once, forever. Prints "ready" once every store started, then "t" per trace.
import { writeSync } from 'node:fs'
import { DAGStore } from '../../src/engine/store.js'
import { transitionTable } from '../../src/engine/shard/table.js'
import { FileMount } from '../../src/storage/mount/file.js'
import { HttpMount } from '../../src/storage/mount/http.js'
import type { Mount } from '../../src/base/mount-types.js'

interface Config { repos: string[], keys: string[], sources: string[] }

const [mode, json] = process.argv.slice(2)
const config = JSON.parse(json ?? '{}') as Config

function say (line: string): void {
  writeSync(1, line + '\n')
}

function mountOf (source: string): Mount {
  return source.startsWith('http:') ? new HttpMount(source) : new FileMount(source)
}

function pick<T> (items: T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T
}

async function freezeOnDestroy (store: DAGStore): Promise<void> {
  const key = config.keys[0] as string
  await store.register(key, mountOf(config.sources[0] as string))
  const traces = store.traces()
  void (async () => {
    for await (const t of traces) {
      if (t.key === key && t.op === 'destroy') {
        say('destroyed')
        // Blocks this thread: nothing after the destroy's commit runs until the kill.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
      }
    }
  })()
  await store.destroy(key)
  say('cleanup finished before the kill')
}

async function worker (store: DAGStore, key: string): Promise<void> {
  // What the last run left under the key goes first.
  await store.destroy(key).catch(() => {})
  for (;;) {
    let done!: () => void
    const registered = new Promise<void>((resolve) => { done = resolve })
    try {
      store.registerShard(key, mountOf(pick(config.sources)), () => { done() })
    } catch {
      // The previous incarnation's destroy is not processed yet.
      await new Promise((resolve) => setImmediate(resolve))
      continue
    }
    if (Math.random() < 0.7) await registered
    if (Math.random() < 0.3) {
      const accessor = await store.acquire(key).catch(() => undefined)
      if (accessor !== undefined) {
        for await (const cid of accessor.blockstore().allKeys()) {
          await accessor.blockstore().get(cid)
          break
        }
        await accessor.close()
      }
    }
    // Not awaited: the next registration races this destroy's cleanup.
    store.destroy(key).catch(() => {})
    await registered
  }
}

async function cycles (stores: DAGStore[]): Promise<void> {
  for (const store of stores) {
    void (async () => {
      // A subscriber that fell behind is ended (SubscriptionLaggedError): subscribe again.
      for (;;) {
        try {
          for await (const _ of store.traces()) say('t')
        } catch {}
      }
    })()
  }
  say('ready')
  await Promise.all(stores.flatMap((store) => config.keys.map(async (key) => { await worker(store, key) })))
}

// The transition table costs more than the rest of a start: built before the parent says go.
transitionTable()
say('loaded')
await new Promise((resolve) => { process.stdin.once('data', resolve) })
const stores = config.repos.map((dir) => new DAGStore({ dir, onError: () => {} }))
say('starting')
await Promise.all(stores.map(async (store) => { await store.start() }))
if (mode === 'freeze-on-destroy') await freezeOnDestroy(stores[0] as DAGStore)
else if (mode === 'cycles') await cycles(stores)
else throw new Error(`unknown mode ${String(mode)}`)
