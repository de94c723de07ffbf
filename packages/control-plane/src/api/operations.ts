/**
 * The operations of `BaldrApiService`, by name (the part of X-Amz-Target after the dot).
 *
 * The name comes from the request, so the table is a `Map`: it answers its own entries and
 * nothing else. A plain object answered `constructor`, `toString`, `__proto__`... too, and ran
 * them as operations (`constructor` handed out the whole API context). The entries are written as
 * a record keyed by `ApiOperationName` (the keys of validation.ts `requestShapes`), so the
 * compiler asks for a handler of every operation and refuses a name it does not know; each handler
 * gets its request checked against its shape here, typed as that shape (`ApiRequest`). A new
 * operation is its request shape, its output type (api-types.ts `ApiOutputs`) and its handler
 * here, each one entry that the compiler asks for once the shape is there.
 */
import type { ApiOperationName, ApiRequest } from '../api-types.js'
import { requestShapes, validate } from '../validation.js'
import { copyBackupToRegion, deleteBackup, describeBackups, hsmlabCreateBackup, modifyBackupAttributes, restoreBackup } from './backups.js'
import { createCluster, deleteCluster, describeClusters, initializeCluster, modifyCluster } from './clusters.js'
import type { ApiContext } from './context.js'
import { createHsm, deleteHsm } from './hsms.js'
import { deleteResourcePolicy, getResourcePolicy, putResourcePolicy } from './resource-policies.js'
import { hsmlabDescribeHsmRoutes, hsmlabSetHsmRoutes } from './routes.js'
import {
  hsmlabAddSyncResources, hsmlabAssociateSyncReplica, hsmlabCreateSyncTask, hsmlabDescribeSyncTasks, hsmlabDisassociateSyncReplica,
  hsmlabListSyncResources, hsmlabRemoveSyncResources
} from './sync.js'
import { listTags, tagResource, untagResource } from './tags.js'

/** One operation: validates its input and answers its output (or throws an ApiError). */
export type Operation = (ctx: ApiContext, input: unknown) => Promise<unknown>

/** The handler of operation `N`: its request is checked against its shape already. */
export type Handler<N extends ApiOperationName> = (ctx: ApiContext, request: ApiRequest<N>) => Promise<unknown>

const HANDLERS: { readonly [N in ApiOperationName]: Handler<N> } = {
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
  GetResourcePolicy: getResourcePolicy,
  PutResourcePolicy: putResourcePolicy,
  DeleteResourcePolicy: deleteResourcePolicy,
  HsmlabCreateBackup: hsmlabCreateBackup,
  HsmlabSetHsmRoutes: hsmlabSetHsmRoutes,
  HsmlabDescribeHsmRoutes: hsmlabDescribeHsmRoutes,
  HsmlabCreateSyncTask: hsmlabCreateSyncTask,
  HsmlabDescribeSyncTasks: hsmlabDescribeSyncTasks,
  HsmlabAssociateSyncReplica: hsmlabAssociateSyncReplica,
  HsmlabDisassociateSyncReplica: hsmlabDisassociateSyncReplica,
  HsmlabAddSyncResources: hsmlabAddSyncResources,
  HsmlabRemoveSyncResources: hsmlabRemoveSyncResources,
  HsmlabListSyncResources: hsmlabListSyncResources
}

/** Operation `name`: its request checked against its shape (CloudHsmInvalidRequestException otherwise), then its handler. */
function checked<N extends ApiOperationName> (name: N): Operation {
  const handler: Handler<N> = HANDLERS[name]
  const shape = requestShapes[name]
  return async (ctx, input) => await handler(ctx, validate<ApiRequest<N>>(input, shape))
}

/** Every operation the API serves, AWS's and hsmlab's extension (`Hsmlab*`). */
export const OPERATIONS: ReadonlyMap<ApiOperationName, Operation> = new Map((Object.keys(HANDLERS) as ApiOperationName[]).map(name => [name, checked(name)]))

/** The operation called `name`, or undefined for any other name (inherited members of Object included). */
export function operationOf (name: string): { name: ApiOperationName, run: Operation } | undefined {
  const run = OPERATIONS.get(name as ApiOperationName)
  return run === undefined ? undefined : { name: name as ApiOperationName, run }
}

/** Operations of the AWS model that hsmlab does not serve: none since the resource policies (issue 15). */
export const UNSUPPORTED_OPERATIONS: readonly string[] = []
