/**
 * Issue 13: the training exercises across a cluster and its clone (us-east-1/primary and
 * us-west-2/dr, made from a copy of its backup), each played the whole way through with the real
 * bins (issue-13-helpers.ts `playExercise`): after `hsmlab exercise start`, `check` fails with
 * reasons naming what is wrong; a plausible wrong attempt (mistakes.md: syncKey of the wrong
 * handle, syncUser from the wrong server, one missing key synced of several) typed into the real
 * CMU leaves it failing with a reason pointing at the mistake; after `reset`, the shipped
 * solution typed into the real CMU makes it pass.
 */
import { describe, expect, it } from 'vitest'
import { openExercise } from '@hsmlab/exercises'
import { playExercise } from './issue-13-helpers.js'

// A start, a check, each wrong attempt, a reset, the solution and a check: a minute or more on a busy machine.
const TIMEOUT_MS = 180_000

describe('issue 13: exercises across clones', () => {
  it('sync-key-to-clone: the new key is missing on the clone until syncKey brings it', async () => {
    const run = await playExercise('sync-key-to-clone', [/key \d+ is not on us-west-2\/dr server 0 \(hsm-[a-z0-9]+\)/, /key \d+ is not on us-west-2\/dr server 1/])
    // show names the two-cluster configuration the task tells the learner to use.
    const shown = JSON.parse((await run.lab.hsmlab(['exercise', 'show', '--json'])).stdout) as { cmuConfigs: Record<string, string> }
    expect(shown.cmuConfigs['us-east-1/primary->us-west-2/dr']).toBe(`${run.lab.dir}/us-east-1-primary--us-west-2-dr.cfg`)
  }, TIMEOUT_MS)

  it('rotate-credentials-across-clones: the new password works nowhere, the old one everywhere, until changePswd and syncUser', async () => {
    await playExercise('rotate-credentials-across-clones', [
      /the new password does not work on us-east-1\/primary server 0 \(hsm-/, /the new password does not work on us-west-2\/dr server 0/,
      /the old password Alice1234 still works on us-east-1\/primary server 1/
    ])
  }, TIMEOUT_MS)

  it('partition-left-keys-behind: the keys past the partition are missing on both HSMs of the clone until synced', async () => {
    const run = await playExercise('partition-left-keys-behind', [/\d of alice's keys are missing on us-west-2\/dr server 0 \(hsm-[a-z0-9]+\): \d+/, /missing on us-west-2\/dr server 1/])
    // Reset with the same seed left the same keys behind as the first start.
    const { state } = await openExercise({ dir: run.lab.dir })
    expect(state.values.left).toEqual(run.values.left)
    expect((state.values.left as number[]).length).toBe(6 - (state.values.cut as number))
  }, TIMEOUT_MS)
})
