// How figures read on the page.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

export function bytes (n) {
  if (n === undefined || n === null) return ''
  let i = 0
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${UNITS[i]}`
}

export function count (n) {
  if (n === undefined || n === null) return ''
  return n.toLocaleString('en')
}

/** A rate: whole numbers when large, two significant decimals when small. */
export function rate (n) {
  if (n >= 100) return Math.round(n).toLocaleString('en')
  if (n >= 1) return n.toFixed(1)
  return n === 0 ? '0' : n.toFixed(2)
}

export function clock (ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false })
}

/** A span of time, to the second under a minute and a half, else to the minute. */
export function duration (ms) {
  const s = Math.round(ms / 1000)
  return s < 90 ? `${s} s` : `${Math.round(s / 60)} min`
}
