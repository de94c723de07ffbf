/**
 * Issue 13: the training exercises done with the AWS CLI, each played the whole way through with
 * the real bins (issue-13-helpers.ts `playExercise`): the real `aws cloudhsmv2` against the lab's
 * control planes (`. .hsmlab/exercise/aws.env` gives it credentials and endpoints), the real CMU
 * to look at the keys. After `hsmlab exercise start`, `check` fails with reasons naming what is
 * wrong; a plausible wrong attempt (mistakes.md: a clone made from the wrong backup, the
 * replacement HSM added to the wrong cluster) leaves it failing with a reason pointing at the
 * mistake; after `reset`, the shipped solution makes it pass. Skipped where the machine has no
 * AWS CLI.
 */
import { describe, it } from 'vitest'
import { AWS_CLI, playExercise } from './issue-13-helpers.js'

describe.skipIf(AWS_CLI === undefined)('issue 13: exercises with the AWS CLI', () => {
  it('dr-copy-and-clone: no copy, no cluster, no keys in us-west-2 until the learner makes them', async () => {
    await playExercise('dr-copy-and-clone', ['us-west-2 has no backup copied from us-east-1', 'us-west-2 has no cluster made from a copy'])
  })

  it('replace-failed-hsm: training runs on 2 HSMs until the learner adds a third, which gets every key', async () => {
    await playExercise('replace-failed-hsm', ['us-east-1/training has 2 ACTIVE HSMs, not 3', 'only 2 HSMs of us-east-1/training answer'])
  })
})
