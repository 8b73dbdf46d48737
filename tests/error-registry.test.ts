// The error-code registry (src/base/errors/codes.ts) against what uses and documents it: no
// duplicate codes, every code of src/ registered, README's error table in step with it, and
// the helpers every module reads thrown values with.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CODE, ERROR_CODES, HTTP_STATUS_CODES, errorCodeInfo, httpStatusOf } from '../src/base/errors/codes.js'
import { codeOf, isMissing, toError } from '../src/base/errors/inspect.js'
import * as root from '../src/index.js'
import { at } from './helpers/assert.js'

const test = suite('error registry')
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const REGISTRY = join('src', 'base', 'errors', 'codes.ts')
const FAMILY_ROW = `${HTTP_STATUS_CODES.prefix}<status>`

async function sources (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name)
    if (e.isDirectory()) out.push(...await sources(path))
    else if (e.name.endsWith('.ts')) out.push(path)
  }
  return out
}

/** README's error table: code → the status and meaning columns. */
async function readmeTable (): Promise<Map<string, { status: string, meaning: string }>> {
  const text = await readFile(join(ROOT, 'README.md'), 'utf8')
  const start = text.indexOf('\n### Errors\n')
  assert.ok(start >= 0, 'README has a ### Errors section')
  const section = text.slice(start + 1, text.indexOf('\n#', start + 1))
  const rows = new Map<string, { status: string, meaning: string }>()
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)` \| ([^|]+) \| [^|]+ \| (.+) \|$/.exec(line)
    if (m === null) continue
    const [code, status, meaning] = [at(m, 1), at(m, 2), at(m, 3)]
    assert.not.ok(rows.has(code), `README lists ${code} twice`)
    rows.set(code, { status: status.trim(), meaning: meaning.trim() })
  }
  return rows
}

test('no two entries share a code, and every status is an HTTP error status or none', () => {
  const counts = new Map<string, number>()
  for (const e of ERROR_CODES) counts.set(e.code, (counts.get(e.code) ?? 0) + 1)
  assert.equal([...counts].filter(([, n]) => n > 1).map(([code]) => code), [], 'codes registered twice')
  for (const e of ERROR_CODES) {
    assert.ok(e.status === null || (Number.isInteger(e.status) && e.status >= 400 && e.status <= 599), `${e.code}: status ${String(e.status)}`)
    assert.ok(e.meaning.length > 0, `${e.code} has a meaning`)
    assert.is(CODE[e.code], e.code)
  }
})

test('every ERR_ code in src/ is registered', async () => {
  const unknown: string[] = []
  let scanned = 0
  for (const path of await sources(join(ROOT, 'src'))) {
    const file = relative(ROOT, path)
    if (file === REGISTRY) continue
    const text = await readFile(path, 'utf8')
    // Comments count too: a code a comment promises must exist.
    for (const m of text.matchAll(/\bERR_[A-Z0-9_]*(\$\{)?/g)) {
      scanned++
      const made = m[1] !== undefined
      const code = made ? m[0].slice(0, -2) : m[0]
      const known = made ? code === HTTP_STATUS_CODES.prefix : errorCodeInfo(code) !== undefined
      if (!known) unknown.push(`${file}: ${m[0]}`)
    }
  }
  assert.ok(scanned > 0, 'the scan found the codes src/ uses')
  assert.equal(unknown, [], 'codes used in src/ but missing from the registry')
})

test("README's error table lists every registered code with its status and meaning, and nothing else", async () => {
  const rows = await readmeTable()
  for (const e of ERROR_CODES) {
    const row = rows.get(e.code)
    const expected = `| \`${e.code}\` | ${e.status ?? '—'} | … | ${e.meaning} |`
    assert.ok(row !== undefined, `README's error table lacks ${e.code}: ${expected}`)
    assert.is(row.status, String(e.status ?? '—'), `${e.code}'s status in README`)
    assert.is(row.meaning, e.meaning, `${e.code}'s meaning in README`)
  }
  assert.is(rows.get(FAMILY_ROW)?.meaning, HTTP_STATUS_CODES.meaning, `README documents ${FAMILY_ROW}`)
  const extra = [...rows.keys()].filter((code) => code !== FAMILY_ROW && errorCodeInfo(code) === undefined)
  assert.equal(extra, [], 'README rows that are no registered code')
})

test('every error class the package exports carries a registered code', () => {
  const classes = Object.entries(root).filter(([, v]) => typeof v === 'function' && v.prototype instanceof Error)
  assert.ok(classes.length >= 25, `found ${classes.length} error classes`)
  for (const [name, cls] of classes) {
    if (name === 'DAGStoreError' || name === 'RestoredShardError') continue
    const code = (cls as { code?: unknown }).code
    assert.type(code, 'string', `${name}.code`)
    assert.ok(errorCodeInfo(code as string) !== undefined, `${name}: ${String(code)} is registered`)
  }
  assert.is(new root.AbortError().code, 'ABORT_ERR')
  assert.is(new root.ShardUnknownError().code, 'ERR_SHARD_UNKNOWN')
  assert.is(new root.HttpStatusError('http://127.0.0.1/', 404).code, 'ERR_HTTP_STATUS')
})

test('httpStatusOf: the registry status of the code, 500 for none or no code', () => {
  assert.is(httpStatusOf(new root.ShardUnknownError()), 404)
  assert.is(httpStatusOf(new root.ShardInitializationFailedError()), 422)
  assert.is(httpStatusOf(new root.StoreClosedError()), 503)
  assert.is(httpStatusOf(new root.BlockstoreClosedError()), 503)
  assert.is(httpStatusOf({ code: 'ERR_UNAUTHORIZED' }), 401)
  assert.is(httpStatusOf({ code: 'ERR_HTTP_502' }), 502)
  assert.is(httpStatusOf(new root.SubscriptionLaggedError()), 500)
  assert.is(httpStatusOf(new root.AbortError()), 500)
  assert.is(httpStatusOf(Object.assign(new Error('x'), { code: 'ENOENT' })), 500)
  assert.is(httpStatusOf(new Error('no code')), 500)
  assert.is(httpStatusOf('a string'), 500)
  assert.is(httpStatusOf(null), 500)
  assert.is(errorCodeInfo('ERR_HTTP_404')?.status, 404)
  assert.is(errorCodeInfo('ERR_HTTP_4040'), undefined)
  assert.is(errorCodeInfo('ERR_NO_SUCH_CODE'), undefined)
})

test('codeOf and toError take anything that can be thrown', () => {
  assert.is(codeOf(new root.ShardExistsError()), 'ERR_SHARD_EXISTS')
  assert.is(codeOf({ code: 'EPIPE' }), 'EPIPE')
  assert.is(codeOf({ code: 42 }), undefined)
  assert.is(codeOf(new Error('plain')), undefined)
  for (const v of [undefined, null, 'text', 7]) assert.is(codeOf(v), undefined, String(v))
  const err = new TypeError('kept')
  assert.is(toError(err), err)
  const wrapped = toError('thrown string')
  assert.instance(wrapped, Error)
  assert.is(wrapped.message, 'thrown string')
  assert.is(toError(undefined).message, 'undefined')
})

test('isMissing: ENOENT and ENOTDIR from the file system, not other failures', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dagstore-errors-'))
  try {
    const file = join(dir, 'file')
    await writeFile(file, 'x')
    const failure = async (p: Promise<unknown>): Promise<unknown> => await p.then(() => assert.unreachable('should fail'), (e: unknown) => e)
    const noEntry = await failure(stat(join(dir, 'absent')))
    const notDir = await failure(stat(join(file, 'below')))
    const isDir = await failure(readFile(dir))
    assert.is(codeOf(noEntry), 'ENOENT')
    assert.is(codeOf(notDir), 'ENOTDIR')
    assert.ok(isMissing(noEntry))
    assert.ok(isMissing(notDir))
    assert.is(codeOf(isDir), 'EISDIR')
    assert.not.ok(isMissing(isDir))
    assert.not.ok(isMissing(new root.IndexNotFoundError()))
    assert.not.ok(isMissing(undefined))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
