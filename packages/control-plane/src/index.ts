/**
 * @packageDocumentation
 * The control plane of one hsmlab region: the `cloudhsmv2` API (AWS JSON 1.1,
 * `X-Amz-Target: BaldrApiService.<Operation>`, the shapes, states and errors of the real service)
 * for the AWS CLI and SDKs (`--endpoint-url`), the HSM processes of the region (spawned,
 * provisioned, restored from backups, supervised), backups (made, retained, deleted, restored)
 * and CopyBackupToRegion between regions' control planes. `hsmlab-control-plane`
 * (`CONTROL_PLANE_BIN_PATH`) runs one as a process; `startControlPlane` runs one in process;
 * `ControlPlaneClient` drives the API. `hsmlab-hsm-host` (`HSM_HOST_BIN_PATH`, `startHsmHost`)
 * runs one HSM at one address for a control plane started with a hosts file (`hsmHostsFile`).
 *
 * @example
 * ```ts
 * import { ControlPlaneClient, startControlPlane } from '@hsmlab/control-plane'
 * const cp = await startControlPlane({ region: 'us-east-1', dataDir: '/tmp/cp', manufacturerKeyFile: '/tmp/manufacturer.key' })
 * const api = new ControlPlaneClient({ endpoint: cp.url, region: 'us-east-1' })
 * const cluster = await api.createCluster({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0123456789abcdef0'] })
 * await api.waitForCluster(cluster.ClusterId ?? '', 'UNINITIALIZED')
 * await cp.stop()
 * ```
 */
import { fileURLToPath } from 'node:url'

/** Absolute path of the built `hsmlab-control-plane` script (`dist/bin/control-plane.js`), for `node CONTROL_PLANE_BIN_PATH ...`. */
export const CONTROL_PLANE_BIN_PATH: string = fileURLToPath(new URL('../dist/bin/control-plane.js', import.meta.url))

/** Absolute path of the built `hsmlab-hsm-host` script (`dist/bin/hsm-host.js`), for `node HSM_HOST_BIN_PATH ...`. */
export const HSM_HOST_BIN_PATH: string = fileURLToPath(new URL('../dist/bin/hsm-host.js', import.meta.url))

export { startControlPlane } from './control-plane.js'
export type { ControlPlane, ControlPlaneOptions, ControlPlaneTuning } from './control-plane.js'
export { ControlPlaneClient } from './client.js'
export type { ControlPlaneClientOptions, WaitOptions } from './client.js'
export { FileWatch } from './file-watch.js'
export type {
  ApiOperationName, ApiOperations, Backup, BackupRetentionPolicy, BackupStateName, Certificates, Cluster, ClusterStateName,
  DestinationBackup, Hsm, HsmRoute, HsmRouteStatus, SyncResourceRecord, SyncScope, SyncTask, SyncTaskReplica, Tag
} from './api-types.js'
export { REMOVE_RESOURCES_REFUSAL } from './api/sync.js'
export { SYNC_FAILURE_CODES } from './sync-protocol.js'
export { PEER_ACCESS_KEY_ID, createPeerSecret, ensurePeerSecretFile, readPeerSecretFile } from './peer-secret.js'
export { CONTROL_PLANE_ROUTE_FROM } from './api/routes.js'
export { OPERATIONS, UNSUPPORTED_OPERATIONS } from './api/operations.js'
export { signRequest, verifyRequest, parseAuthorization, SIGNING_SERVICE } from './sigv4.js'
export type { Credentials, ParsedAuthorization } from './sigv4.js'
export { readRegionsFile, partitionOf, isRestricted } from './regions.js'
export type { RegionsMap } from './regions.js'
export { startHsmHost } from './hsm-host.js'
export type { HsmHost, HsmHostOptions, HsmHostReport, HsmHostState, HsmHostTuning } from './hsm-host.js'
export { readHsmHostsFile } from './remote-hsm-supervisor.js'
export type { HsmHostEntry } from './remote-hsm-supervisor.js'
export { controlPlaneDefaults, hsmHostDefaults, STATE_FILE_NAME, SYNC_RECORDS_FILE_NAME } from './defaults.js'
export {
  ApiError, ControlPlaneError, CONTROL_PLANE_ERROR_CODES, CP_ERR_API, CP_ERR_BACKUP, CP_ERR_DATA_DIR_LOCKED, CP_ERR_HSM, CP_ERR_HTTP,
  CP_ERR_HSM_HOST, CP_ERR_HSM_HOSTS_FILE, CP_ERR_INVALID_ARGUMENT, CP_ERR_LISTEN, CP_ERR_NO_SPACE, CP_ERR_PEER_SECRET, CP_ERR_REGIONS_FILE, CP_ERR_STATE, CP_ERR_TIMEOUT
} from './errors.js'
export type { ApiErrorType } from './errors.js'
export { violations } from './validation.js'
