/**
 * The scenario runner (`hsmlab scenario run`, docs/scenarios.md): the scenario file, the run, the
 * history and the observation it records, and the checkers that judge them.
 */
export { runScenario, formatViolations } from './runner.js'
export type { RunScenarioOptions, ScenarioResult, Verdict } from './runner.js'
export { scenarioMain, SCENARIO_HELP } from './command.js'
export type { ScenarioIo } from './command.js'
export { SCENARIO_EXIT, scenarioDefaults } from './defaults.js'
export { parseScenario, readScenario, resolveScenario, clustersOfTopology } from './scenario-file.js'
export type {
  Fault, LinkSelector, ResolvedScenario, Scenario, ScenarioCluster, ScheduleEntry, WorkloadOp, WorkloadOpName, WorkloadStream
} from './scenario-file.js'
export { History } from './history.js'
export type { Invocation, OperationRecord, Outcome } from './history.js'
export type { Observation, ObservedBackup, ObservedHsm, ObservedKey, ObservedUser } from './observation.js'
export type { ObservedSyncRecord, ObservedSyncTask, SeenSyncFailure } from './sync-watch.js'
export {
  CHECKERS, checkAcknowledgedNotLost, checkBackupsSettled, checkClusterAgreement, checkFailuresHaveCauses, checkNoDuplicates, checkNoHalfWrites, checkSyncConverged, checkSyncFailuresHaveCauses,
  runCheckers
} from './checkers/index.js'
export type { CheckInput, InvariantName, Violation } from './checkers/index.js'
