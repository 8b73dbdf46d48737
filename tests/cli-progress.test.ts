// Progress of long CLI work: `dagstore register` reading a CAR shows a bar on a terminal and
// a few plain lines otherwise (ByteProgress, fed by the observed mount as the store reads).
import * as assert from 'uvu/assert'
import { suite } from 'uvu'
import { Writable } from 'node:stream'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ByteProgress } from '../src/app/cli/progress.js'
import { runCli } from '../src/app/cli/commands/program.js'
import type { CliIo } from '../src/app/cli/io.js'
import { dirSuite } from './helpers/store.js'
import { encodeCar, makeBlock, patterned } from './helpers/car-gen.js'
import { serve, type TestServer } from './helpers/http-server.js'
import { cliEnv, startServe } from './helpers/cli.js'

/** A stream that keeps what is written; `isTTY` decides which renderer the CLI picks. */
class Captured extends Writable {
  text = ''
  readonly isTTY: boolean
  readonly columns = 100
  constructor (isTTY: boolean) {
    super()
    this.isTTY = isTTY
  }

  private readonly watchers = new Set<() => void>()

  override _write (chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString()
    for (const l of this.watchers) l()
    done()
  }

  /** Resolves with the first match of `re` for which `accept` holds, once it is written. */
  async waitFor (re: RegExp, accept: (m: RegExpExecArray) => boolean): Promise<RegExpExecArray> {
    const find = (): RegExpExecArray | undefined => {
      for (const m of this.text.matchAll(new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g'))) {
        if (accept(m)) return m
      }
      return undefined
    }
    return await new Promise((resolve, reject) => {
      // A guard against hanging the suite, not a timing assertion.
      const timer = setTimeout(() => {
        this.watchers.delete(check)
        reject(new Error(`no ${String(re)} within 60 s in:\n${this.text}`))
      }, 60_000)
      const check = (): void => {
        const m = find()
        if (m === undefined) return
        clearTimeout(timer)
        this.watchers.delete(check)
        resolve(m)
      }
      this.watchers.add(check)
      check()
    })
  }

  // What cli-progress's terminal calls on a TTY (readline.cursorTo and friends write escapes themselves).
  cursorTo (x: number): boolean { return this.write(`\x1b[${x + 1}G`) }
  clearLine (): boolean { return this.write('\x1b[2K') }
  moveCursor (): boolean { return true }
}

const unit = suite('ByteProgress')

unit('lines mode: one line per interval at most, with bytes, share and rate; nothing after stop', () => {
  const out = new Captured(false)
  let t = 0
  const p = new ByteProgress({ mode: 'lines', label: 'register big', terminal: out, intervalMs: 5000, now: () => t })
  const MiB = 1024 * 1024
  for (let i = 0; i <= 100; i++) {
    t = i * 200 // 20 s in all, an update every 200 ms
    p.update(i * MiB, 100 * MiB)
  }
  const lines = out.text.trimEnd().split('\n')
  assert.equal(lines, [
    'register big: 25.0 MiB of 100.0 MiB (25%), 5.0 MiB/s',
    'register big: 50.0 MiB of 100.0 MiB (50%), 5.0 MiB/s',
    'register big: 75.0 MiB of 100.0 MiB (75%), 5.0 MiB/s',
    'register big: 100.0 MiB of 100.0 MiB (100%), 5.0 MiB/s'
  ])
  p.stop()
  t = 60_000
  p.update(200 * MiB, undefined)
  assert.is(out.text.trimEnd().split('\n').length, 4)
})

unit('lines mode without a known size says bytes and rate only; none mode writes nothing', () => {
  const out = new Captured(false)
  let t = 0
  const p = new ByteProgress({ mode: 'lines', label: 'register r', terminal: out, intervalMs: 1000, now: () => t })
  p.update(0, undefined)
  t = 2000
  p.update(4096, undefined)
  assert.is(out.text, 'register r: 4.0 KiB, 2.0 KiB/s\n')
  const quiet = new Captured(false)
  const none = new ByteProgress({ mode: 'none', label: 'x', terminal: quiet, now: () => t })
  none.update(1, 2)
  none.stop()
  assert.is(quiet.text, '')
})

unit.run()

const cli = dirSuite('register progress')

async function bigCar (dir: string): Promise<{ path: string, size: number }> {
  const blocks = Array.from({ length: 64 }, (_, i) => makeBlock('raw', patterned(128 * 1024, i + 1)))
  const bytes = encodeCar(blocks).bytes
  const path = join(dir, 'big.car')
  await writeFile(path, bytes)
  return { path, size: bytes.byteLength }
}

async function register (
  dir: string, path: string, tty: boolean, stderr = new Captured(tty), env: NodeJS.ProcessEnv = {}, extra: string[] = []
): Promise<{ code: number, stdout: string, stderr: string }> {
  const stdout = new Captured(tty)
  const io: CliIo = { stdout, stderr, exit: () => {}, env, cwd: dir, stop: new AbortController().signal, onExit: () => () => {} }
  const code = await runCli(['register', path, '--dir', join(dir, 'repo'), ...extra], io)
  return { code, stdout: stdout.text, stderr: stderr.text }
}

cli('on a terminal the bar is drawn with the bytes read and cleared at the end; the result line follows on stdout', async (ctx) => {
  const { path, size } = await bigCar(ctx.dir)
  const r = await register(ctx.dir, path, true)
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /^registered big \(available, 64 blocks, 8\.0 MiB\)\n$/)
  assert.ok(size > 8 * 1024 * 1024)
  assert.match(r.stderr, /register big \[[█░]+\] \d+% \| [\d.]+ [KM]iB of 8\.0 MiB \| /)
  assert.ok(r.stderr.includes('\x1b[?25l'), 'the cursor is hidden while the bar is drawn')
})

cli('elsewhere no bar: plain lines only, and none for a read shorter than the interval', async (ctx) => {
  const { path } = await bigCar(ctx.dir)
  const r = await register(ctx.dir, path, false)
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /^registered big \(available, 64 blocks, 8\.0 MiB\)\n$/)
  assert.not.ok(r.stderr.includes('\x1b') || /\[[█░]/.test(r.stderr), r.stderr)
  // Lines come at most every 5 s: a local 8 MiB read is over long before the first.
  for (const line of r.stderr.split('\n').filter((l) => l !== '')) assert.match(line, /^register big: [\d.]+ [KM]iB of 8\.0 MiB \(\d+%\), /)
})

cli.run()

const served = dirSuite('register progress through a running serve')

/**
 * An origin that sends the first half of `body` at once and the rest only on `release()`: the
 * server's register is held half way, for as long as the test needs to see its progress.
 */
async function heldOrigin (body: Uint8Array): Promise<TestServer & { release: () => void }> {
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  const half = Math.floor(body.byteLength / 2)
  const srv = await serve((req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': body.byteLength })
    if (req.method === 'HEAD') { res.end(); return }
    res.write(body.subarray(0, half))
    void released.then(() => { res.end(body.subarray(half)) })
  })
  return { ...srv, release }
}

/** Progress through a server, bar or lines: held half way until a share strictly between 0 and 100% is printed. */
async function registerThroughServe (dir: string, tty: boolean, progress: RegExp): Promise<void> {
  const { path } = await bigCar(dir)
  const origin = await heldOrigin(await readFile(path))
  const { serve: server } = await startServe(join(dir, 'repo'))
  try {
    const stderr = new Captured(tty)
    // Copied (no Range offered anyway): the server indexes the download as it arrives.
    const run = register(dir, origin.url.replace('sample-v1.car', 'big.car'), tty, stderr, cliEnv(), ['--copy', 'always'])
    const seen = await stderr.waitFor(progress, (m) => Number(m[1]) > 0 && Number(m[1]) < 100)
    origin.release()
    const r = await run
    assert.is(r.code, 0, r.stderr)
    assert.match(r.stdout, /^registered big \(available, 64 blocks, 8\.0 MiB\)\n$/)
    assert.match(seen[0], / of 8\.0 MiB/)
  } finally {
    origin.release()
    await server.stop()
    await origin.close()
  }
}

served('on a terminal: the bar shows the bytes the server has read of a remote CAR, part way', async ({ dir }) => {
  await registerThroughServe(dir, true, /register big \[[█░]+\] (\d+)% \| [\d.]+ [KM]iB of 8\.0 MiB \| /)
})

served('elsewhere: a plain line part way (the first comes after the 5 s interval)', async ({ dir }) => {
  await registerThroughServe(dir, false, /^register big: [\d.]+ [KM]iB of 8\.0 MiB \((\d+)%\), [\d.]+ [KM]?i?B\/s$/m)
})

served.run()
