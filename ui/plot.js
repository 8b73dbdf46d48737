// One rate over time on a canvas: a filled line, its peak labelled. Redrawn whole on every
// update (a few hundred points at most).

const LINE = '#2b6cb0'
const FILL = 'rgba(43, 108, 176, 0.15)'
const GRID = '#e2e8f0'
const TEXT = '#718096'

/**
 * points: [{ t, v }] oldest first; windowMs: the time span the x axis shows, ending now;
 * label: how a value reads (the peak's label).
 */
export function drawPlot (canvas, points, windowMs, now, label) {
  const ratio = window.devicePixelRatio || 1
  const width = canvas.clientWidth
  const height = canvas.clientHeight
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio)
    canvas.height = Math.round(height * ratio)
  }
  const ctx = canvas.getContext('2d')
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0)
  ctx.clearRect(0, 0, width, height)

  const top = 16
  const bottom = height - 4
  const peak = Math.max(0, ...points.map((p) => p.v))
  // What the picture shows, for screen readers (and tests).
  canvas.dataset.peak = String(peak)
  canvas.setAttribute('aria-label', points.length === 0 ? 'no samples yet' : `now ${label(points.at(-1).v)}, peak ${label(peak)}`)
  const scale = peak > 0 ? peak * 1.1 : 1
  const x = (t) => width - ((now - t) / windowMs) * width
  const y = (v) => bottom - (v / scale) * (bottom - top)

  ctx.strokeStyle = GRID
  ctx.lineWidth = 1
  for (const f of [0.25, 0.5, 0.75]) {
    ctx.beginPath()
    ctx.moveTo(0, Math.round(top + (bottom - top) * f) + 0.5)
    ctx.lineTo(width, Math.round(top + (bottom - top) * f) + 0.5)
    ctx.stroke()
  }

  ctx.fillStyle = TEXT
  ctx.font = '11px system-ui, sans-serif'
  ctx.textBaseline = 'top'
  ctx.fillText(points.length === 0 ? 'waiting for the first samples…' : `peak ${label(peak)}`, 4, 2)
  if (points.length < 2) return

  ctx.beginPath()
  points.forEach((p, i) => { if (i === 0) ctx.moveTo(x(p.t), y(p.v)); else ctx.lineTo(x(p.t), y(p.v)) })
  ctx.strokeStyle = LINE
  ctx.lineWidth = 1.5
  ctx.stroke()
  ctx.lineTo(x(points.at(-1).t), bottom)
  ctx.lineTo(x(points[0].t), bottom)
  ctx.closePath()
  ctx.fillStyle = FILL
  ctx.fill()
}
