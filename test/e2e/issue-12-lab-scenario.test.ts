/**
 * Goal (issue 12): the shipped scenario replica-region-partition-flapping.json passes end to end —
 * a synchronisation task from us-east-1/primary to eu-west-1/replica, keys created, shared and
 * deleted on the primary while eu-west-1 is partitioned and then flaps; records turn FAILED with
 * their cause while it is cut off (seen by the runner during the run), and once healed the lab
 * settles with every record SYNCHRONIZED and the replica holding what the primary holds, under
 * the eight invariants (sync-converged and sync-failures-have-causes among them).
 *
 * Method: the real `hsmlab scenario run` bin with a fixed seed and `--dir` in a temporary
 * directory (scenario-helpers); the report and observation it leaves there are read afterwards.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runHsmlab } from '@hsmlab/testing'
import { REPO_ROOT, lastLine, scenarioDir } from './scenario-helpers.js'

const FILE = 'scripts/scenarios/replica-region-partition-flapping.json'

describe('issue 12: a replica region partitioned and flapping during synchronisation', () => {
  it(`${FILE} passes, having seen FAILED records with their causes`, async () => {
    const { dir } = scenarioDir()
    const run = await runHsmlab(['scenario', 'run', FILE, '--seed', '11', '--dir', dir], { cwd: REPO_ROOT, timeoutMs: 100_000 })
    const why = `exit ${run.code}\n${run.stdout}\n${run.stderr}`
    expect(run.code, why).toBe(0)
    expect(run.stdout, why).toMatch(/fault: partition eu-west-1 \(\d+ links\)/)
    expect(run.stdout, why).toMatch(/fault: flap eu-west-1 down/)
    expect(run.stdout, why).toMatch(/settle: .*synchronisation tasks SYNCHRONIZED/)
    expect(run.stdout, why).toMatch(/check: 8 invariants over \d+ operations, 3 HSMs, \d+ key copies, 0 new backups, 1 synchronisation task\(s\) with \d+ records, [1-9]\d* FAILED records seen during the run/)
    expect(run.stdout).toMatch(/^PASS \(\d+\.\d s\)$/m)
    expect(lastLine(run.stdout)).toBe(`replay: hsmlab scenario run ${FILE} --seed 11`)
    const observation = JSON.parse(readFileSync(join(dir, 'scenario', 'observation.json'), 'utf8')) as {
      syncTasks: Array<{ primary: string, records: Array<{ status: string }> }>
      syncFailuresSeen: Array<{ failureCause: { code: string, message: string } | null }>
    }
    expect(observation.syncTasks.map(t => t.primary)).toEqual(['us-east-1/primary'])
    expect(observation.syncTasks[0]?.records.every(r => r.status === 'SYNCHRONIZED')).toBe(true)
    expect(observation.syncFailuresSeen.length).toBeGreaterThan(0)
    expect(observation.syncFailuresSeen.every(f => f.failureCause !== null && f.failureCause.code !== '')).toBe(true)
    // Keys were created, shared and deleted.
    const ops = readFileSync(join(dir, 'scenario', 'history.jsonl'), 'utf8').trim().split('\n').map(l => JSON.parse(l) as { event: string, op?: string, outcome?: string })
    for (const op of ['createKey', 'shareKey', 'deleteKey']) expect(ops.some(e => e.event === 'complete' && e.op === op && e.outcome === 'ok'), op).toBe(true)
  }, 120_000)
})
