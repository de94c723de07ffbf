/**
 * The API's shapes as TypeScript types (reference F.4; member names as in botocore's
 * cloudhsmv2 service-2.json), with hsmlab's extension members marked. Timestamps are epoch
 * seconds.
 */
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

/** Every operation: its input and output. */
export interface ApiOperations {
  CreateCluster: { input: { HsmType: string, SubnetIds: string[], SourceBackupId?: string, BackupRetentionPolicy?: BackupRetentionPolicy, TagList?: Tag[], NetworkType?: 'IPV4' | 'DUALSTACK', Mode?: 'FIPS' | 'NON_FIPS' }, output: { Cluster: Cluster } }
  DescribeClusters: { input: { Filters?: Record<string, string[]>, NextToken?: string, MaxResults?: number }, output: { Clusters: Cluster[], NextToken?: string } }
  DeleteCluster: { input: { ClusterId: string }, output: { Cluster: Cluster } }
  InitializeCluster: { input: { ClusterId: string, SignedCert: string, TrustAnchor: string }, output: { State: ClusterStateName, StateMessage?: string } }
  ModifyCluster: { input: { ClusterId: string, HsmType?: string, BackupRetentionPolicy?: BackupRetentionPolicy }, output: { Cluster: Cluster } }
  CreateHsm: { input: { ClusterId: string, AvailabilityZone: string, IpAddress?: string }, output: { Hsm: Hsm } }
  DeleteHsm: { input: { ClusterId: string, HsmId?: string, EniId?: string, EniIp?: string }, output: { HsmId: string } }
  DescribeBackups: { input: { Filters?: Record<string, string[]>, NextToken?: string, MaxResults?: number, Shared?: boolean, SortAscending?: boolean }, output: { Backups: Backup[], NextToken?: string } }
  CopyBackupToRegion: { input: { DestinationRegion: string, BackupId: string, TagList?: Tag[] }, output: { DestinationBackup: DestinationBackup } }
  DeleteBackup: { input: { BackupId: string }, output: { Backup: Backup } }
  RestoreBackup: { input: { BackupId: string }, output: { Backup: Backup } }
  ModifyBackupAttributes: { input: { BackupId: string, NeverExpires: boolean }, output: { Backup: Backup } }
  TagResource: { input: { ResourceId: string, TagList: Tag[] }, output: Record<string, never> }
  UntagResource: { input: { ResourceId: string, TagKeyList: string[] }, output: Record<string, never> }
  ListTags: { input: { ResourceId: string, NextToken?: string, MaxResults?: number }, output: { TagList: Tag[], NextToken?: string } }
  /** hsmlab extension: make a backup of an ACTIVE cluster now. */
  HsmlabCreateBackup: { input: { ClusterId: string }, output: { Backup: Backup } }
  /** hsmlab extension: replace the region's routes to HSMs. */
  HsmlabSetHsmRoutes: { input: { Routes: HsmRoute[] }, output: { Routes: HsmRouteStatus[] } }
  /** hsmlab extension: the region's routes to HSMs. */
  HsmlabDescribeHsmRoutes: { input: Record<string, never>, output: { Routes: HsmRouteStatus[] } }
}

export type ApiOperationName = keyof ApiOperations
