/**
 * Issue 13: the training exercise on a synchronisation task (issue 12), played the whole way
 * through with the real bins (issue-13-helpers.ts `playExercise`): after `hsmlab exercise start`
 * (a partition of the replica's region while alice makes keys), `check` fails naming each FAILED
 * record and its cause; healing the wrong region (mistakes.md) leaves the records FAILED; after
 * `reset`, the shipped solution (`hsmlab sync status`, `hsmlab fault list`, `hsmlab fault heal`)
 * makes every record SYNCHRONIZED and `check` pass.
 */
import { describe, it } from 'vitest'
import { playExercise } from './issue-13-helpers.js'

// A start, a check, the wrong attempt, a reset, the solution and a check: a minute or more on a busy machine.
const TIMEOUT_MS = 180_000

describe('issue 13: exercises on synchronisation tasks', () => {
  it('failed-sync-resource: the records are FAILED (replica region unreachable) until the partition is healed', async () => {
    await playExercise('failed-sync-resource', [/key \d+ on eu-west-1\/replica is FAILED: REPLICA_UNREACHABLE: /])
  }, TIMEOUT_MS)
})
