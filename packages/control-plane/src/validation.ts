/**
 * Request validation after the cloudhsmv2 model (botocore service-2.json, reference F.2): every
 * member's type, length, range, pattern and enum, and required members. Violations are collected
 * and reported the way AWS's request validation words them ("1 validation error detected: Value
 * 'x' at 'clusterId' failed to satisfy constraint: Member must satisfy regular expression
 * pattern: cluster-[2-7a-zA-Z]{11,16}"), as one CloudHsmInvalidRequestException. Patterns match
 * the whole value, as the service's do. Members the model does not know are ignored.
 */
import { invalidRequest } from './errors.js'

/** How one member is checked. */
export type Spec =
  | { kind: 'string', pattern?: string, flags?: string, min?: number, max?: number, oneOf?: readonly string[] }
  | { kind: 'boolean' }
  | { kind: 'integer', min?: number, max?: number }
  | { kind: 'list', member: Spec, min?: number, max?: number }
  | { kind: 'map', key: Spec, value: Spec, max?: number }
  | { kind: 'structure', members: Record<string, Spec>, required?: readonly string[] }

/** A string shape without an enum: its value is any string. */
type StringSpec = Extract<Spec, { kind: 'string' }> & { oneOf?: undefined }

const str = (pattern?: string, extra: { min?: number, max?: number, flags?: string } = {}): StringSpec => ({ kind: 'string', pattern, ...extra })

/**
 * The TypeScript type of the values that fit a shape, derived from the shape itself, so that a
 * request type is never written a second time beside its shape (api-types.ts `ApiRequest`).
 * Shapes keep their literal types for it (`as const`, `request`).
 */
export type Infer<S> =
  S extends { readonly kind: 'string', readonly oneOf: ReadonlyArray<infer L> } ? L
    : S extends { readonly kind: 'string' } ? string
      : S extends { readonly kind: 'boolean' } ? boolean
        : S extends { readonly kind: 'integer' } ? number
          : S extends { readonly kind: 'list', readonly member: infer M } ? Array<Infer<M>>
            : S extends { readonly kind: 'map', readonly value: infer V } ? Record<string, Infer<V>>
              : S extends { readonly kind: 'structure', readonly members: infer M } ? StructureOf<M, S extends { readonly required: ReadonlyArray<infer R> } ? R : never>
                : never

/** A structure's members: the required ones as given, the others optional; no member at all: an empty object. */
type StructureOf<M, R> = [keyof M] extends [never] ? Record<string, never> : Flat<
{ -readonly [K in keyof M as K extends R ? K : never]: Infer<M[K]> } &
{ -readonly [K in keyof M as K extends R ? never : K]?: Infer<M[K]> }>
type Flat<T> = { [K in keyof T]: T[K] } & {}

/** The model's shapes (reference F.2). */
export const shapes = {
  clusterId: str('cluster-[2-7a-zA-Z]{11,16}'),
  hsmId: str('hsm-[2-7a-zA-Z]{11,16}'),
  backupId: str('backup-[2-7a-zA-Z]{11,16}'),
  backupArn: str('(arn:aws(-(us-gov))?:cloudhsm:([a-z]{2}(-(gov|isob|iso))?-(east|west|north|south|central){1,2}-[0-9]{1}):[0-9]{12}:backup/)?backup-[2-7a-zA-Z]{11,16}'),
  region: str('[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\\d'),
  externalAz: str('[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\\d[a-z]'),
  subnetId: str('subnet-[0-9a-fA-F]{8,17}'),
  eniId: str('eni-[0-9a-fA-F]{8,17}'),
  ipAddress: str('\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}'),
  hsmType: str('((p|)hsm[0-9][a-z.]*\\.[a-zA-Z]+)', { max: 32 }),
  cert: str('[a-zA-Z0-9+-/=\\s]*', { max: 20_000 }),
  resourceId: str('(?:cluster|backup)-[2-7a-zA-Z]{11,16}'),
  /** CloudHsmArn: the ARN of a backup, cluster or HSM (resource policies). */
  cloudHsmArn: str('arn:aws(-(us-gov))?:cloudhsm:([a-z]{2}(-(gov|isob|iso))?-(east|west|north|south|central){1,2}-[0-9]{1}):[0-9]{12}:(backup/backup|cluster/cluster|hsm/hsm)-[2-7a-zA-Z]{11,16}'),
  /** ResourcePolicy: a policy document, 1 to 20000 characters. */
  resourcePolicy: str(undefined, { min: 1, max: 20_000 }),
  nextToken: str('.*', { max: 256 }),
  boolean: { kind: 'boolean' },
  networkType: { kind: 'string', oneOf: ['IPV4', 'DUALSTACK'] },
  clusterMode: { kind: 'string', oneOf: ['FIPS', 'NON_FIPS'] },
  backupRetentionPolicy: {
    kind: 'structure',
    members: {
      Type: { kind: 'string', oneOf: ['DAYS'] },
      Value: str('[0-9]+', { min: 1, max: 3 })
    }
  },
  tagKey: str('^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$', { min: 1, max: 128, flags: 'u' }),
  tagValue: str('^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$', { min: 0, max: 256, flags: 'u' })
} as const satisfies Record<string, Spec>

const tag = { kind: 'structure', members: { Key: shapes.tagKey, Value: shapes.tagValue }, required: ['Key', 'Value'] } as const satisfies Spec
/** TagList: 1 to 50 tags. */
export const tagList = { kind: 'list', member: tag, min: 1, max: 50 } as const satisfies Spec
/** TagKeyList: 1 to 50 keys. */
export const tagKeyList = { kind: 'list', member: shapes.tagKey, min: 1, max: 50 } as const satisfies Spec
/** Filters: up to 30 fields, each a list of strings. */
export const filters = { kind: 'map', key: str('[a-zA-Z0-9_-]+'), value: { kind: 'list', member: { kind: 'string' } }, max: 30 } as const satisfies Spec

/** A `ws://host:port` endpoint (hsmlab's HsmlabSetHsmRoutes). */
const wsEndpoint = str('ws://[A-Za-z0-9.:\\[\\]-]+:[0-9]{1,5}', { max: 300 })
/** One route of HsmlabSetHsmRoutes. */
const hsmRoute = {
  kind: 'structure',
  members: { HsmId: shapes.hsmId, From: str('control-plane|hsm-[2-7a-zA-Z]{11,16}'), Endpoint: wsEndpoint, Upstream: wsEndpoint },
  required: ['HsmId', 'From', 'Endpoint']
} as const satisfies Spec

/** hsmlab's synchronisation tasks (issue 12): a user name as the HSMs take it. */
const syncUserName = str('[A-Za-z0-9_.@-]+', { min: 1, max: 32 })
/** The scope of a synchronisation task. */
const syncScope = {
  kind: 'structure',
  members: {
    Keys: {
      kind: 'structure',
      members: {
        All: { kind: 'boolean' },
        Owners: { kind: 'list', member: syncUserName, max: 1024 },
        Handles: { kind: 'list', member: { kind: 'integer', min: 0, max: 4_294_967_295 }, max: 10_000 }
      }
    },
    Users: { kind: 'list', member: syncUserName, max: 2048 }
  }
} as const satisfies Spec
const syncType = { kind: 'string', oneOf: ['KEYS', 'KEYS_AND_USERS'] } as const satisfies Spec
/** One replica of HsmlabCreateSyncTask. */
const syncReplica = {
  kind: 'structure',
  members: { ClusterId: shapes.clusterId, Region: shapes.region, SyncType: syncType },
  required: ['ClusterId', 'Region', 'SyncType']
} as const satisfies Spec

/** A request shape: its members and which are required, with their literal types kept for `Infer`. */
export function request<const M extends Record<string, Spec>, const R extends ReadonlyArray<keyof M & string> = readonly []> (members: M, required?: R): { kind: 'structure', members: M, required: R } {
  return { kind: 'structure', members, required: required ?? ([] as unknown as R) }
}

/**
 * The model's request shapes, by operation: the one list of the API's operations. Its keys are
 * the operation names (api-types.ts `ApiOperationName`), its shapes the request types
 * (`ApiRequest`); the operation table (api/operations.ts) must have a handler for each.
 */
export const requestShapes = {
  CreateCluster: request({
    BackupRetentionPolicy: shapes.backupRetentionPolicy,
    HsmType: shapes.hsmType,
    SourceBackupId: shapes.backupArn,
    SubnetIds: { kind: 'list', member: shapes.subnetId, min: 1, max: 10 },
    NetworkType: shapes.networkType,
    TagList: tagList,
    Mode: shapes.clusterMode
  }, ['HsmType', 'SubnetIds']),
  DescribeClusters: request({ Filters: filters, NextToken: shapes.nextToken, MaxResults: { kind: 'integer', min: 1, max: 25 } }),
  DeleteCluster: request({ ClusterId: shapes.clusterId }, ['ClusterId']),
  InitializeCluster: request({ ClusterId: shapes.clusterId, SignedCert: shapes.cert, TrustAnchor: shapes.cert }, ['ClusterId', 'SignedCert', 'TrustAnchor']),
  ModifyCluster: request({ HsmType: shapes.hsmType, BackupRetentionPolicy: shapes.backupRetentionPolicy, ClusterId: shapes.clusterId }, ['ClusterId']),
  CreateHsm: request({ ClusterId: shapes.clusterId, AvailabilityZone: shapes.externalAz, IpAddress: shapes.ipAddress }, ['ClusterId', 'AvailabilityZone']),
  DeleteHsm: request({ ClusterId: shapes.clusterId, HsmId: shapes.hsmId, EniId: shapes.eniId, EniIp: shapes.ipAddress }, ['ClusterId']),
  DescribeBackups: request({
    NextToken: shapes.nextToken,
    MaxResults: { kind: 'integer', min: 1, max: 50 },
    Filters: filters,
    Shared: shapes.boolean,
    SortAscending: shapes.boolean
  }),
  CopyBackupToRegion: request({ DestinationRegion: shapes.region, BackupId: shapes.backupId, TagList: tagList }, ['DestinationRegion', 'BackupId']),
  DeleteBackup: request({ BackupId: shapes.backupId }, ['BackupId']),
  RestoreBackup: request({ BackupId: shapes.backupId }, ['BackupId']),
  ModifyBackupAttributes: request({ BackupId: shapes.backupId, NeverExpires: shapes.boolean }, ['BackupId', 'NeverExpires']),
  TagResource: request({ ResourceId: shapes.resourceId, TagList: tagList }, ['ResourceId', 'TagList']),
  UntagResource: request({ ResourceId: shapes.resourceId, TagKeyList: tagKeyList }, ['ResourceId', 'TagKeyList']),
  ListTags: request({ ResourceId: shapes.resourceId, NextToken: shapes.nextToken, MaxResults: { kind: 'integer', min: 1, max: 100 } }, ['ResourceId']),
  // The model requires no member of these three; the handlers ask for what they need (api/resource-policies.ts).
  GetResourcePolicy: request({ ResourceArn: shapes.cloudHsmArn }),
  PutResourcePolicy: request({ ResourceArn: shapes.cloudHsmArn, Policy: shapes.resourcePolicy }),
  DeleteResourcePolicy: request({ ResourceArn: shapes.cloudHsmArn }),
  HsmlabCreateBackup: request({ ClusterId: shapes.clusterId }, ['ClusterId']),
  HsmlabSetHsmRoutes: request({ Routes: { kind: 'list', member: hsmRoute, max: 10_000 } }, ['Routes']),
  HsmlabDescribeHsmRoutes: request({}),
  // The replicas' count is checked by the handler, to say what is in the way (syncReplicasMax).
  HsmlabCreateSyncTask: request({ ClusterId: shapes.clusterId, Replicas: { kind: 'list', member: syncReplica, min: 1, max: 10 }, Scope: syncScope }, ['ClusterId', 'Replicas']),
  HsmlabDescribeSyncTasks: request({ ClusterId: shapes.clusterId }),
  HsmlabAssociateSyncReplica: request({ ClusterId: shapes.clusterId, ReplicaClusterId: shapes.clusterId, ReplicaRegion: shapes.region, SyncType: syncType },
    ['ClusterId', 'ReplicaClusterId', 'ReplicaRegion', 'SyncType']),
  // Confirm is checked by the handler, to say why it is needed.
  HsmlabDisassociateSyncReplica: request({ ClusterId: shapes.clusterId, ReplicaClusterId: shapes.clusterId, Confirm: shapes.boolean }, ['ClusterId', 'ReplicaClusterId']),
  HsmlabAddSyncResources: request({ ClusterId: shapes.clusterId, Scope: syncScope }, ['ClusterId', 'Scope']),
  // Always refused (the scope only grows); its members are read to name the task in the answer.
  HsmlabRemoveSyncResources: request({ ClusterId: shapes.clusterId, Scope: syncScope }),
  HsmlabListSyncResources: request({
    ClusterId: shapes.clusterId,
    ReplicaClusterId: shapes.clusterId,
    Status: { kind: 'string', oneOf: ['SYNCHRONIZING', 'SYNCHRONIZED', 'FAILED'] },
    ResourceType: { kind: 'string', oneOf: ['KEY', 'USER'] },
    MaxResults: { kind: 'integer', min: 1, max: 10_000 },
    NextToken: shapes.nextToken
  }, ['ClusterId'])
} as const

const regexCache = new Map<string, RegExp>()
function fullMatch (pattern: string, flags: string | undefined, value: string): boolean {
  const key = `${flags ?? ''}/${pattern}`
  let re = regexCache.get(key)
  if (re === undefined) {
    re = new RegExp(`^(?:${pattern})$`, flags)
    regexCache.set(key, re)
  }
  return re.test(value)
}

function lowerFirst (name: string): string {
  return name.length === 0 ? name : name[0]?.toLowerCase() + name.slice(1)
}

function show (value: unknown): string {
  if (value === null || value === undefined) return 'null'
  if (typeof value === 'string') return `'${value}'`
  try {
    return `'${JSON.stringify(value)}'`
  } catch {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- what JSON cannot show (a cycle) shows as String shows it
    return `'${String(value)}'`
  }
}

function check (value: unknown, spec: Spec, path: string, errors: string[]): void {
  const fail = (constraint: string): void => { errors.push(`Value ${show(value)} at '${path}' failed to satisfy constraint: ${constraint}`) }
  switch (spec.kind) {
    case 'string': {
      if (typeof value !== 'string') { fail('Member must be a string'); return }
      const length = [...value].length
      if (spec.min !== undefined && length < spec.min) fail(`Member must have length greater than or equal to ${spec.min}`)
      if (spec.max !== undefined && length > spec.max) fail(`Member must have length less than or equal to ${spec.max}`)
      if (spec.oneOf !== undefined && !spec.oneOf.includes(value)) fail(`Member must satisfy enum value set: [${spec.oneOf.join(', ')}]`)
      if (spec.pattern !== undefined && !fullMatch(spec.pattern, spec.flags, value)) fail(`Member must satisfy regular expression pattern: ${spec.pattern}`)
      return
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail('Member must be a boolean')
      return
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) { fail('Member must be an integer'); return }
      if (spec.min !== undefined && value < spec.min) fail(`Member must have value greater than or equal to ${spec.min}`)
      if (spec.max !== undefined && value > spec.max) fail(`Member must have value less than or equal to ${spec.max}`)
      return
    case 'list':
      if (!Array.isArray(value)) { fail('Member must be a list'); return }
      if (spec.min !== undefined && value.length < spec.min) fail(`Member must have length greater than or equal to ${spec.min}`)
      if (spec.max !== undefined && value.length > spec.max) fail(`Member must have length less than or equal to ${spec.max}`)
      value.forEach((item, i) => { check(item, spec.member, `${path}.${i + 1}.member`, errors) })
      return
    case 'map': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) { fail('Member must be a map'); return }
      const entries = Object.entries(value)
      if (spec.max !== undefined && entries.length > spec.max) fail(`Member must have length less than or equal to ${spec.max}`)
      for (const [k, v] of entries) {
        check(k, spec.key, `${path}.${k}.key`, errors)
        check(v, spec.value, `${path}.${k}.value`, errors)
      }
      return
    }
    case 'structure': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) { fail('Member must be a structure'); return }
      const record = value as Record<string, unknown>
      for (const name of spec.required ?? []) {
        if (record[name] === undefined || record[name] === null) {
          errors.push(`Value null at '${path === '' ? '' : `${path}.`}${lowerFirst(name)}' failed to satisfy constraint: Member must not be null`)
        }
      }
      for (const [name, member] of Object.entries(spec.members)) {
        const v = record[name]
        if (v === undefined || v === null) continue
        check(v, member, path === '' ? lowerFirst(name) : `${path}.${lowerFirst(name)}`, errors)
      }
    }
  }
}

/** The violations of `input` against `spec`, worded as AWS words them (empty when it fits). */
export function violations (input: unknown, spec: Spec): string[] {
  const errors: string[] = []
  check(input, spec, '', errors)
  return errors
}

/** Throws CloudHsmInvalidRequestException listing every violation, unless `input` fits `spec`. */
export function validate<T> (input: unknown, spec: Spec): T {
  const errors = violations(input, spec)
  if (errors.length > 0) {
    throw invalidRequest(`${errors.length} validation error${errors.length === 1 ? '' : 's'} detected: ${errors.join('; ')}`)
  }
  return input as T
}

/** True when `value` fits a string shape (for filter values and ids given in other places). */
export function fits (value: string, spec: Spec): boolean {
  return violations(value, spec).length === 0
}
