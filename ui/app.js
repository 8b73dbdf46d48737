// The status page: counts, transients, rates, failures, shards and live traces, all read from
// the token-guarded admin API (GET /status, GET /shards, POST /shards/{key}/recover, GET /events).
import { api, ApiError, forgetToken, shardPath, storedToken, storeToken, Unauthorized } from './api.js'
import { readEvents } from './events.js'
import { drawPlot } from './plot.js'
import { bytes, clock, count, duration, rate } from './format.js'

const PAGE_SIZE = 50
const MAX_FAILURES = 100
// A failures listing follows the cursor this many pages at most (a page examines a bounded
// number of keys, so sparse failures among many shards can take several).
const MAX_FAILURE_PAGES = 20
const MAX_TRACES = 200
const RECONNECT_MS = 2000
// A busy store publishes traces by the thousand per second: they are drawn in batches, and the
// tables they change are reloaded at most this often.
const TRACE_FLUSH_MS = 200
const TRACE_REFRESH_MS = 500
// The length of the server's rate series (RATE_POINTS in src/app/server/status.ts).
const RATE_POINTS = 150

const $ = (id) => document.getElementById(id)

/** A DOM element with text content (never markup: keys and messages are untrusted). */
function el (tag, text, className) {
  const e = document.createElement(tag)
  if (text !== undefined) e.textContent = String(text)
  if (className !== undefined) e.className = className
  return e
}

const view = {
  /** Cursors of the pages seen so far: cursors[i] opens page i (undefined: the first). */
  cursors: [undefined],
  page: 0,
  next: undefined,
  state: '',
  prefix: '',
  status: undefined
}

/** Everything that runs while the dashboard shows; aborted on sign-out or a refused token. */
let session

function notice (text) {
  const n = $('notice')
  n.textContent = text ?? ''
  n.hidden = text === undefined
}

function showLogin (message) {
  session?.abort()
  session = undefined
  $('dashboard').hidden = true
  $('sign-out').hidden = true
  $('login').hidden = false
  $('login-error').textContent = message ?? ''
  $('token').focus()
}

/** Failures of background refreshes: a refused token ends the session, anything else is shown. */
function failed (err) {
  if (err instanceof Unauthorized) {
    forgetToken()
    showLogin(err.message)
  } else if (err.name !== 'AbortError') {
    notice(`${err instanceof ApiError && err.code !== undefined ? err.code + ': ' : ''}${err.message}`)
  }
}

async function open () {
  let status
  try {
    status = await api('GET', '/status')
  } catch (err) {
    if (err instanceof Unauthorized) {
      showLogin(storedToken() === null ? '' : err.message)
      if (storedToken() !== null) forgetToken()
      return
    }
    throw err
  }
  const ac = new AbortController()
  session = ac
  $('login').hidden = true
  $('dashboard').hidden = false
  $('sign-out').hidden = storedToken() === null
  renderStatus(status)
  buildStateFilter(Object.keys(status.counts))
  await Promise.all([loadShards(), refreshFailures()]).catch(failed)
  void followEvents(ac.signal)
  pollStatus(ac.signal, status.rates.intervalMs)
}

function pollStatus (signal, intervalMs) {
  const timer = setInterval(() => { refreshStatus().then(refreshFailures).catch(failed) }, Math.max(1000, intervalMs))
  signal.addEventListener('abort', () => { clearInterval(timer) })
}

async function refreshStatus () {
  renderStatus(await api('GET', '/status', { signal: session?.signal }))
}

function renderStatus (status) {
  view.status = status
  $('summary').textContent = `${count(status.shards)} shards · ${count(status.totals.requests)} requests · ${bytes(status.totals.bytesSent)} sent`
  const cards = $('counts')
  cards.replaceChildren(...Object.entries(status.counts).map(([state, n]) => {
    const card = el('button', undefined, `card ${state}`)
    card.type = 'button'
    card.id = `count-${state}`
    card.dataset.state = state
    card.setAttribute('aria-pressed', String(view.state === state))
    card.append(el('span', count(n), 'n'), el('span', state, 'label'))
    return card
  }))
  renderTransients(status.transients)
  renderRates(status)
}

function renderTransients (t) {
  const box = $('transients')
  if (t === null) {
    box.replaceChildren(el('span', 'No budget (gc.maxTransientsBytes is not set): transients are not counted.', 'muted'))
    return
  }
  const used = t.bytes + t.reservedBytes
  const meter = document.createElement('meter')
  meter.id = 'transients-meter'
  meter.min = 0
  meter.max = t.limitBytes
  meter.value = Math.min(used, t.limitBytes)
  meter.high = t.limitBytes * 0.9
  meter.optimum = 0
  const text = el('span', ` ${bytes(t.bytes)} of ${bytes(t.limitBytes)} (${Math.round((100 * used) / t.limitBytes)} %` +
    `${t.reservedBytes > 0 ? `, ${bytes(t.reservedBytes)} reserved by downloads` : ''})`)
  text.id = 'transients-text'
  box.replaceChildren(meter, text)
}

const PLOTS = [
  { id: 'ops', label: rate },
  { id: 'requests', label: rate },
  { id: 'bytes', label: (v) => `${bytes(Math.round(v))}/s` }
]

function renderRates (status) {
  const { intervalMs, points } = status.rates
  // The server keeps RATE_POINTS samples; a server started a moment ago has fewer, and its
  // plots span what it has (at least ten samples' worth) rather than a mostly empty window.
  const fullMs = intervalMs * RATE_POINTS
  const windowMs = points.length === 0 ? fullMs : Math.min(fullMs, Math.max(10 * intervalMs, status.time - points[0].t))
  $('rates-window').textContent = `last ${duration(windowMs)}, a sample every ${intervalMs / 1000} s`
  for (const { id, label } of PLOTS) {
    const series = points.map((p) => ({ t: p.t, v: p[id] }))
    drawPlot($(`plot-${id}`), series, windowMs, status.time, label)
    $(`now-${id}`).textContent = series.length === 0 ? '' : label(series.at(-1).v)
  }
}

function buildStateFilter (states) {
  const select = $('state-filter')
  if (select.options.length > 1) return
  for (const s of states) {
    const option = el('option', s)
    option.value = s
    select.append(option)
  }
}

function stateBadge (state) {
  return el('span', state, `state ${state}`)
}

function recoverButton (key) {
  const b = el('button', 'Recover', 'recover')
  b.type = 'button'
  b.dataset.recover = key
  return b
}

function errorCell (error) {
  const td = el('td', undefined, 'code')
  if (error !== undefined) {
    td.textContent = error.cause?.code !== undefined && error.cause.code !== error.code ? `${error.code} (${error.cause.code})` : error.code
    td.title = error.message
  }
  return td
}

function shardRow (s) {
  const tr = document.createElement('tr')
  tr.dataset.key = s.key
  const state = el('td')
  state.append(stateBadge(s.state))
  const action = el('td')
  if (s.state === 'errored') action.append(recoverButton(s.key))
  tr.append(el('td', s.key, 'key'), state, el('td', s.refs, 'num'), el('td', bytes(s.size), 'num'), el('td', count(s.blocks), 'num'),
    el('td', s.placement ?? ''), errorCell(s.error), action)
  return tr
}

function listPath (options) {
  const q = new URLSearchParams()
  q.set('limit', String(options.limit))
  if (options.cursor !== undefined) q.set('cursor', options.cursor)
  if (options.state !== '') q.set('state', options.state)
  if (options.prefix !== '') q.set('prefix', options.prefix)
  // A node of a cluster lists every node's shards; the page is about this node's (its counts, its recover).
  if (view.status?.node !== undefined) q.set('node', view.status.node)
  return `/shards?${q}`
}

async function loadShards () {
  const page = await api('GET', listPath({ limit: PAGE_SIZE, cursor: view.cursors[view.page], state: view.state, prefix: view.prefix }),
    { signal: session?.signal })
  view.next = page.next
  $('shards').tBodies[0].replaceChildren(...page.shards.map(shardRow))
  $('prev').disabled = view.page === 0
  $('next').disabled = page.next === undefined
  const filtered = view.state !== '' || view.prefix !== ''
  $('page-info').textContent = page.shards.length === 0 && page.next !== undefined
    ? `page ${view.page + 1}: no match in this stretch of keys, Next goes on`
    : `page ${view.page + 1}${filtered ? ' (filtered)' : ''}`
}

/** The failures listing is reloaded only when it may have changed: the errored count moved, or a trace touched a failure. */
const failures = { dirty: true, erroredCount: undefined, keys: new Set() }

async function refreshFailures () {
  const errored = view.status?.counts.errored
  if (!failures.dirty && errored === failures.erroredCount) return
  failures.dirty = false
  failures.erroredCount = errored
  await loadFailures(errored === 0 ? 0 : MAX_FAILURE_PAGES)
}

/** Follows the errored listing for at most `maxPages` pages (none when nothing is errored). */
async function loadFailures (maxPages) {
  const found = []
  let cursor
  for (let pages = 0; pages < maxPages && found.length < MAX_FAILURES; pages++) {
    const page = await api('GET', listPath({ limit: MAX_FAILURES, cursor, state: 'errored', prefix: '' }), { signal: session?.signal })
    found.push(...page.shards)
    cursor = page.next
    if (cursor === undefined) break
  }
  const shown = found.slice(0, MAX_FAILURES)
  failures.keys = new Set(shown.map((s) => s.key))
  $('failures').tBodies[0].replaceChildren(...shown.map((s) => {
    const tr = document.createElement('tr')
    tr.dataset.key = s.key
    const action = el('td')
    action.append(recoverButton(s.key))
    tr.append(el('td', s.key, 'key'), errorCell(s.error), el('td', s.error?.cause?.message ?? s.error?.message ?? ''), action)
    return tr
  }))
  const total = view.status?.counts.errored
  $('failures-note').textContent = total !== undefined && total > shown.length ? `${shown.length} of ${count(total)} shown` : ''
}

async function recover (button) {
  const key = button.dataset.recover
  button.disabled = true
  button.textContent = 'Recovering…'
  try {
    await api('POST', shardPath(key, '/recover'))
    notice(undefined)
  } catch (err) {
    if (err instanceof ApiError) notice(`Recover ${key}: ${err.code ?? err.status} — ${err.message}`)
    else failed(err)
  }
  failures.dirty = true
  await refreshAll()
}

/** After a change (a trace, a recovery), at most one refresh at a time and one queued. */
let refreshing
let refreshQueued = false

async function refreshAll () {
  if (refreshing !== undefined) {
    refreshQueued = true
    return await refreshing
  }
  refreshing = (async () => {
    // The status first: the failures listing depends on its errored count.
    await refreshStatus()
    await Promise.all([loadShards(), refreshFailures()])
  })().catch(failed)
  await refreshing
  refreshing = undefined
  if (refreshQueued) {
    refreshQueued = false
    await refreshAll()
  }
}

let refreshTimer

function refreshSoon () {
  if (refreshTimer !== undefined) return
  refreshTimer = setTimeout(() => {
    refreshTimer = undefined
    void refreshAll()
  }, TRACE_REFRESH_MS)
}

/** Traces not drawn yet, oldest first (at most MAX_TRACES: older ones would be trimmed anyway). */
let pendingTraces = []
let flushTimer

function addTrace (trace) {
  pendingTraces.push({ trace, at: Date.now() })
  if (pendingTraces.length > MAX_TRACES) pendingTraces.shift()
  if (trace.after.state === 'errored' || failures.keys.has(trace.key)) failures.dirty = true
  flushTimer ??= setTimeout(flushTraces, TRACE_FLUSH_MS)
  refreshSoon()
}

function flushTraces () {
  flushTimer = undefined
  const items = pendingTraces.reverse().map(({ trace, at }) => {
    const li = el('li')
    li.dataset.key = trace.key
    li.dataset.op = trace.op
    li.append(el('span', clock(at), 't'), el('span', trace.op, 'op'), el('span', `${trace.key} → `, 'key'), stateBadge(trace.after.state))
    if (trace.after.error !== undefined) li.append(el('span', ` ${trace.after.error.code}`, 'code error'))
    return li
  })
  pendingTraces = []
  const list = $('traces')
  list.prepend(...items)
  while (list.children.length > MAX_TRACES) list.lastElementChild.remove()
}

async function followEvents (signal) {
  const status = $('trace-status')
  while (!signal.aborted) {
    try {
      await readEvents(signal, () => { status.textContent = 'connected' }, (name, data) => {
        if (name === 'trace') {
          addTrace(data)
        } else if (name === 'lagged') {
          status.textContent = 'fell behind; reconnecting'
        }
      })
    } catch (err) {
      if (err instanceof Unauthorized) return failed(err)
      if (err.name === 'AbortError') return
    }
    if (signal.aborted) return
    status.textContent = 'disconnected; reconnecting'
    await new Promise((resolve) => { setTimeout(resolve, RECONNECT_MS) })
  }
}

function resetPaging () {
  view.cursors = [undefined]
  view.page = 0
}

function wire () {
  $('login').addEventListener('submit', (event) => {
    event.preventDefault()
    storeToken($('token').value.trim())
    $('token').value = ''
    open().catch(failed)
  })
  $('sign-out').addEventListener('click', () => {
    forgetToken()
    showLogin('')
  })
  $('counts').addEventListener('click', (event) => {
    const card = event.target.closest('[data-state]')
    if (card === null) return
    const state = view.state === card.dataset.state ? '' : card.dataset.state
    $('state-filter').value = state
    $('state-filter').dispatchEvent(new Event('change'))
  })
  $('state-filter').addEventListener('change', () => {
    view.state = $('state-filter').value
    resetPaging()
    for (const card of $('counts').children) card.setAttribute('aria-pressed', String(card.dataset.state === view.state))
    loadShards().catch(failed)
  })
  let typing
  $('prefix').addEventListener('input', () => {
    clearTimeout(typing)
    typing = setTimeout(() => {
      view.prefix = $('prefix').value
      resetPaging()
      loadShards().catch(failed)
    }, 250)
  })
  $('prev').addEventListener('click', () => {
    if (view.page === 0) return
    view.page--
    loadShards().catch(failed)
  })
  $('next').addEventListener('click', () => {
    if (view.next === undefined) return
    view.cursors[view.page + 1] = view.next
    view.page++
    loadShards().catch(failed)
  })
  for (const table of [$('shards'), $('failures')]) {
    table.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-recover]')
      if (button !== null) recover(button).catch(failed)
    })
  }
}

wire()
open().catch(failed)
