/** Percentile of a list of numbers (nearest rank). */
export function percentile (values, p) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

/** Milliseconds since `start` (a process.hrtime.bigint()). */
export function msSince (start) {
  return Number(process.hrtime.bigint() - start) / 1e6
}

/** Prints `rows` ({ measure, value, baseline, unit, goal }) as a Markdown table, the two value columns named `valueName` and `baselineName`. */
export function printTable (rows, valueName = 'hsmlab', baselineName = 'baseline') {
  const fmt = v => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(2)) : 'n/a')
  const lines = [['measure', valueName, baselineName, 'ratio', 'unit', 'goal']]
  for (const r of rows) lines.push([r.measure, fmt(r.value), fmt(r.baseline), (r.value / r.baseline).toFixed(2) + 'x', r.unit, r.goal])
  const widths = lines[0].map((_, i) => Math.max(...lines.map(l => l[i].length)))
  const render = l => '| ' + l.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |'
  console.log(render(lines[0]))
  console.log('| ' + widths.map(w => '-'.repeat(w)).join(' | ') + ' |')
  for (const l of lines.slice(1)) console.log(render(l))
}
