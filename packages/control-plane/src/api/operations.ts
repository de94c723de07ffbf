/** The operations of `BaldrApiService`, by name (the part of X-Amz-Target after the dot). */
import { copyBackupToRegion, deleteBackup, describeBackups, hsmlabCreateBackup, modifyBackupAttributes, restoreBackup } from './backups.js'
import { createCluster, deleteCluster, describeClusters, initializeCluster, modifyCluster } from './clusters.js'
import type { ApiContext } from './context.js'
import { createHsm, deleteHsm } from './hsms.js'
import { hsmlabDescribeHsmRoutes, hsmlabSetHsmRoutes } from './routes.js'
import { listTags, tagResource, untagResource } from './tags.js'

/** One operation: validates its input and answers its output (or throws an ApiError). */
export type Operation = (ctx: ApiContext, input: unknown) => Promise<unknown>

/** Every operation the API serves, AWS's and hsmlab's extension (`Hsmlab*`). */
export const OPERATIONS: Readonly<Record<string, Operation>> = {
  CreateCluster: createCluster,
  DescribeClusters: describeClusters,
  DeleteCluster: deleteCluster,
  InitializeCluster: initializeCluster,
  ModifyCluster: modifyCluster,
  CreateHsm: createHsm,
  DeleteHsm: deleteHsm,
  DescribeBackups: describeBackups,
  CopyBackupToRegion: copyBackupToRegion,
  DeleteBackup: deleteBackup,
  RestoreBackup: restoreBackup,
  ModifyBackupAttributes: modifyBackupAttributes,
  TagResource: tagResource,
  UntagResource: untagResource,
  ListTags: listTags,
  HsmlabCreateBackup: hsmlabCreateBackup,
  HsmlabSetHsmRoutes: hsmlabSetHsmRoutes,
  HsmlabDescribeHsmRoutes: hsmlabDescribeHsmRoutes
}

/** Operations of the AWS model that hsmlab does not serve (backup sharing across accounts). */
export const UNSUPPORTED_OPERATIONS: readonly string[] = ['GetResourcePolicy', 'PutResourcePolicy', 'DeleteResourcePolicy']
