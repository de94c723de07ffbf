/**
 * What every checker takes and gives. The checkers are pure functions of the history (what the
 * workload was told) and the observation (what the lab holds once it settled); they share no code
 * with the lab, the HSMs or the runner, only these types.
 */
import type { OperationRecord } from '../history.js'
import type { Observation, ObservedHsm } from '../observation.js'

/** The invariants, by the names the runner prints. */
export type InvariantName =
  | 'acknowledged-not-lost'
  | 'no-duplicates'
  | 'no-half-writes'
  | 'failures-have-causes'
  | 'cluster-agreement'
  | 'backups-settled'
  | 'sync-converged'
  | 'sync-failures-have-causes'

/** What a checker judges. */
export interface CheckInput {
  history: readonly OperationRecord[]
  observation: Observation
}

/** One way an invariant broke. */
export interface Violation {
  invariant: InvariantName
  detail: string
}

/** The HSMs of a cluster that could be read. */
export function hsmsOf (observation: Observation, cluster: string): ObservedHsm[] {
  return observation.hsms.filter(h => h.cluster === cluster && h.unreachable === undefined)
}

/** `op #12 (createKey by keys#0 at 1.234 s)`: how a detail names an operation. */
export function opName (record: OperationRecord): string {
  return `op #${record.id} (${record.op} by ${record.client} at ${(record.invokedAtMs / 1000).toFixed(3)} s)`
}

/** Same name, ignoring case (user names do not depend on case). */
export function sameName (a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase()
}
