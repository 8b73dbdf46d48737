/**
 * Listings at a million shards, through the real HTTP server (GET /shards).
 *
 * Bar (docs/PERFORMANCE.md): a page ≤ 50 ms, and the worst event-loop stall of the server's
 * process meanwhile ≤ 20 ms.
 *
 * The server: a child process (this file, forked) with a DAGStore in a temp dir holding
 * LIST_SHARDS lazy shards (keys `shard-0000001`…, FileMount paths that are never read: lazy
 * registration does not touch the mount), registered as bench/scale does, behind startServer
 * on 127.0.0.1 with a bearer token. Its event loop is watched by perf_hooks'
 * monitorEventLoopDelay (resolution 1 ms); the bench resets the histogram before a phase and
 * reads its max after, over IPC.
 *
 * Phases, each timed request start → last body byte in this process (undici, one keep-alive
 * connection):
 * - the first page: `GET /shards?limit=100`, LIST_REPEAT times (median and worst);
 * - a full cursor walk: `?limit=1000`, following `next` until it is absent; every shard seen
 *   once, in key order;
 * - a state filter no shard matches (`?state=errored&limit=100`, the worst case: each call
 *   examines its bounded number of keys and answers an empty page with a `next`), first page
 *   LIST_REPEAT times, then the whole walk;
 * - a prefix page (`?prefix=shard-00123&limit=100`: 100 shards), LIST_REPEAT times.
 *
 * Peers: a bare node:http server in the same child process answering, from memory, the very
 * bytes our server answered for that request (the Node ceiling for a body of that size), timed
 * the same way in the same run; for the stall, the child's worst loop delay over an idle
 * interval as long as the phase.
 *
 * Env: LIST_SHARDS (1000000), LIST_WINDOW (10000), LIST_REPEAT (20).
 * Run: `npm run build && node dist/bench/list.js`
 */
import { fork } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { DAGStore } from '../src/index.js'
import { startServer } from '../src/app/server/index.js'
import { envInt, fmt, fmtAuto, header, note, now, registerLazy, report, shardKey, sleep, tempDir } from './util.js'

const SHARDS = envInt('LIST_SHARDS', 1_000_000)
const WINDOW = envInt('LIST_WINDOW', 10_000)
const REPEAT = envInt('LIST_REPEAT', 20)
const TARGET_PAGE_MS = { atMost: 50 }
const TARGET_STALL_MS = { atMost: 20 }
const TOKEN = 'bench-list-token-0123456789abcdef0123456789'
const CHILD_FLAG = '--list-child'
const PREFIX = 'shard-00123'

// ---------------------------------------------------------------- the server (child process)

type ToChild = { op: 'reset' } | { op: 'stall' } | { op: 'bare', path: string, body: string }
type FromChild = { op: 'ready', port: number, barePort: number, registerMs: number } | { op: 'reset' } | { op: 'stall', ms: number } | { op: 'bare' }

async function registerAll (store: DAGStore): Promise<void> {
  await registerLazy(store, SHARDS, WINDOW, (i) => shardKey(i + 1, 7), (key) => `/data/cars/${key}.car`)
}

async function serverChild (dir: string): Promise<void> {
  const send = (m: FromChild): void => { process.send?.(m) }
  const store = new DAGStore({ dir })
  await store.start()
  const t0 = now()
  await registerAll(store)
  const registerMs = now() - t0
  // The registrations' garbage is collected before the server starts: the stalls measured are
  // the listings' and the server's, not a major collection of a million registrations' leftovers
  // landing in the first phase (docs/PERFORMANCE.md gives the figures without this too).
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) for (let i = 0; i < 2; i++) gc()
  const server = await startServer(store, { host: '127.0.0.1', port: 0, token: TOKEN })
  // The peer: the same bytes from memory, in the same process.
  const bodies = new Map<string, Buffer>()
  const bare = createServer((req, res) => {
    const body = bodies.get(req.url ?? '')
    if (body === undefined) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.byteLength })
    res.end(body)
  })
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve))
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  process.on('message', (m: ToChild) => {
    if (m.op === 'reset') {
      delay.reset()
      send({ op: 'reset' })
    } else if (m.op === 'stall') {
      send({ op: 'stall', ms: delay.max / 1e6 })
    } else {
      bodies.set(m.path, Buffer.from(m.body, 'utf8'))
      send({ op: 'bare' })
    }
  })
  process.once('disconnect', () => {
    bare.close()
    server.close().then(async () => { await store.close() }).finally(() => process.exit(0))
  })
  send({ op: 'ready', port: server.port, barePort: (bare.address() as AddressInfo).port, registerMs })
}

// ---------------------------------------------------------------- the bench

interface Child {
  ready: Extract<FromChild, { op: 'ready' }>
  ask: (m: ToChild) => Promise<FromChild>
  stop: () => Promise<void>
}

async function startChild (dir: string): Promise<Child> {
  const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG, dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc'] })
  const ready = await new Promise<Extract<FromChild, { op: 'ready' }>>((resolve, reject) => {
    child.once('message', (m: FromChild) => { if (m.op === 'ready') resolve(m) })
    child.once('error', reject)
    child.once('exit', (code) => { reject(new Error(`server process exited with code ${String(code)}`)) })
  })
  // One question at a time: each answer is the next message.
  let chain = Promise.resolve() as Promise<unknown>
  const ask = async (m: ToChild): Promise<FromChild> => {
    const answer = chain.then(async () => await new Promise<FromChild>((resolve) => {
      child.once('message', resolve)
      child.send(m)
    }))
    chain = answer.catch(() => {})
    return await answer
  }
  return {
    ready,
    ask,
    stop: async () => {
      const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
      child.disconnect()
      await exited
    }
  }
}

interface Page { shards: Array<{ key: string }>, next?: string }

async function get (pool: Pool, path: string): Promise<{ ms: number, text: string }> {
  const t0 = now()
  const { statusCode, body } = await pool.request({ path, method: 'GET', headers: { authorization: `Bearer ${TOKEN}` } })
  const text = await body.text()
  const ms = now() - t0
  if (statusCode !== 200) throw new Error(`GET ${path}: ${statusCode} ${text.slice(0, 200)}`)
  return { ms, text }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)] ?? NaN
}

async function stallDuring<T> (child: Child, work: () => Promise<T>): Promise<{ result: T, stallMs: number, ms: number }> {
  await child.ask({ op: 'reset' })
  const t0 = now()
  const result = await work()
  const ms = now() - t0
  const answer = await child.ask({ op: 'stall' })
  return { result, stallMs: answer.op === 'stall' ? answer.ms : NaN, ms }
}

/** The child's worst loop delay while it does nothing but answer the bench, for `ms`. */
async function idleStall (child: Child, ms: number): Promise<number> {
  return (await stallDuring(child, async () => { await sleep(ms) })).stallMs
}

/** The same request REPEAT times on ours and on the bare peer (serving our answer's bytes). */
async function repeated (child: Child, ours: Pool, bare: Pool, path: string, check: (p: Page) => void): Promise<void> {
  const first = await get(ours, path)
  check(JSON.parse(first.text) as Page)
  await child.ask({ op: 'bare', path, body: first.text })
  const { result: times, stallMs, ms } = await stallDuring(child, async () => {
    const out: number[] = []
    for (let i = 0; i < REPEAT; i++) out.push((await get(ours, path)).ms)
    return out
  })
  const peer: number[] = []
  for (let i = 0; i < REPEAT; i++) peer.push((await get(bare, path)).ms)
  const idle = await idleStall(child, ms)
  report(`GET ${path}: median`, median(times), 'ms', 'bare node:http, same bytes', median(peer), TARGET_PAGE_MS)
  report(`GET ${path}: worst of ${REPEAT}`, Math.max(...times), 'ms', 'bare node:http, same bytes', Math.max(...peer), TARGET_PAGE_MS)
  report('  worst loop stall meanwhile', stallMs, 'ms', 'idle server, as long', idle, TARGET_STALL_MS)
  note('', `${fmt(first.text.length)} B answer; ${fmt((JSON.parse(first.text) as Page).shards.length)} shards`)
}

/** Follows `next` from the first page of `query` to the last; the pages' times and the keys seen. */
async function walk (pool: Pool, query: string): Promise<{ pages: number[], keys: number, ordered: boolean, sample: string }> {
  const pages: number[] = []
  let keys = 0
  let ordered = true
  let previous = ''
  let cursor: string | undefined
  let sample = ''
  do {
    const path = `/shards?${query}${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
    const { ms, text } = await get(pool, path)
    if (sample === '' && cursor !== undefined) sample = path
    pages.push(ms)
    const page = JSON.parse(text) as Page
    for (const { key } of page.shards) {
      if (key <= previous) ordered = false
      previous = key
      keys++
    }
    cursor = page.next
  } while (cursor !== undefined)
  return { pages, keys, ordered, sample }
}

/** `pageBar`: the page bar applies (pages of 100; a page of 1,000 describes ten times as many shards). */
async function walkPhase (child: Child, ours: Pool, bare: Pool, query: string, expectKeys: number, pageBar: boolean): Promise<void> {
  const { result: w, stallMs, ms } = await stallDuring(child, async () => await walk(ours, query))
  if (w.keys !== expectKeys || !w.ordered) throw new Error(`walk ?${query}: ${w.keys} keys (expected ${expectKeys}), ${w.ordered ? 'in order' : 'OUT OF ORDER'}`)
  // The peer answers one page of ours (a middle one) as many times as the walk had pages.
  const body = (await get(ours, w.sample === '' ? `/shards?${query}` : w.sample)).text
  await child.ask({ op: 'bare', path: '/walk-page', body })
  const t0 = now()
  for (let i = 0; i < w.pages.length; i++) await get(bare, '/walk-page')
  const peerMs = now() - t0
  const idle = await idleStall(child, Math.min(ms, 10_000))
  report(`walk ?${query}: ${fmt(w.pages.length)} pages`, ms, 'ms', 'bare node:http, a page of ours as often', peerMs)
  report('  worst page', Math.max(...w.pages), 'ms', 'median page', median(w.pages), pageBar ? TARGET_PAGE_MS : undefined)
  report('  worst loop stall meanwhile', stallMs, 'ms', `idle server, ${fmt(Math.min(ms, 10_000))} ms`, idle, TARGET_STALL_MS)
  note('', `${fmt(w.keys)} shards listed, each once, in key order`)
}

function loadNote (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' / ')
}

async function main (): Promise<void> {
  header(`bench/list: GET /shards over ${fmt(SHARDS)} lazy shards`)
  note('parameters', `${fmt(SHARDS)} shards, ${REPEAT} repeats per page; load average (1/5/15 min) ${loadNote()}`)
  const { dir, cleanup } = await tempDir('dagstore-bench-list-')
  let child: Child | undefined
  const pools: Pool[] = []
  try {
    const t0 = now()
    child = await startChild(join(dir, 'store'))
    note('server', `${fmt(SHARDS)} lazy shards registered in ${fmt(child.ready.registerMs)} ms; up in ${fmt(now() - t0)} ms`)
    const ours = new Pool(`http://127.0.0.1:${child.ready.port}`, { connections: 1 })
    const bare = new Pool(`http://127.0.0.1:${child.ready.barePort}`, { connections: 1 })
    pools.push(ours, bare)
    const first = `shard-${String(1).padStart(7, '0')}`

    await repeated(child, ours, bare, '/shards?limit=100', (p) => {
      if (p.shards.length !== 100 || p.shards[0]?.key !== first || p.next === undefined) throw new Error('first page: not the first 100 shards')
    })
    await walkPhase(child, ours, bare, 'limit=1000', SHARDS, false)
    await repeated(child, ours, bare, '/shards?state=errored&limit=100', (p) => {
      if (p.shards.length !== 0 || p.next === undefined) throw new Error('state=errored: expected an empty page with a next')
    })
    await walkPhase(child, ours, bare, 'state=errored&limit=100', 0, true)
    await repeated(child, ours, bare, `/shards?prefix=${PREFIX}&limit=100`, (p) => {
      if (p.shards.length !== 100 || p.shards.some((s) => !s.key.startsWith(PREFIX))) throw new Error('prefix page: not the 100 shards of the prefix')
    })
    note('load average at end', loadNote())
    note('', `(bars: page <= ${fmtAuto(TARGET_PAGE_MS.atMost)} ms, stall <= ${fmtAuto(TARGET_STALL_MS.atMost)} ms)`)
  } finally {
    for (const p of pools) await p.close()
    await child?.stop()
    await cleanup()
  }
}

if (process.argv[2] === CHILD_FLAG) {
  serverChild(process.argv[3] ?? '').catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
