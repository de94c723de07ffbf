/**
 * Goal (issue 14): a scenario run leaves a report that tells its real timings (report.json used
 * to say `"totalMs": 0` and had no `labDownMs`: it was written before they were set), its faults
 * on the lab's fault timeline (source `scenario`), and the console draws the run: operations as
 * bars per client, faults as shaded spans, the verdict.
 *
 * Method: the real `hsmlab scenario run` of a shipped scenario with `--dir` (so its history and
 * report stay in the lab directory), then `hsmlab up --dir` on that lab again and its console's
 * Scenario reports page in chromium (console-browser.ts keeps a screenshot).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runHsmlab } from '@hsmlab/testing'
import { describe, expect, it } from 'vitest'
import { openBrowser } from './console-browser.js'
import { REPO_ROOT, scenarioDir } from './scenario-helpers.js'

describe('a scenario run in the console', () => {
  it('has its timings in report.json, its faults on the timeline, and its history drawn', async () => {
    const { cwd, dir } = scenarioDir()
    const run = await runHsmlab(['scenario', 'run', 'scripts/scenarios/region-partition-bulk-sync.json', '--seed', '4242', '--dir', dir], { cwd: REPO_ROOT, timeoutMs: 100_000 })
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0)
    const report = JSON.parse(readFileSync(join(dir, 'scenario', 'report.json'), 'utf8')) as { verdict: string, timings: Record<string, number> }
    expect(report.verdict).toBe('pass')
    expect(report.timings.labDownMs).toBeGreaterThan(0)
    expect(report.timings.totalMs).toBeGreaterThan((report.timings.labUpMs ?? 0) + (report.timings.workloadMs ?? 0) + (report.timings.labDownMs ?? 0))
    const journal = readFileSync(join(dir, 'faults.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l) as { source: string, action: string, fault?: { type: string, group?: string } })
    expect(journal.filter(e => e.source === 'scenario' && e.action === 'apply').map(e => `${e.fault?.type} ${e.fault?.group}`)).toContain('partition us-west-2')

    const up = await runHsmlab(['up', '--dir', dir, '--json'], { cwd, timeoutMs: 60_000 })
    expect(up.code, up.stderr).toBe(0)
    const { console: web } = JSON.parse(up.stdout) as { console: { url: string } }
    const { page, shot } = await openBrowser()
    await page.goto(web.url)
    await page.click('[data-nav="reports"]')
    await page.locator('[data-testid="verdict"]', { hasText: 'pass' }).waitFor({ timeout: 5000 })
    expect(await page.locator('[data-testid="verdict"]').textContent()).toMatch(/total \d+\.\d s · lab down \d+\.\d s/)
    expect(await page.locator('[data-testid="run-timeline"] rect.op.ok').count()).toBeGreaterThan(0)
    expect(await page.locator('[data-testid="run-timeline"] rect.fault-span').count()).toBeGreaterThan(0)
    await shot('scenario-report')
    await page.click('[data-nav="faults"]')
    await page.locator('[data-testid="fault-timeline"] li', { hasText: 'partition us-west-2' }).filter({ hasText: 'scenario' }).first().waitFor()
    await shot('faults-after-scenario')
  })
})
