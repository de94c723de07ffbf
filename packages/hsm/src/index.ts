/**
 * @packageDocumentation
 * The HSM node: provisioning of data directories, the `hsmlab-hsm` process (`HSM_BIN_PATH`) and
 * `startHsm` to run one in process. An HSM listens on one WebSocket port, answers the operations
 * of @hsmlab/protocol over an encrypted channel, keeps its users and keys in encrypted stores,
 * and replicates token keys to the peers the lab gives it. A control plane makes HSMs with
 * `writeProvisionFile` + `hsmlab-hsm --provision FILE`, asks them for backups with
 * `exportBackup` (signed with `signBackupRequest`), and handles backups as opaque bytes whose
 * header `readBackupHeader` reads.
 *
 * @example
 * ```ts
 * import { createClusterSecrets, createManufacturerKey, provisionHsm, startHsm } from '@hsmlab/hsm'
 * const manufacturerKey = createManufacturerKey()
 * const cluster = createClusterSecrets()
 * await provisionHsm({ dataDir: '/tmp/hsm-0', manufacturerKey, slot: 0, cluster })
 * const hsm = await startHsm({ dataDir: '/tmp/hsm-0', manufacturerKey })
 * // connect with @hsmlab/client: HsmConnection.connect({ url: hsm.url, trustAnchor: cluster.anchor.publicKey })
 * await hsm.stop()
 * ```
 */
import { fileURLToPath } from 'node:url'

/**
 * Absolute path of the built `hsmlab-hsm` script (`dist/bin/hsm.js`), for
 * `node ...HSM_NODE_ARGS HSM_BIN_PATH ...` with `HSM_PROCESS_ENV` added to the environment.
 */
export const HSM_BIN_PATH: string = fileURLToPath(new URL('../dist/bin/hsm.js', import.meta.url))
export { HSM_NODE_ARGS, HSM_PROCESS_ENV } from './process-options.js'

export { startHsm } from './hsm-node.js'
export type { HsmNode, StartHsmOptions } from './hsm-node.js'
export {
  APPLIANCE_USER_NAME, DEFAULT_ADMIN_NAME, DEFAULT_ADMIN_PASSWORD, createClusterSecrets, createManufacturerKey, issueHsmIdentity,
  provisionHsm, readManufacturerKey, signBackupRequest, signClusterCertificates, signPeers, signSyncHello, signSyncRole, verifyBackupRequest,
  verifyClusterCertificates, verifyPeers, verifySyncHello, verifySyncRole, writeManufacturerKey
} from './provisioning.js'
export type { ClusterCertificates } from './data-dir.js'
export type { ClusterSecrets, IssuedHsmIdentity, ProvisionOptions, ProvisionedHsm } from './provisioning.js'
export { provisionFromFile, readProvisionFile, writeProvisionFile } from './provision-file.js'
export type { ProvisionFile, ProvisionFileOptions, ProvisionFromFileOptions, ProvisionedFromFile } from './provision-file.js'
export { readBackupHeader } from './backup.js'
export type { BackupHeader } from './backup.js'
export { isResourceId, randomResourceId } from './ids.js'
export {
  HsmError, HSM_ERROR_CODES, HSM_EXIT_CODES, HSM_ERR_ALREADY_PROVISIONED, HSM_ERR_BACKUP_FOREIGN, HSM_ERR_BACKUP_FORMAT,
  HSM_ERR_BACKUP_TAMPERED, HSM_ERR_DATA_DIR_LOCKED, HSM_ERR_INVALID_ARGUMENT, HSM_ERR_LISTEN, HSM_ERR_MANUFACTURER_KEY,
  HSM_ERR_NOT_PROVISIONED, HSM_ERR_PROVISION_FILE, HSM_ERR_STORAGE_KEY, HSM_ERR_STORE_LOAD
} from './errors.js'
export { hsmDefaults } from './defaults.js'
export { REQUEST_CHANNEL } from './server.js'
export type { RequestEvent } from './server.js'
export type { HsmLimits } from './context.js'

export { REPLICATED_CHANNEL } from './replication.js'
export { SyncOutcomeCode } from './handlers/sync-handlers.js'
export type { ReplicatedMessage } from './replication.js'
