/**
 * `exportBackup`: the control plane (holder of the cluster's trust anchor, standing in for the
 * AWS service) asks an HSM for a backup of its users and keys (reference F.7, G.1). Like
 * `setPeers` it needs no login, but the trust anchor's signature over this HSM's id and the time
 * of the request (`signBackupRequest`), which must be within `backupRequestSkewMsMax` of this
 * HSM's clock, either way: a request cannot be used on another HSM, and a captured one only for
 * a few minutes. Anything else is RET_PERMISSION_DENIED, with the reason.
 *
 * The handler never sees the manufacturer key, only the persistent backup key derived from it.
 */
import { ReturnCode, WireError } from '@hsmlab/protocol'
import { createBackup } from '../backup.js'
import type { ClusterCertificateBook } from '../cluster-certificates.js'
import type { Handler, HandlerTable } from '../context.js'
import { hsmDefaults } from '../defaults.js'
import { verifyBackupRequest } from '../provisioning.js'

/** What the backup handlers need besides the context. */
export interface BackupHandlerDeps {
  /** The persistent backup key (`deriveBackupKey(manufacturerKey)`). */
  backupKey: Uint8Array
  /** @default hsmDefaults.backupRequestSkewMsMax (5 minutes) */
  requestSkewMsMax?: number
  /** The clock, in milliseconds since the epoch. @default Date.now */
  now?: () => number
  /** Where the quorum M values come from, for the backup to carry them. @default none (all 1) */
  quorum?: { mValues: () => Record<number, number> }
  /** Where the cluster certificate and customer CA come from, for the backup to carry them. @default none */
  clusterCertificates?: Pick<ClusterCertificateBook, 'current'>
}

/** The backup handlers. */
export function createBackupHandlers (deps: BackupHandlerDeps): HandlerTable {
  const skewMsMax = deps.requestSkewMsMax ?? hsmDefaults.backupRequestSkewMsMax
  const now = deps.now ?? Date.now

  const exportBackup: Handler<'exportBackup'> = async (ctx, _session, { requestedAtMs, signature }) => {
    const { identity } = ctx
    if (!verifyBackupRequest(identity.anchorPublicKey, identity.hsmId, requestedAtMs, signature)) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `the backup request is not signed by the trust anchor of cluster ${identity.clusterId} for ${identity.hsmId} at ${requestedAtMs}`)
    }
    const createdAtMs = now()
    const skewMs = Math.abs(createdAtMs - requestedAtMs)
    if (skewMs > skewMsMax) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `the backup request was signed for time ${requestedAtMs} (ms since the epoch), ${skewMs} ms away from this HSM's clock (${createdAtMs}); at most ${skewMsMax} ms are allowed: sign a new request, and check the clocks`)
    }
    const { bytes, header } = createBackup({ identity, users: ctx.users.values(), keys: ctx.keys.values(), createdAtMs, quorumMValues: deps.quorum?.mValues(), clusterCertificates: deps.clusterCertificates?.current() }, deps.backupKey)
    return { backup: bytes, createdAtMs, keyCount: header.keyCount, userCount: header.userCount }
  }

  return { exportBackup }
}
