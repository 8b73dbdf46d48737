// The status page end to end in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core): a real store with shards from the fixtures, a real server on 127.0.0.1.
// The page asks for the token, shows the counts, transients, rates, failures and shards,
// filters and searches, recovers an errored shard, shows live traces; a screenshot is written
// for the docs (into DAGSTORE_SCREENSHOT_DIR when set, e.g. `docs`, else a temp folder).
//
// Without /usr/bin/chromium the test is skipped and says so; under CI (CI set) that is a failure.
import * as assert from 'uvu/assert'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startServer, type DagstoreServer } from '../src/app/server/index.js'
import { FileMount } from '../src/storage/mount/file.js'
import { StreamMount } from './helpers/stream-mount.js'
import { carBlocks, fixture } from './helpers/fixtures.js'
import { dirSuite, openStore, until } from './helpers/store.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const TOKEN = 'page-token_0123456789'
const SAMPLE = fixture('sample-v1.car')
const sampleBytes = await readFile(SAMPLE)
const blocks = await carBlocks('sample-v1.car')

const test = dirSuite('status page')
const ci = (process.env.CI ?? '') !== ''
const present = existsSync(CHROMIUM)
if (!present) {
  console.log(ci
    ? `\n  status-page: ${CHROMIUM} is missing and CI is set: the browser test FAILS (.ci/run installs Debian's chromium)\n`
    : `\n  status-page: SKIPPING the browser test: no ${CHROMIUM} (apt-get install chromium)\n`)
}
const run = present || ci ? test : test.skip

// The page's globals, as much as the functions below use them in the page: the project compiles
// without the DOM's types. (Page code goes as functions: the page's CSP refuses string eval.)
interface PageElement { textContent: string | null, dataset: Record<string, string | undefined> }
declare const document: {
  querySelector: (selector: string) => PageElement | null
  querySelectorAll: (selector: string) => Iterable<PageElement>
}
declare const sessionStorage: { getItem: (key: string) => string | null }

/** Waits until the table shows exactly `keys` (space-separated), in that order. */
async function showsRows (page: Page, table: string, keys: string): Promise<void> {
  await page.waitForFunction(([t, k]) => [...document.querySelectorAll(`#${t} tbody tr`)].map((r) => r.dataset.key).join(' ') === k, [table, keys])
}

async function countOf (page: Page, state: string): Promise<string> {
  return (await page.textContent(`#count-${state} .n`)) ?? ''
}

async function showsCount (page: Page, state: string, n: number): Promise<void> {
  await page.waitForFunction(([s, v]) => document.querySelector(`#count-${s} .n`)?.textContent === v, [state, String(n)])
}

async function storedToken (page: Page): Promise<unknown> {
  return await page.evaluate(() => sessionStorage.getItem('dagstore.token'))
}

run('the page in Chromium: token, counts, shards, filter and search, Recover, live traces, rates; a screenshot', async (ctx) => {
  assert.ok(present, `${CHROMIUM} is missing (CI): install Debian's chromium`)
  const cars = join(ctx.dir, 'cars')
  await mkdir(cars)
  await copyFile(SAMPLE, join(cars, 'good.car'))
  await copyFile(fixture('junk.dat'), join(cars, 'broken.car'))
  const { store } = await openStore(join(ctx.dir, 'store'), { gc: { maxTransientsBytes: 64 * sampleBytes.byteLength } })
  let server: DagstoreServer | undefined
  let browser: Browser | undefined
  const errors: unknown[] = []
  try {
    await store.register('archive/2024/good', new FileMount(join(cars, 'good.car')))
    await store.register('archive/2025/remote', new StreamMount(SAMPLE))
    await store.register('incoming/broken', new FileMount(join(cars, 'broken.car'))).catch(() => {})
    await store.register('incoming/lazy', new FileMount(join(cars, 'good.car')), { lazy: true })
    // A second failure, left alone: the page keeps showing it.
    await store.register('incoming/missing', new FileMount(join(cars, 'missing.car'))).catch(() => {})
    assert.equal([store.getShardInfo('incoming/broken').state, store.getShardInfo('incoming/missing').state], ['errored', 'errored'])
    server = await startServer(store, { port: 0, token: TOKEN, rateSampleMs: 250, onError: (err) => { errors.push(err) } })

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    // A bound that only fails a hung test.
    page.setDefaultTimeout(10_000)
    // Any console error (a CSP violation, a failed script, an uncaught exception) fails the test.
    const pageErrors: string[] = []
    page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('401')) pageErrors.push(m.text()) })
    page.on('pageerror', (err) => { pageErrors.push(err.message) })
    const urls: string[] = []
    page.on('request', (r) => { urls.push(r.url()) })

    await page.goto(server.url + '/')
    await page.waitForSelector('#login:not([hidden])')
    assert.ok(await page.isHidden('#dashboard'), 'no data before the token')

    // A wrong token: refused, asked again.
    await page.fill('#token', 'not-the-token')
    await page.click('#login button[type=submit]')
    await page.waitForFunction(() => (document.querySelector('#login-error')?.textContent ?? '') !== '')
    assert.match((await page.textContent('#login-error')) ?? '', /invalid bearer token/)
    assert.ok(await page.isHidden('#dashboard'))

    await page.fill('#token', TOKEN)
    await page.click('#login button[type=submit]')
    await page.waitForSelector('#dashboard:not([hidden])')
    assert.is(await storedToken(page), TOKEN)

    // Counts by state, as the store has them.
    const stats = store.stats()
    for (const state of ['available', 'errored', 'new'] as const) await showsCount(page, state, stats[state])
    assert.equal([await countOf(page, 'available'), await countOf(page, 'errored'), await countOf(page, 'new')], ['2', '2', '1'])
    // Transients against the budget: the remote shard's copy.
    await page.waitForSelector('#transients-meter')
    assert.is(await page.getAttribute('#transients-meter', 'value'), String(sampleBytes.byteLength))
    assert.match((await page.textContent('#transients-text')) ?? '', /468\.7 KiB of 29\.3 MiB \(2 %\)/)

    // The shards, in key order; the failure with its code and a Recover button.
    await showsRows(page, 'shards', 'archive/2024/good archive/2025/remote incoming/broken incoming/lazy incoming/missing')
    await showsRows(page, 'failures', 'incoming/broken incoming/missing')
    assert.match((await page.textContent('#failures tr[data-key="incoming/broken"]')) ?? '', /ERR_INVALID_CAR/)

    // Filter by state, search by key prefix, then both off again.
    await page.selectOption('#state-filter', 'errored')
    await showsRows(page, 'shards', 'incoming/broken incoming/missing')
    await page.selectOption('#state-filter', '')
    await page.fill('#prefix', 'archive/')
    await showsRows(page, 'shards', 'archive/2024/good archive/2025/remote')
    await page.click('#count-new')
    await showsRows(page, 'shards', '')
    await page.click('#count-new')
    await page.fill('#prefix', '')
    await showsRows(page, 'shards', 'archive/2024/good archive/2025/remote incoming/broken incoming/lazy incoming/missing')

    // Some gateway traffic for the rates.
    for (const b of blocks.slice(0, 40)) await (await fetch(`${server.url}/ipfs/${b.cid.toString()}?format=raw`)).arrayBuffer()

    // Recover: the data is good again; the button turns the shard available, in the store and on the page.
    await copyFile(SAMPLE, join(cars, 'broken.car'))
    await page.waitForSelector('#trace-status:text("connected")')
    await page.click('#failures button[data-recover="incoming/broken"]')
    await until(() => store.getShardInfo('incoming/broken').state === 'available', 'the store to recover the shard')
    await showsCount(page, 'errored', 1)
    // The gateway's cached accessors keep some shards serving: the page agrees with the store.
    const after = store.stats()
    assert.is(after.available + after.serving, 3)
    for (const state of ['available', 'serving'] as const) await showsCount(page, state, after[state])
    await showsRows(page, 'failures', 'incoming/missing')
    await page.waitForSelector('#shards tr[data-key="incoming/broken"] .state.available')
    assert.is(await page.$('#shards tr[data-key="incoming/broken"] button[data-recover]'), null)
    // The live traces: the recovery, as the store published it.
    await page.waitForSelector('#traces li[data-key="incoming/broken"][data-op="recover"]')

    // Rates: the plots have samples with the ops, requests and bytes above.
    await page.waitForFunction(() => ['ops', 'requests', 'bytes'].every((id) => Number(document.querySelector(`#plot-${id}`)?.dataset.peak) > 0))

    const dir = process.env.DAGSTORE_SCREENSHOT_DIR ?? ctx.dir
    const shot = resolve(dir, 'status-page.png')
    await page.screenshot({ path: shot, fullPage: true })
    assert.equal([...(await readFile(shot)).subarray(1, 4)], [...Buffer.from('PNG')])

    // The token went in headers only: no request URL carries it.
    assert.ok(urls.length > 0)
    for (const url of urls) assert.not.ok(url.includes(TOKEN), url)
    assert.equal(pageErrors, [], 'no console errors (CSP violations included)')

    // Forgetting the token hides the data again.
    await page.click('#sign-out')
    await page.waitForSelector('#login:not([hidden])')
    assert.is(await storedToken(page), null)
    assert.equal(errors, [], 'the server reported no errors')
  } finally {
    await browser?.close()
    await server?.close()
    await store.close()
  }
})

test.run()
