// GET /events read with fetch and a streaming body reader: an EventSource cannot send the
// Authorization header, and the token must not go in a URL.
import { authHeaders, checked } from './api.js'

/** Calls onEvent(name, data) per event until the stream ends (resolves) or fails (throws). */
export async function readEvents (signal, onOpen, onEvent) {
  const res = await checked(await fetch('/events', {
    headers: { accept: 'text/event-stream', ...authHeaders() },
    cache: 'no-store',
    signal
  }))
  onOpen()
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += value.replaceAll('\r\n', '\n')
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event = parseEvent(block)
      if (event !== undefined) onEvent(event.name, event.data)
    }
  }
}

/** One event block; undefined for comments (the server's heartbeats) and events without data. */
function parseEvent (block) {
  let name = 'message'
  const data = []
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') name = value
    else if (field === 'data') data.push(value)
  }
  if (data.length === 0) return undefined
  return { name, data: JSON.parse(data.join('\n')) }
}
