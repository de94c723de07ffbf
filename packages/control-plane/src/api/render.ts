/**
 * The API's output shapes (reference F.4) made from the stored records: epoch-second
 * timestamps, members present only when they have a value, and hsmlab's extension members
 * (`Hsmlab*`, and `StateMessage` on a Backup) that the AWS SDKs and CLI ignore.
 */
import { encodeTrustAnchor } from '@hsmlab/crypto'
import { arnPrefix } from '../regions.js'
import type { BackupRecord, ClusterRecord, ControlPlaneState, HsmRecord } from '../state-store.js'

/** Lab milliseconds as the API's epoch seconds (fractional, like `1504907311.112`). */
export function seconds (ms: number): number {
  return Math.round(ms) / 1000
}

/** The endpoint an HSM listens on, once it has a port. */
export function hsmEndpoint (hsm: HsmRecord): string | undefined {
  return hsm.port === undefined ? undefined : `ws://${hsm.eniIp}:${hsm.port}`
}

/** An Hsm. */
export function renderHsm (hsm: HsmRecord): Record<string, unknown> {
  const endpoint = hsmEndpoint(hsm)
  return {
    AvailabilityZone: hsm.availabilityZone,
    ClusterId: hsm.clusterId,
    SubnetId: hsm.subnetId,
    EniId: hsm.eniId,
    EniIp: hsm.eniIp,
    HsmId: hsm.hsmId,
    HsmType: hsm.hsmType,
    State: hsm.state,
    ...(hsm.stateMessage === undefined ? {} : { StateMessage: hsm.stateMessage }),
    ...(endpoint === undefined || hsm.state === 'DELETED' ? {} : { HsmlabEndpoint: endpoint }),
    ...(hsm.pid === undefined || hsm.state === 'DELETED' ? {} : { HsmlabPid: hsm.pid })
  }
}

/** The HSMs of a cluster as Describe shows them (DELETED ones are gone from the list). */
export function hsmsOf (state: Readonly<ControlPlaneState>, clusterId: string): HsmRecord[] {
  return Object.values(state.hsms)
    .filter(h => h.clusterId === clusterId && h.state !== 'DELETED')
    .sort((a, b) => a.createdAtMs - b.createdAtMs || a.hsmId.localeCompare(b.hsmId))
}

/** A Cluster. */
export function renderCluster (state: Readonly<ControlPlaneState>, cluster: ClusterRecord): Record<string, unknown> {
  const certificates: Record<string, string> = {}
  const c = cluster.certificates
  if (cluster.state === 'UNINITIALIZED' && c.ClusterCsr !== undefined) certificates.ClusterCsr = c.ClusterCsr
  for (const key of ['HsmCertificate', 'AwsHardwareCertificate', 'ManufacturerHardwareCertificate', 'ClusterCertificate'] as const) {
    const value = c[key]
    if (value !== undefined) certificates[key] = value
  }
  return {
    BackupPolicy: 'DEFAULT',
    BackupRetentionPolicy: { Type: 'DAYS', Value: String(cluster.retentionDays) },
    ClusterId: cluster.clusterId,
    CreateTimestamp: seconds(cluster.createdAtMs),
    Hsms: hsmsOf(state, cluster.clusterId).map(renderHsm),
    HsmType: cluster.hsmType,
    SecurityGroup: cluster.securityGroup,
    ...(cluster.sourceBackupId === undefined ? {} : { SourceBackupId: cluster.sourceBackupId }),
    State: cluster.state,
    ...(cluster.stateMessage === undefined ? {} : { StateMessage: cluster.stateMessage }),
    SubnetMapping: { ...cluster.subnetMapping },
    VpcId: cluster.vpcId,
    NetworkType: cluster.networkType,
    Certificates: certificates,
    ...(cluster.tags.length === 0 ? {} : { TagList: cluster.tags.map(t => ({ ...t })) }),
    ...(cluster.mode === undefined ? {} : { Mode: cluster.mode }),
    HsmlabTrustAnchor: encodeTrustAnchor(new Uint8Array(Buffer.from(cluster.anchorPublicKey, 'base64'))),
    ...(cluster.lineage === undefined ? {} : { HsmlabLineage: cluster.lineage })
  }
}

/** A Backup. */
export function renderBackup (backup: BackupRecord, region: string, accountId: string): Record<string, unknown> {
  return {
    BackupId: backup.backupId,
    BackupArn: `${arnPrefix(region, accountId)}:backup/${backup.backupId}`,
    BackupState: backup.state,
    ...(backup.clusterId === undefined ? {} : { ClusterId: backup.clusterId }),
    CreateTimestamp: seconds(backup.createdAtMs),
    ...(backup.copiedAtMs === undefined ? {} : { CopyTimestamp: seconds(backup.copiedAtMs) }),
    NeverExpires: backup.neverExpires,
    ...(backup.sourceRegion === undefined ? {} : { SourceRegion: backup.sourceRegion }),
    ...(backup.sourceBackup === undefined ? {} : { SourceBackup: backup.sourceBackup }),
    ...(backup.sourceCluster === undefined ? {} : { SourceCluster: backup.sourceCluster }),
    ...(backup.deleteAtMs === undefined || backup.state !== 'PENDING_DELETION' ? {} : { DeleteTimestamp: seconds(backup.deleteAtMs) }),
    ...(backup.tags.length === 0 ? {} : { TagList: backup.tags.map(t => ({ ...t })) }),
    HsmType: backup.hsmType,
    ...(backup.mode === undefined ? {} : { Mode: backup.mode }),
    ...(backup.stateMessage === undefined ? {} : { StateMessage: backup.stateMessage }),
    ...(backup.lineage === undefined ? {} : { HsmlabLineage: backup.lineage })
  }
}
