/**
 * A scenario run as the Scenario reports page draws it: its operations (one bar per operation,
 * a row per client, coloured by outcome), its faults as spans (from the notes the nemesis writes
 * into the history: `fault: …` opens one, `heal: …` closes it), its notes, and its report
 * (verdict, violations, timings). Read from `<lab dir>/scenario/` (`hsmlab scenario run --dir`
 * leaves a run there), or `<lab dir>/scenario/<run>/` for a run kept apart.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

interface Operation { id: number, client: string, op: string, cluster: string, invokedAtMs: number, completedAtMs?: number, outcome: string, cause?: string }
interface Span { label: string, fromMs: number, toMs?: number }

/** A run's timeline; `error` when it cannot be read. */
export interface RunTimeline {
  run: string
  operations: Operation[]
  notes: Array<{ atMs: number, what: string }>
  faults: Span[]
  endMs: number
  report?: unknown
  error?: string
}

/** Reads a run's history and report. `run` is `scenario` (the lab's) or the name of a run directory under it. */
export async function readRun (labDir: string, run: string): Promise<RunTimeline> {
  const empty: RunTimeline = { run, operations: [], notes: [], faults: [], endMs: 0 }
  if (!/^[A-Za-z0-9._-]+$/.test(run) || run.startsWith('.')) return { ...empty, error: `no run ${JSON.stringify(run)}` }
  const dir = run === 'scenario' ? join(labDir, 'scenario') : join(labDir, 'scenario', run)
  let text: string
  try {
    text = await readFile(join(dir, 'history.jsonl'), 'utf8')
  } catch (err) {
    return { ...empty, error: `no history in ${dir}: ${(err as Error).message}` }
  }
  const byId = new Map<number, Operation>()
  const timeline: RunTimeline = { ...empty }
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    let event: Record<string, unknown>
    try {
      event = JSON.parse(line) as Record<string, unknown>
    } catch {
      continue
    }
    if (event.event === 'invoke' || event.event === 'complete') {
      const op = event as unknown as Operation
      byId.set(op.id, { id: op.id, client: op.client, op: op.op, cluster: op.cluster, invokedAtMs: op.invokedAtMs, ...(op.completedAtMs === undefined ? {} : { completedAtMs: op.completedAtMs }), outcome: op.outcome, ...(op.cause === undefined ? {} : { cause: op.cause }) })
      timeline.endMs = Math.max(timeline.endMs, op.completedAtMs ?? op.invokedAtMs)
    } else if (event.event === 'note' && typeof event.atMs === 'number' && typeof event.what === 'string') {
      const note = { atMs: event.atMs, what: event.what }
      timeline.notes.push(note)
      timeline.endMs = Math.max(timeline.endMs, note.atMs)
      spanFrom(timeline.faults, note)
    }
  }
  timeline.operations = [...byId.values()].sort((a, b) => a.id - b.id)
  const report = await readFile(join(dir, 'report.json'), 'utf8').then(t => JSON.parse(t) as unknown).catch(() => undefined)
  if (report !== undefined) timeline.report = report
  return timeline
}

/** Opens or closes a fault span from one note of the nemesis. */
function spanFrom (spans: Span[], note: { atMs: number, what: string }): void {
  const open = spans.filter(s => s.toMs === undefined)
  if (note.what.startsWith('fault: ')) {
    const label = note.what.slice('fault: '.length)
    const flapUp = /^flap (\S+) up/.exec(label)
    if (flapUp !== null) {
      for (const s of open) if (s.label.startsWith(`flap ${flapUp[1] ?? ''} down`)) s.toMs = note.atMs
      return
    }
    spans.push({ label, fromMs: note.atMs })
  } else if (note.what.startsWith('heal: ')) {
    const healed = note.what.slice('heal: '.length)
    if (healed.startsWith('every fault')) {
      for (const s of open) s.toMs = note.atMs
      return
    }
    const group = healed.split(' ')[0] ?? ''
    const matching = open.filter(s => s.label.includes(group) || healed.includes(s.label.split(' (')[0] ?? s.label))
    for (const s of matching.length > 0 ? matching : open.slice(0, 1)) s.toMs = note.atMs
  }
}
