/**
 * The API's shapes as TypeScript types (reference F.4; member names as in botocore's
 * cloudhsmv2 service-2.json), with hsmlab's extension members marked. Timestamps are epoch
 * seconds. Requests are derived from their shapes (validation.ts), never written out again here.
 */
import type { Infer, requestShapes } from './validation.js'

export interface Tag { Key: string, Value: string }
export interface BackupRetentionPolicy { Type?: 'DAYS', Value?: string }

export interface Hsm {
  AvailabilityZone?: string
  ClusterId?: string
  SubnetId?: string
  EniId?: string
  EniIp?: string
  HsmId: string
  HsmType?: string
  State?: 'CREATE_IN_PROGRESS' | 'ACTIVE' | 'DEGRADED' | 'DELETE_IN_PROGRESS' | 'DELETED'
  StateMessage?: string
  /** hsmlab extension: `ws://EniIp:port`, where clients (CMU, KMU, HsmConnection) reach the HSM. */
  HsmlabEndpoint?: string
  /** hsmlab extension: the pid of the HSM process. */
  HsmlabPid?: number
}

export interface Certificates {
  ClusterCsr?: string
  HsmCertificate?: string
  AwsHardwareCertificate?: string
  ManufacturerHardwareCertificate?: string
  ClusterCertificate?: string
}

export type ClusterStateName = 'CREATE_IN_PROGRESS' | 'UNINITIALIZED' | 'INITIALIZE_IN_PROGRESS' | 'INITIALIZED' | 'ACTIVE' | 'UPDATE_IN_PROGRESS' |
  'MODIFY_IN_PROGRESS' | 'ROLLBACK_IN_PROGRESS' | 'DELETE_IN_PROGRESS' | 'DELETED' | 'DEGRADED'

export interface Cluster {
  BackupPolicy?: 'DEFAULT'
  BackupRetentionPolicy?: BackupRetentionPolicy
  ClusterId?: string
  CreateTimestamp?: number
  Hsms?: Hsm[]
  HsmType?: string
  SecurityGroup?: string
  SourceBackupId?: string
  State?: ClusterStateName
  StateMessage?: string
  SubnetMapping?: Record<string, string>
  VpcId?: string
  NetworkType?: 'IPV4' | 'DUALSTACK'
  Certificates?: Certificates
  TagList?: Tag[]
  Mode?: 'FIPS' | 'NON_FIPS'
  /** hsmlab extension: the cluster's trust anchor (encodeTrustAnchor text): the CAfile of CMU/KMU configurations. */
  HsmlabTrustAnchor?: string
  /** hsmlab extension: the lineage of its HSMs (clones share their source's). */
  HsmlabLineage?: string
}

export type BackupStateName = 'CREATE_IN_PROGRESS' | 'READY' | 'DELETED' | 'PENDING_DELETION'

export interface Backup {
  BackupId: string
  BackupArn?: string
  BackupState?: BackupStateName
  ClusterId?: string
  CreateTimestamp?: number
  CopyTimestamp?: number
  NeverExpires?: boolean
  SourceRegion?: string
  SourceBackup?: string
  SourceCluster?: string
  DeleteTimestamp?: number
  TagList?: Tag[]
  HsmType?: string
  Mode?: 'FIPS' | 'NON_FIPS'
  /** hsmlab extension: why a backup is DELETED (a failed copy, a failed export, retention). */
  StateMessage?: string
  /** hsmlab extension: the lineage of the HSM it was made from. */
  HsmlabLineage?: string
}

export interface DestinationBackup {
  CreateTimestamp?: number
  SourceRegion?: string
  SourceBackup?: string
  SourceCluster?: string
}

/** hsmlab extension: a route to an HSM (HsmlabSetHsmRoutes). */
export interface HsmRoute {
  HsmId: string
  /** `control-plane`, or the id of another HSM of the same cluster. */
  From: string
  /** `ws://host:port` that `From` dials instead of the HSM's own endpoint. */
  Endpoint: string
  /** The HSM endpoint the route leads to; the route is used only while the HSM is there. */
  Upstream?: string
}

/** A route as HsmlabSetHsmRoutes and HsmlabDescribeHsmRoutes answer it. */
export interface HsmRouteStatus extends HsmRoute {
  /** The HSM runs at the route's Upstream (or it has none), so `From` uses it. */
  InUse: boolean
  /** `From` has it: an HSM took a peer list naming it; the control plane uses its own routes on its next call. */
  Delivered: boolean
}

/** hsmlab extension (issue 12): the scope of a synchronisation task. */
export interface SyncScope {
  Keys?: { All?: boolean, Owners?: string[], Handles?: number[] }
  Users?: string[]
}

/** hsmlab extension (issue 12): a replica of a synchronisation task. */
export interface SyncTaskReplica {
  ClusterId: string
  Region: string
  SyncType: 'KEYS' | 'KEYS_AND_USERS'
  State: 'ASSOCIATED' | 'DISASSOCIATED'
  /** Epoch seconds. */
  AssociatedAt: number
  DisassociatedAt?: number
}

/** hsmlab extension (issue 12): the synchronisation task of a primary cluster. */
export interface SyncTask {
  SyncTaskId: string
  PrimaryClusterId: string
  PrimaryRegion: string
  /** Epoch seconds. */
  CreatedAt: number
  Replicas: SyncTaskReplica[]
  Scope: SyncScope
}

/** hsmlab extension (issue 12): one resource on one replica. */
export interface SyncResourceRecord {
  /** A key: its handle on the primary, in decimal; a user: its name. */
  ResourceId: string
  ResourceType: 'KEY' | 'USER'
  ReplicaClusterId: string
  Status: 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'FAILED'
  FailureCause: { Code: string, Message: string } | null
  /** Epoch seconds, fractional. */
  LastAttemptAt: number | null
  LastSuccessAt: number | null
  Attempts: number
}

/**
 * What each operation answers. Its keys must be the operations' names (the keys of
 * validation.ts `requestShapes`): `ApiOperations` asks for an output of each.
 */
export interface ApiOutputs {
  CreateCluster: { Cluster: Cluster }
  DescribeClusters: { Clusters: Cluster[], NextToken?: string }
  DeleteCluster: { Cluster: Cluster }
  InitializeCluster: { State: ClusterStateName, StateMessage?: string }
  ModifyCluster: { Cluster: Cluster }
  CreateHsm: { Hsm: Hsm }
  DeleteHsm: { HsmId: string }
  DescribeBackups: { Backups: Backup[], NextToken?: string }
  CopyBackupToRegion: { DestinationBackup: DestinationBackup }
  DeleteBackup: { Backup: Backup }
  RestoreBackup: { Backup: Backup }
  ModifyBackupAttributes: { Backup: Backup }
  TagResource: Record<string, never>
  UntagResource: Record<string, never>
  ListTags: { TagList: Tag[], NextToken?: string }
  GetResourcePolicy: { Policy?: string }
  PutResourcePolicy: { ResourceArn: string, Policy: string }
  DeleteResourcePolicy: { ResourceArn: string, Policy?: string }
  /** hsmlab extension: make a backup of an ACTIVE cluster now. */
  HsmlabCreateBackup: { Backup: Backup }
  /** hsmlab extension: replace the region's routes to HSMs. */
  HsmlabSetHsmRoutes: { Routes: HsmRouteStatus[] }
  /** hsmlab extension: the region's routes to HSMs. */
  HsmlabDescribeHsmRoutes: { Routes: HsmRouteStatus[] }
  /** hsmlab extension (issue 12): synchronisation tasks. */
  HsmlabCreateSyncTask: { SyncTask: SyncTask }
  HsmlabDescribeSyncTasks: { SyncTasks: SyncTask[] }
  HsmlabAssociateSyncReplica: { SyncTask: SyncTask }
  HsmlabDisassociateSyncReplica: { SyncTask: SyncTask }
  HsmlabAddSyncResources: { SyncTask: SyncTask }
  /** Always refused: the scope of a task only grows. */
  HsmlabRemoveSyncResources: Record<string, never>
  HsmlabListSyncResources: { Resources: SyncResourceRecord[], NextToken?: string }
}

/** The name of an operation: a key of the request shapes (validation.ts), the one list of operations. */
export type ApiOperationName = keyof typeof requestShapes

/** The request of operation `N`, derived from its shape: the type a handler gets once the request was checked. */
export type ApiRequest<N extends ApiOperationName> = Infer<(typeof requestShapes)[N]>

/** Every operation: its input (from its request shape) and its output. */
export type ApiOperations = { [N in ApiOperationName]: { input: ApiRequest<N>, output: ApiOutputs[N] } }
