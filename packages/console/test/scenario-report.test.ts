/**
 * The Scenario reports page's reading of a run (scenario-report.ts), from a history file written
 * as the runner writes it: operations joined from their invoke and complete lines, fault spans
 * opened by `fault:` notes and closed by the matching `heal:` (a flap by its `up`), the report
 * beside it, and a run name that is not a plain name refused (no path outside the lab).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readRun } from '../src/scenario-report.js'

const lab = mkdtempSync(join(tmpdir(), 'hsmlab-console-report-'))
afterAll(() => { rmSync(lab, { recursive: true, force: true }) })

function write (run: string, lines: unknown[], report?: unknown): void {
  const dir = run === 'scenario' ? join(lab, 'scenario') : join(lab, 'scenario', run)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'history.jsonl'), lines.map(l => JSON.stringify(l)).join('\n') + '\n{"torn')
  if (report !== undefined) writeFileSync(join(dir, 'report.json'), JSON.stringify(report))
}

describe('readRun', () => {
  it('joins operations, opens and closes fault spans, and reads the report', async () => {
    write('scenario', [
      { event: 'note', atMs: 0, what: 'workload: start' },
      { event: 'invoke', id: 1, client: 'keys#0', op: 'createKey', cluster: 'us-east-1/primary', invokedAtMs: 10, outcome: 'invoked' },
      { event: 'note', atMs: 100, what: 'fault: partition us-west-2 (4 links)' },
      { event: 'note', atMs: 120, what: 'fault: flap us-east-1/primary/hsm-1 down (2 links)' },
      { event: 'complete', id: 1, client: 'keys#0', op: 'createKey', cluster: 'us-east-1/primary', invokedAtMs: 10, completedAtMs: 150, outcome: 'failed', cause: 'cut' },
      { event: 'note', atMs: 160, what: 'fault: flap us-east-1/primary/hsm-1 up' },
      { event: 'note', atMs: 300, what: 'heal: us-west-2 (4 links)' },
      { event: 'note', atMs: 310, what: 'fault: latency 200 ms on the links between us-east-1 and us-west-2 (2 links)' },
      { event: 'note', atMs: 400, what: 'heal: every fault lifted' }
    ], { verdict: 'pass', timings: { totalMs: 500, labDownMs: 40 } })
    const run = await readRun(lab, 'scenario')
    expect(run.error).toBeUndefined()
    expect(run.operations).toEqual([{ id: 1, client: 'keys#0', op: 'createKey', cluster: 'us-east-1/primary', invokedAtMs: 10, completedAtMs: 150, outcome: 'failed', cause: 'cut' }])
    expect(run.faults).toEqual([
      { label: 'partition us-west-2 (4 links)', fromMs: 100, toMs: 300 },
      { label: 'flap us-east-1/primary/hsm-1 down (2 links)', fromMs: 120, toMs: 160 },
      { label: 'latency 200 ms on the links between us-east-1 and us-west-2 (2 links)', fromMs: 310, toMs: 400 }
    ])
    expect(run.notes).toHaveLength(7)
    expect(run.report).toEqual({ verdict: 'pass', timings: { totalMs: 500, labDownMs: 40 } })
  })

  it('refuses a run name that is not a plain name', async () => {
    for (const name of ['../etc', '.hidden', 'a/b', '']) expect((await readRun(lab, name)).error).toMatch(/^no run/)
    expect((await readRun(lab, 'absent')).error).toMatch(/^no history in/)
  })
})
