/**
 * @packageDocumentation
 * The lab: `hsmlab up` turns a topology (regions, clusters, HSM counts, initial users, clones)
 * into running processes: one control plane per region, which spawns and supervises its HSMs,
 * and clusters built through the control planes' cloudhsmv2 API the way the AWS documentation
 * does it. `hsmlab status` reports what runs where, `hsmlab down` stops it all, `hsmlab backup`
 * makes a backup now; every link runs through the lab's fault proxy, and `hsmlab fault`
 * (`applyFault`, `healFaults`, `listFaults`) partitions, blackholes, slows or resets them. The same
 * operations are functions here, for scripts and tests that run in process.
 *
 * @example
 * ```ts
 * import { applyFault, healFaults, labDown, labStatus, labUp } from '@hsmlab/lab'
 * const { status } = await labUp({ dir: '/tmp/lab' })     // the default lab: us-east-1/primary and its clone us-west-2/dr
 * status.cmuConfigs['us-east-1/primary->us-west-2/dr']     // a CMU configuration for syncKey / syncUser across them
 * await applyFault({ dir: '/tmp/lab', fault: { type: 'partition', group: 'us-west-2' } })
 * await healFaults({ dir: '/tmp/lab' })
 * await labDown({ dir: '/tmp/lab', purge: true })
 * ```
 */
export { UP_CHANNEL, labUp } from './lab-up.js'
export type { UpProgress } from './lab-up.js'
export { labStatus } from './lab-status.js'
export { labBackup, labDown } from './lab-admin.js'
export type { LabBackupOptions, LabDownOptions } from './lab-admin.js'
export type {
  ClusterStatus, ControlPlaneStatus, FaultsStatus, HsmRunState, HsmStatus, LabDownResult, LabLocation, LabStatus, LabUpOptions, LabUpResult, RegionStatus
} from './lab.js'
export { applyFault, healFaults, listFaults } from './faults.js'
export type { AppliedFault, ApplyFaultOptions, FaultLabLocation, FaultListing, HealedFaults, HealFaultsOptions, LinkFaults } from './faults.js'
export type { FaultLinks, LabFault } from './fault-vocabulary.js'
export { availabilityZonesOf } from './cluster-builder.js'
export { parseTopology, readTopology } from './topology.js'
export type { Topology, TopologyCluster, TopologyRegion, TopologySync, TopologyUser } from './topology.js'
export {
  buildSyncTasks, labSyncAddReplica, labSyncAddResources, labSyncCreate, labSyncRemoveReplica, labSyncRemoveResources, labSyncStatus
} from './sync.js'
export type { SyncLocation, SyncTaskJson } from './sync.js'
export { parseSyncCommand, syncMain } from './sync-command.js'
export type { SyncCommand } from './sync-command.js'
export { parseSyncKeys, parseSyncUsers, syncStatusJsonOf } from './sync-scope.js'
export type { ApiSyncResourceRecord, ApiSyncScope, ApiSyncTask, SyncKeys, SyncResourceJson, SyncScope, SyncStatus, SyncStatusJson, SyncTaskStatus, SyncType } from './sync-scope.js'
export { LAB_STATE_FORMAT, LabLayout, readLabState } from './lab-state.js'
export { DEFAULT_TOPOLOGY_PATH, labDefaults } from './defaults.js'
export {
  LabError, LAB_ERROR_CODES, LAB_ERR_ACTIVATION, LAB_ERR_BACKUP, LAB_ERR_BUSY, LAB_ERR_CLUSTER, LAB_ERR_CONTROL_PLANE, LAB_ERR_FAULTS, LAB_ERR_HSM_START,
  LAB_ERR_NO_LAB, LAB_ERR_CLIENT_DAEMON, LAB_ERR_NO_SYNC_TASK, LAB_ERR_SCENARIO, LAB_ERR_STATE, LAB_ERR_SYNC, LAB_ERR_SYNC_SCOPE_ADD_ONLY, LAB_ERR_TOPOLOGY, LAB_ERR_TOPOLOGY_CHANGED, LAB_ERR_USAGE
} from './errors.js'
export { SCENARIO_EXIT, parseScenario, readScenario, resolveScenario, runScenario } from './scenario/index.js'
export type { RunScenarioOptions, Scenario, ScenarioResult, Verdict } from './scenario/index.js'
export { main } from './bin/hsmlab.js'
export type { MainIo } from './bin/hsmlab.js'
