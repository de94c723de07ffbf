/**
 * The checkers (TigerBeetle's state checker: separate from the code under test). `runCheckers`
 * runs each over the history and the observation and returns every violation, in invariant order.
 */
import type { CheckInput, InvariantName, Violation } from './check-input.js'
import { ACKNOWLEDGED_NOT_LOST, checkAcknowledgedNotLost } from './acknowledged-not-lost.js'
import { NO_DUPLICATES, checkNoDuplicates } from './no-duplicates.js'
import { NO_HALF_WRITES, checkNoHalfWrites } from './no-half-writes.js'
import { FAILURES_HAVE_CAUSES, checkFailuresHaveCauses } from './failures-have-causes.js'
import { CLUSTER_AGREEMENT, checkClusterAgreement } from './cluster-agreement.js'
import { BACKUPS_SETTLED, checkBackupsSettled } from './backups-settled.js'
import { SYNC_CONVERGED, SYNC_FAILURES_HAVE_CAUSES, checkSyncConverged, checkSyncFailuresHaveCauses } from './sync-tasks.js'

export type { CheckInput, InvariantName, Violation } from './check-input.js'
export {
  checkAcknowledgedNotLost, checkBackupsSettled, checkClusterAgreement, checkFailuresHaveCauses, checkNoDuplicates, checkNoHalfWrites,
  checkSyncConverged, checkSyncFailuresHaveCauses
}

/** Every invariant with its checker, in the order they are reported. */
export const CHECKERS: ReadonlyArray<{ invariant: InvariantName, check: (input: CheckInput) => Violation[] }> = [
  { invariant: ACKNOWLEDGED_NOT_LOST, check: checkAcknowledgedNotLost },
  { invariant: NO_DUPLICATES, check: checkNoDuplicates },
  { invariant: NO_HALF_WRITES, check: checkNoHalfWrites },
  { invariant: FAILURES_HAVE_CAUSES, check: checkFailuresHaveCauses },
  { invariant: CLUSTER_AGREEMENT, check: checkClusterAgreement },
  { invariant: BACKUPS_SETTLED, check: checkBackupsSettled },
  { invariant: SYNC_CONVERGED, check: checkSyncConverged },
  { invariant: SYNC_FAILURES_HAVE_CAUSES, check: checkSyncFailuresHaveCauses }
]

/** Runs every checker; an empty list means every invariant held. */
export function runCheckers (input: CheckInput): Violation[] {
  return CHECKERS.flatMap(c => c.check(input))
}
