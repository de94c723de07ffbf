/**
 * Issue 13: the training exercises about users, each played the whole way through with the real
 * bins (issue-13-helpers.ts `playExercise`): after `hsmlab exercise start`, `check` fails with
 * reasons naming what is wrong; a plausible wrong attempt (mistakes.md) typed into the real CMU
 * leaves it failing with a reason pointing at the mistake; after `reset`, the shipped solution
 * typed into the real CMU makes it pass.
 */
import { describe, expect, it } from 'vitest'
import { playExercise } from './issue-13-helpers.js'

describe('issue 13: exercises on users', () => {
  it('desync-user: server 2 refuses Bob98765 until the CO sets it there', async () => {
    const run = await playExercise('desync-user', [/Bob98765 does not work on server 2 \(hsm-[a-z0-9]+\)/])
    // The commands of `solution` and the first hint, as the CLI prints them.
    const solution = await run.lab.hsmlab(['exercise', 'solution'])
    expect(solution.stdout).toContain('$ cloudhsm_mgmt_util .hsmlab/us-east-1-training.cfg\n  loginHSM CO admin Admin1234\n  changePswd CU bob Bob98765\n')
  })

  it('activate-cluster: admin is a PRECO and app does not exist until the learner activates the cluster', async () => {
    await playExercise('activate-cluster', [/admin is still a PRECO on server 0 \(hsm-/, /admin is still a PRECO on server 1 \(hsm-/, /there is no user app on server 0/])
  })

  it('locked-out-user: carol is locked out everywhere until the CO resets her password', async () => {
    await playExercise('locked-out-user', [/carol is still locked out on server 0 \(hsm-[a-z0-9]+\) \(5 failed logins\)/, /carol is still locked out on server 1/])
  })

  it('share-key: bob is no shared user of alice\'s key until alice shares it; he can never delete it', async () => {
    await playExercise('share-key', [/bob-shares: bob is not a shared user of key \d+ on server 0 \(hsm-[a-z0-9]+\) \(shared with: nobody\)/, /bob-cannot-delete: bob cannot see key \d+ on server 0/])
  })
})
