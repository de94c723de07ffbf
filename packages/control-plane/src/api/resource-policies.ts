/**
 * Resource policies (backup sharing): GetResourcePolicy, PutResourcePolicy, DeleteResourcePolicy.
 *
 * The service supports them on backups only: a policy lets other accounts describe a READY backup
 * that this account owns and create clusters from it. The policy is kept with the backup, durably,
 * as given, and checked before it is kept: a JSON policy document whose statements name a
 * principal, the two actions a shared backup allows (cloudhsm:CreateCluster,
 * cloudhsm:DescribeBackups), and no resource but this backup. hsmlab has one account, so a shared
 * backup is still visible to that account only (docs/control-plane.md, "Resource policies").
 *
 * Errors, as the model lists them: CloudHsmInvalidRequestException (no ARN, an ARN of a cluster or
 * an HSM, of another region, a backup that is not READY, a malformed policy),
 * CloudHsmAccessDeniedException (an ARN of another account: no cross-account use),
 * CloudHsmResourceNotFoundException (no such backup).
 */
import type { ApiRequest } from '../api-types.js'
import { ApiError, invalidRequest } from '../errors.js'
import { backupOf } from './common.js'
import type { ApiContext } from './context.js'

/** The actions a backup's resource policy may allow or deny (AWS RAM's policy for a shared backup). */
export const BACKUP_POLICY_ACTIONS: readonly string[] = ['cloudhsm:CreateCluster', 'cloudhsm:DescribeBackups']
/** The policy language versions IAM knows. */
const POLICY_VERSIONS: readonly string[] = ['2012-10-17', '2008-10-17']

function required<T> (value: T | undefined, member: string): T {
  if (value === undefined) throw invalidRequest(`1 validation error detected: Value null at '${member}' failed to satisfy constraint: Member must not be null`)
  return value
}

/** The backup an ARN names, after the checks every one of the three operations makes. */
function backupIdOfArn (ctx: ApiContext, arn: string): string {
  // The shape (CloudHsmArn) already holds: arn:PARTITION:cloudhsm:REGION:ACCOUNT:TYPE/ID.
  const [, , , region = '', account = '', resource = ''] = arn.split(':')
  const [type = '', id = ''] = resource.split('/')
  const { region: here, accountId } = ctx.settings
  if (account !== accountId) {
    throw new ApiError('CloudHsmAccessDeniedException', `Resource ${arn} belongs to account ${account}: resource policies can be managed only by the account that owns the resource (${accountId})`)
  }
  if (region !== here) throw invalidRequest(`Resource ${arn} is in region ${region}: call the endpoint of ${region}, not of ${here}`)
  if (type !== 'backup') throw invalidRequest(`Resource ${arn} is a ${type}: only backups support resource policies`)
  return id
}

const asList = (value: unknown): unknown[] => Array.isArray(value) ? value : [value]
const isString = (value: unknown): value is string => typeof value === 'string'

function malformed (why: string): ApiError {
  return invalidRequest(`The policy is malformed: ${why}`)
}

/** Checks a policy document for the backup `backupArn`; throws CloudHsmInvalidRequestException saying what is wrong. */
export function checkBackupPolicy (text: string, backupArn: string): void {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw malformed(`it is not JSON (${(err as Error).message})`)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw malformed('it must be a JSON object with Version and Statement')
  const policy = doc as Record<string, unknown>
  for (const key of Object.keys(policy)) {
    if (!['Version', 'Id', 'Statement'].includes(key)) throw malformed(`unknown element '${key}' (a policy has Version, Id and Statement)`)
  }
  if (policy.Version !== undefined && !POLICY_VERSIONS.includes(policy.Version as string)) {
    throw malformed(`Version must be one of ${POLICY_VERSIONS.join(', ')}`)
  }
  if (policy.Statement === undefined) throw malformed('it has no Statement')
  const statements = asList(policy.Statement)
  if (statements.length === 0) throw malformed('Statement is empty')
  statements.forEach((value, i) => {
    const where = `Statement ${i + 1}`
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`${where} must be an object`)
    const statement = value as Record<string, unknown>
    for (const key of Object.keys(statement)) {
      if (!['Sid', 'Effect', 'Principal', 'Action', 'Resource', 'Condition'].includes(key)) {
        throw malformed(`${where} has an element hsmlab does not support: '${key}' (use Sid, Effect, Principal, Action, Resource, Condition)`)
      }
    }
    if (statement.Sid !== undefined && !isString(statement.Sid)) throw malformed(`${where}: Sid must be a string`)
    if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny') throw malformed(`${where}: Effect must be Allow or Deny`)
    const principal = statement.Principal
    const principals = principal === '*' ? ['*'] : typeof principal === 'object' && principal !== null && !Array.isArray(principal) ? asList((principal as Record<string, unknown>).AWS) : []
    if (principals.length === 0 || principals.some(p => !isString(p) || !/^(\*|\d{12}|arn:aws(-us-gov)?:iam::\d{12}:(root|user\/.+|role\/.+))$/.test(p))) {
      throw malformed(`${where}: Principal must be "*" or {"AWS": an account id, arn:aws:iam::ACCOUNT:root, or a list of them}`)
    }
    const actions = asList(statement.Action)
    if (statement.Action === undefined || actions.length === 0 || actions.some(a => !isString(a) || !BACKUP_POLICY_ACTIONS.includes(a))) {
      throw malformed(`${where}: Action must be ${BACKUP_POLICY_ACTIONS.join(' or ')}, or a list of them`)
    }
    const resources = asList(statement.Resource)
    if (statement.Resource === undefined || resources.length === 0) throw malformed(`${where} has no Resource: name ${backupArn}`)
    for (const resource of resources) {
      if (resource !== backupArn) throw malformed(`${where}: Resource ${JSON.stringify(resource)} is not the backup the policy is attached to (${backupArn})`)
    }
    if (statement.Condition !== undefined && (typeof statement.Condition !== 'object' || statement.Condition === null || Array.isArray(statement.Condition))) {
      throw malformed(`${where}: Condition must be an object`)
    }
  })
}

export async function getResourcePolicy (ctx: ApiContext, req: ApiRequest<'GetResourcePolicy'>): Promise<unknown> {
  const backup = backupOf(ctx.store.state, backupIdOfArn(ctx, required(req.ResourceArn, 'resourceArn')))
  return backup.resourcePolicy === undefined ? {} : { Policy: backup.resourcePolicy }
}

export async function putResourcePolicy (ctx: ApiContext, req: ApiRequest<'PutResourcePolicy'>): Promise<unknown> {
  const arn = required(req.ResourceArn, 'resourceArn')
  const policy = required(req.Policy, 'policy')
  const backupId = backupIdOfArn(ctx, arn)
  await ctx.store.transact(draft => {
    const backup = backupOf(draft, backupId)
    if (backup.state !== 'READY') throw invalidRequest(`Backup ${backupId} is in state ${backup.state}: only a READY backup can be shared`)
    checkBackupPolicy(policy, arn)
    backup.resourcePolicy = policy
  })
  return { ResourceArn: arn, Policy: policy }
}

export async function deleteResourcePolicy (ctx: ApiContext, req: ApiRequest<'DeleteResourcePolicy'>): Promise<unknown> {
  const arn = required(req.ResourceArn, 'resourceArn')
  const backupId = backupIdOfArn(ctx, arn)
  const previous = await ctx.store.transact(draft => {
    const backup = backupOf(draft, backupId)
    const policy = backup.resourcePolicy
    delete backup.resourcePolicy
    return policy
  })
  return previous === undefined ? { ResourceArn: arn } : { ResourceArn: arn, Policy: previous }
}
