/**
 * Issue 13: the training exercises about users, each played the whole way through with the real
 * bins (issue-13-helpers.ts `playExercise`): after `hsmlab exercise start`, `check` fails with
 * reasons naming what is wrong; a plausible wrong attempt (mistakes.md) typed into the real CMU
 * leaves it failing with a reason pointing at the mistake; after `reset`, the shipped solution
 * typed into the real CMU makes it pass.
 */
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { EXERCISES_DIR, openExercise, scheduleLogFile } from '@hsmlab/exercises'
import { isRunning, tmpDir, waitFor } from '@hsmlab/testing'
import { runCmuBin } from './cmu-helpers.js'
import { expectFailing, playExercise, startExercise } from './issue-13-helpers.js'

// A start, a check, each wrong attempt, a reset, the solution and a check: a minute or more on a busy machine.
const TIMEOUT_MS = 180_000

describe('issue 13: exercises on users', () => {
  it('desync-user: server 2 refuses Bob98765 until the CO sets it there', async () => {
    const run = await playExercise('desync-user', [/Bob98765 does not work on server 2 \(hsm-[a-z0-9]+\)/])
    // Every step done: no hint left to give, and `show` says so.
    expect((await run.lab.hsmlab(['exercise', 'hint'])).stdout).toBe('Every step is done: nothing left to hint at.\n')
    const shown = JSON.parse((await run.lab.hsmlab(['exercise', 'show', '--json'])).stdout) as { steps: Array<{ id: string, passed: boolean }> }
    expect(shown.steps).toMatchObject([{ id: 'bob-agrees', passed: true }])
  }, TIMEOUT_MS)

  it('start prints the task and the first step; show, hint and solution as the CLI contract has them; reset starts over', async () => {
    const run = await startExercise('desync-user', 5)
    expect(run.lab.upStdout).toContain('# A user whose password one HSM missed\n')
    expect(run.lab.upStdout).toContain('## Step 1 of 1: bob\'s password is Bob98765 on every HSM\n')
    expect(run.lab.upStdout).toContain("seed 5; the same exercise again: 'hsmlab exercise start desync-user --seed 5')")
    // show: the steps with their state, the credentials and the configurations.
    const shown = JSON.parse((await run.lab.hsmlab(['exercise', 'show', '--json'])).stdout) as {
      seed: number, steps: Array<{ id: string, passed: boolean, reasons: string[] }>, credentials: unknown[], cmuConfigs: Record<string, string>, awsEnv: string
    }
    expect(shown.seed).toBe(5)
    expect(shown.steps).toMatchObject([{ id: 'bob-agrees', passed: false }])
    expect(shown.credentials).toContainEqual({ cluster: 'us-east-1/training', type: 'CO', name: 'admin', password: 'Admin1234' })
    expect(shown.cmuConfigs['us-east-1/training']).toBe(`${run.lab.dir}/us-east-1-training.cfg`)
    expect(readFileSync(shown.awsEnv, 'utf8')).toMatch(/^export US_EAST_1=http:\/\/127\.0\.0\.1:\d+$/m)
    // The state holds passwords: the owner's only.
    for (const file of ['state.json', 'topology.json']) expect(statSync(join(run.lab.dir, 'exercise', file)).mode & 0o777, file).toBe(0o600)
    // The check's password tries never lock bob out: run it more often than the HSM allows failures.
    let last
    for (let i = 0; i < 6; i++) last = await expectFailing(run, /Bob98765 does not work on server 2/)
    expect(last?.steps[0]?.reasons.join('\n')).toMatch(/on server 2 \(hsm-[a-z0-9]+\) \(bob has 4 failed logins \(locked out, or nearly: not tried\)\)$/)
    // Hints: numbered, one more each time, the last one again at the end.
    const hints: string[] = []
    for (let i = 0; i < 4; i++) hints.push((await run.lab.hsmlab(['exercise', 'hint'])).stdout)
    expect(hints[0]).toMatch(/^Hint 1 of 3 for step "bob's password is Bob98765 on every HSM":\n/)
    expect(hints[1]).toMatch(/^Hint 2 of 3 /)
    expect(hints[2]).toMatch(/^Hint 3 of 3 [^]*changePswd CU bob Bob98765/)
    expect(hints[3]).toBe(hints[2])
    // The solution, exactly as typed.
    const solution = await run.lab.hsmlab(['exercise', 'solution'])
    expect(solution.stdout).toContain('$ cloudhsm_mgmt_util .hsmlab/us-east-1-training.cfg\n  loginHSM CO admin Admin1234\n  changePswd CU bob Bob98765\n  y\n')
    // reset: the same seed, a new lab, the hints from the start.
    const reset = await run.lab.hsmlab(['exercise', 'reset'])
    expect(reset.code, reset.stderr).toBe(0)
    expect(reset.stdout).toContain('desync-user: back to the starting state.')
    expect((await run.lab.hsmlab(['exercise', 'hint'])).stdout).toMatch(/^Hint 1 of 3 /)
    // hsmlab down stops it like any other lab.
    await run.lab.down()
    const check = await run.lab.hsmlab(['exercise', 'check'])
    expect(check.code).toBe(1)
    expect(check.stdout).toContain("(is the lab running? 'hsmlab up' starts it again, with what was done)")
    // ... and `hsmlab up` brings it back, exercise and all.
    await run.lab.up()
    await expectFailing(run, /Bob98765 does not work on server 2/)
  }, TIMEOUT_MS)

  it('faults on a schedule: set while the learner works, through the lab\'s fault proxy; reset stops the old schedule', async () => {
    // A copy of the example with a schedule: server 1 cut off half a second after start, healed in ten minutes.
    const folder = join(tmpDir('hsmlab-i13-schedule-'), 'scheduled')
    cpSync(join(EXERCISES_DIR, 'remove-departed-user'), folder, { recursive: true })
    const json = JSON.parse(readFileSync(join(folder, 'exercise.json'), 'utf8')) as Record<string, unknown>
    json.schedule = [{ atSeconds: 0.5, fault: { type: 'partition', group: 'us-east-1/training/hsm-1' } }, { atSeconds: 600, heal: {} }]
    writeFileSync(join(folder, 'exercise.json'), JSON.stringify(json))
    const run = await startExercise(folder)
    const log = scheduleLogFile(run.lab.dir)
    const first = await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('"set"') ? readFileSync(log, 'utf8') : undefined, { what: 'the scheduled partition' })
    expect(JSON.parse(first.trim().split('\n')[0] ?? '{}')).toMatchObject({ atSeconds: 0.5, set: { type: 'partition', group: 'us-east-1/training/hsm-1' } })
    // The learner's CMU reaches server 0, not server 1.
    const cmu = await runCmuBin([join(run.lab.dir, 'us-east-1-training.cfg')], 'listUsers\nquit\n')
    expect(cmu.stdout).toContain('Users on server 0(')
    expect(cmu.stdout).not.toContain('Users on server 1(')
    // reset stops the schedule of the exercise it replaces, and starts the new one's.
    const before = (await openExercise({ dir: run.lab.dir })).state.schedulePid as number
    expect(isRunning(before)).toBe(true)
    const reset = await run.lab.hsmlab(['exercise', 'reset'])
    expect(reset.code, reset.stderr).toBe(0)
    await waitFor(() => !isRunning(before), { what: 'the old schedule to stop' })
    const after = (await openExercise({ dir: run.lab.dir })).state.schedulePid as number
    expect(after).not.toBe(before)
    // Purged, the exercise is gone: its schedule stops by itself.
    await run.lab.down(['--purge'])
    await waitFor(() => !isRunning(after), { what: 'the schedule to stop once its lab is purged' })
  }, TIMEOUT_MS)

  it('remove-departed-user (the example of docs/exercises.md): mallory is on every HSM until the CO deletes her', async () => {
    await playExercise('remove-departed-user', [/mallory-gone: mallory still exists on server 0 \(hsm-/, /mallory still exists on server 1/])
  }, TIMEOUT_MS)

  it('activate-cluster: admin is a PRECO and app does not exist until the learner activates the cluster', async () => {
    await playExercise('activate-cluster', [/admin is still a PRECO on server 0 \(hsm-/, /admin is still a PRECO on server 1 \(hsm-/, /there is no user app on server 0/])
  }, TIMEOUT_MS)

  it('locked-out-user: carol is locked out everywhere until the CO resets her password', async () => {
    await playExercise('locked-out-user', [/carol is still locked out on server 0 \(hsm-[a-z0-9]+\) \(5 failed logins\)/, /carol is still locked out on server 1/])
  }, TIMEOUT_MS)

  it('share-key: bob is no shared user of alice\'s key until alice shares it; he can never delete it', async () => {
    await playExercise('share-key', [/bob-shares: bob is not a shared user of key \d+ on server 0 \(hsm-[a-z0-9]+\) \(shared with: nobody\)/, /bob-cannot-delete: bob cannot see key \d+ on server 0/])
  }, TIMEOUT_MS)
})
