// The examples in examples/ run as a user would run them: compiled against the package's own
// entry (`import … from 'dagstore'`, resolved through package.json "exports") by `npm run build`,
// each in its own process. Each must exit 0, say what it did, and leave its temp files behind
// it: TMPDIR points at a fresh folder that must be empty again afterwards.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { access, readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { carBlocks, tempDir } from './helpers/fixtures.js'
import { at } from './helpers/assert.js'

const root = fileURLToPath(new URL('../../', import.meta.url))

async function runExample (name: string): Promise<{ code: number | null, out: string, leftovers: string[] }> {
  const script = fileURLToPath(new URL(`../examples/${name}.js`, import.meta.url))
  await access(script).catch(() => { throw new Error(`${script} is missing: \`npm run build\` compiles the examples`) })
  const tmp = await tempDir('dagstore-example-tmp-')
  try {
    const child = spawn(process.execPath, [script], {
      cwd: root,
      env: { ...process.env, TMPDIR: tmp.dir },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
      child.on('close', (c) => { clearTimeout(timer); resolve(c) })
    })
    return { code, out, leftovers: await readdir(tmp.dir) }
  } finally {
    await tmp.cleanup()
  }
}

function hex16 (bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 16)).toString('hex')
}

const test = suite('examples')

test('register-acquire: registers the sample CAR, lists its blocks and reads the first one', async () => {
  const blocks = await carBlocks('sample-v1.car')
  const first = at(blocks, 0)
  const { code, out, leftovers } = await runExample('register-acquire')
  assert.is(code, 0, out)
  assert.match(out, 'as "example": available')
  assert.match(out, `${blocks.length} blocks; the first is ${first.cid.toString()}`)
  assert.match(out, `read ${first.bytes.length} bytes, starting ${hex16(first.bytes)}`)
  assert.match(out, 'shards holding it: example\n')
  assert.match(out, 'after release: available, refs 0')
  assert.equal(leftovers, [])
})

test('custom-mount: a user-written Mount is indexed, persisted by URL and read back after a restart', async () => {
  const { code, out, leftovers } = await runExample('custom-mount')
  assert.is(code, 0, out)
  assert.match(out, /registered mem:greetings: 3 blocks, copied to a \d+-byte transient/)
  for (const text of ['hello', 'from', 'a custom mount']) {
    assert.match(out, new RegExp(`bafkrei[a-z2-7]+: "${text}" \\(hash verified\\)`))
  }
  assert.equal(leftovers, [])
})

test('embed-server: startServer on 127.0.0.1 serves a block over HTTP, then closes', async () => {
  const first = at(await carBlocks('sample-v1.car'), 0)
  const { code, out, leftovers } = await runExample('embed-server')
  assert.is(code, 0, out)
  assert.match(out, /serving at http:\/\/127\.0\.0\.1:\d+\n/)
  assert.match(out, `GET /ipfs/${first.cid.toString()} → 200 application/vnd.ipld.raw, ${first.bytes.length} bytes, same as the shard's`)
  assert.match(out, 'GET /shards → 200: sample (')
  assert.equal(leftovers, [])
})

test.run()
