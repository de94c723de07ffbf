/**
 * @packageDocumentation
 * The lab: `hsmlab up` turns a topology (regions, clusters, HSM counts, initial users) into
 * running HSM processes, `hsmlab status` reports what runs where, `hsmlab down` stops it all.
 * The same operations are functions here, for scripts and tests that run in process.
 *
 * @example
 * ```ts
 * import { labDown, labStatus, labUp } from '@hsmlab/lab'
 * const { status } = await labUp({ dir: '/tmp/lab', topologyFile: 'test/fixtures/two-hsms.json' })
 * status.regions[0].clusters[0].cmuConfig // the CMU configuration of the first cluster
 * await labDown({ dir: '/tmp/lab', purge: true })
 * ```
 */
export { UP_CHANNEL, labDown, labDir, labStatus, labUp } from './lab.js'
export type {
  ClusterRunState, ClusterStatus, HsmRunState, HsmStatus, LabDownOptions, LabDownResult, LabLocation, LabStatus,
  LabUpOptions, LabUpResult, RegionStatus, UpProgress
} from './lab.js'
export { checkBuildable, clustersOf, parseTopology, readTopology } from './topology.js'
export type { Topology, TopologyCluster, TopologyRegion, TopologyUser } from './topology.js'
export { LAB_STATE_FORMAT, LabLayout, readLabState } from './lab-state.js'
export type { Addressing, ClusterState, HsmState, LabState } from './lab-state.js'
export { formatDown, formatStatus, formatUpSummary } from './report.js'
export { DEFAULT_TOPOLOGY_PATH, labDefaults } from './defaults.js'
export {
  LabError, LAB_ERROR_CODES, LAB_ERR_ACTIVATION, LAB_ERR_BUSY, LAB_ERR_HSM_START, LAB_ERR_NO_LAB, LAB_ERR_PEERS,
  LAB_ERR_STATE, LAB_ERR_TOPOLOGY, LAB_ERR_TOPOLOGY_CHANGED, LAB_ERR_UNSUPPORTED, LAB_ERR_USAGE
} from './errors.js'
export { main } from './bin/hsmlab.js'
export type { MainIo } from './bin/hsmlab.js'
