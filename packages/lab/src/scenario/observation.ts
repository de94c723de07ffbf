/**
 * What the lab holds once it settled, read through the client library and the cloudhsmv2 API the
 * way a person would check it with CMU, KMU and the AWS CLI: per HSM its users (listUsers), its
 * keys (findAllKeys per crypto user as the officer; getKeyInfo as the officer and getAttribute as
 * the owner, for each), the key hash findAllKeys gives, and whether each user the run created can
 * log in; per region its backups (DescribeBackups). The checkers judge this against the history;
 * the types here are all they see of the lab.
 */
import type { HsmConnection } from '@hsmlab/client'
import type { ControlPlaneClient } from '@hsmlab/control-plane'
import { Attribute } from '@hsmlab/protocol'
import type { OperationRecord } from './history.js'
import { HsmSessions, describeError } from './hsm-sessions.js'
import type { ClusterServers, Credential } from './hsm-sessions.js'
import type { ScenarioCluster } from './scenario-file.js'
import { observeSyncTasks } from './sync-watch.js'
import type { ObservedSyncTask, SeenSyncFailure } from './sync-watch.js'

/** One key as an HSM shows it. */
export interface ObservedKey {
  handle: number
  /** Owner's user id (getKeyInfo). */
  owner: number
  /** Owner's name on this HSM (listUsers), when it has one. */
  ownerName?: string
  label?: string
  /** OBJ_ATTR_KCV: the key check value, the same on every copy of one key. */
  kcv?: string
  keyType?: number
  valueLen?: number
  /** Why getKeyInfo or getAttribute failed for a key findAllKeys lists: the key is not whole. */
  unreadable?: string
}

/** One user as listUsers shows it. */
export interface ObservedUser {
  userId: number
  userName: string
  userType: string
}

/** One HSM. */
export interface ObservedHsm {
  /** `<region>/<cluster>`. */
  cluster: string
  server: number
  /** `<region>/<cluster>/hsm-N`. */
  name: string
  /** Why it could not be read at all. */
  unreachable?: string
  users: ObservedUser[]
  keys: ObservedKey[]
  /** findAllKeys with hash, per crypto user with keys (the hash covers every key of the HSM). */
  keyHashes: Array<{ userId: number, userName: string, hash: string | null, handles: number[] }>
  /** A login attempt for each user of the run found on this HSM. */
  logins: Array<{ userName: string, ok: boolean, cause?: string }>
}

/** One backup of a region. */
export interface ObservedBackup {
  backupId: string
  region: string
  state: string
  stateMessage?: string
  clusterId?: string
  /** For a copy: the backup it copies, and its region. */
  sourceBackup?: string
  sourceRegion?: string
  /** It existed before the run started. */
  preexisting: boolean
}

/** Everything the checkers see of the lab. */
export interface Observation {
  clusters: Array<{ ref: string, region: string, hsms: number, cloneOf?: string }>
  hsms: ObservedHsm[]
  backups: ObservedBackup[]
  /** The synchronisation tasks of the lab once it settled, with their records (none: the lab has none). */
  syncTasks?: ObservedSyncTask[]
  /** Every FAILED record seen while the run went on, with its cause. */
  syncFailuresSeen?: SeenSyncFailure[]
}

/** What the observer needs. */
export interface ObserveContext {
  clusters: Map<string, ScenarioCluster>
  servers: Map<string, ClusterServers>
  api: (region: string) => ControlPlaneClient
  regions: string[]
  preexistingBackups: Set<string>
  history: readonly OperationRecord[]
  requestTimeoutMs: number
  connectTimeoutMs: number
  /** Scenario name → cluster id, to name the clusters of the synchronisation tasks. */
  clusterIds?: ReadonlyMap<string, string>
  /** The FAILED records seen while the run went on (SyncWatch). */
  syncFailuresSeen?: SeenSyncFailure[]
}

/** Every backup of a region (DescribeBackups, every page). */
export async function describeAllBackups (api: ControlPlaneClient): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = []
  let token: string | undefined
  do {
    const page = await api.describeBackups({ MaxResults: 50, ...(token === undefined ? {} : { NextToken: token }) })
    out.push(...(page.Backups as unknown as Array<Record<string, unknown>>))
    token = page.NextToken
  } while (token !== undefined && token !== '')
  return out
}

function attributeValue (value: unknown): string | number | undefined {
  if (typeof value === 'string' || typeof value === 'number') return value
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex')
  return undefined
}

async function observeHsm (ctx: ObserveContext, sessions: HsmSessions, cluster: ScenarioCluster, server: number): Promise<ObservedHsm> {
  const out: ObservedHsm = { cluster: cluster.ref, server, name: `${cluster.ref}/hsm-${server}`, users: [], keys: [], keyHashes: [], logins: [] }
  const officer: Credential = { type: 'CO', name: cluster.officer.name, password: cluster.officer.password }
  try {
    const co = await sessions.session(cluster.ref, server, officer)
    out.users = (await co.call('listUsers', {})).users.map(u => ({ userId: u.userId, userName: u.userName, userType: u.userType }))
    // Every crypto user's keys, as the officer sees them (findAllKeys), read as their owner where the run knows the password.
    const passwords = new Map<string, string>()
    for (const u of cluster.cryptoUsers) passwords.set(u.name.toLowerCase(), u.password)
    for (const r of ctx.history) if (r.op === 'createUser' && r.userName !== undefined && r.password !== undefined) passwords.set(r.userName.toLowerCase(), r.password)
    for (const user of out.users.filter(u => u.userType === 'CU')) {
      const listed = await co.call('findAllKeys', { userId: user.userId, withHash: true })
      const owned = listed.keys.filter(k => k.relation === 'owned').map(k => k.handle)
      if (listed.keys.length > 0) out.keyHashes.push({ userId: user.userId, userName: user.userName, hash: listed.hash ?? null, handles: listed.keys.map(k => k.handle) })
      const password = passwords.get(user.userName.toLowerCase())
      let cu: HsmConnection | undefined
      let cuProblem: string | undefined
      if (password !== undefined && owned.length > 0) {
        try {
          cu = await sessions.session(cluster.ref, server, { type: 'CU', name: user.userName, password })
        } catch (err) {
          cuProblem = `its owner ${user.userName} cannot log in to read it: ${describeError(err)}`
        }
      }
      for (const handle of owned) {
        const key: ObservedKey = { handle, owner: user.userId, ownerName: user.userName }
        if (cuProblem !== undefined) key.unreadable = cuProblem
        try {
          const info = await co.call('getKeyInfo', { handle })
          key.owner = info.owner
          if (cu !== undefined) {
            const { attributes } = await cu.call('getAttribute', { handle, attribute: Attribute.ALL })
            for (const a of attributes) {
              const value = attributeValue(a.value)
              if (a.id === Attribute.LABEL && typeof value === 'string') key.label = value
              else if (a.id === Attribute.KCV && value !== undefined) key.kcv = String(value)
              else if (a.id === Attribute.KEY_TYPE && typeof value === 'number') key.keyType = value
              else if (a.id === Attribute.VALUE_LEN && typeof value === 'number') key.valueLen = value
            }
          }
        } catch (err) {
          key.unreadable = describeError(err)
        }
        out.keys.push(key)
      }
    }
    // Can each user of the run that is here log in? A fresh connection each, so no session is left logged in.
    const runUsers = ctx.history.filter(r => r.op === 'createUser' && r.userName !== undefined && r.password !== undefined)
    const seen = new Set<string>()
    for (const r of runUsers) {
      const name = r.userName ?? ''
      if (seen.has(name.toLowerCase())) continue
      seen.add(name.toLowerCase())
      const here = out.users.find(u => u.userName.toLowerCase() === name.toLowerCase())
      if (here === undefined) continue
      const credential: Credential = { type: here.userType === 'CO' ? 'CO' : 'CU', name: here.userName, password: r.password ?? '' }
      try {
        await sessions.session(cluster.ref, server, credential)
        out.logins.push({ userName: here.userName, ok: true })
      } catch (err) {
        out.logins.push({ userName: here.userName, ok: false, cause: describeError(err) })
      } finally {
        await sessions.drop(cluster.ref, server, credential)
      }
    }
  } catch (err) {
    out.unreachable = describeError(err)
  }
  return out
}

/** Reads the lab; see the module comment. */
export async function observe (ctx: ObserveContext): Promise<Observation> {
  const sessions = new HsmSessions(ctx.servers, { connectTimeoutMs: ctx.connectTimeoutMs, requestTimeoutMs: ctx.requestTimeoutMs })
  try {
    const clusters = [...ctx.clusters.values()]
    const hsms = await Promise.all(clusters.flatMap(cluster =>
      [...Array(sessions.size(cluster.ref)).keys()].map(async server => await observeHsm(ctx, sessions, cluster, server))))
    const backups: ObservedBackup[] = []
    for (const region of ctx.regions) {
      for (const b of await describeAllBackups(ctx.api(region))) {
        const backupId = String(b.BackupId)
        backups.push({
          backupId,
          region,
          state: String(b.BackupState),
          preexisting: ctx.preexistingBackups.has(backupId),
          ...(typeof b.StateMessage === 'string' ? { stateMessage: b.StateMessage } : {}),
          ...(typeof b.ClusterId === 'string' ? { clusterId: b.ClusterId } : {}),
          ...(typeof b.SourceBackup === 'string' ? { sourceBackup: b.SourceBackup } : {}),
          ...(typeof b.SourceRegion === 'string' ? { sourceRegion: b.SourceRegion } : {})
        })
      }
    }
    const syncTasks = await observeSyncTasks(ctx.regions, ctx.api, ctx.clusterIds ?? new Map())
    return {
      clusters: clusters.map(c => ({ ref: c.ref, region: c.region, hsms: sessions.size(c.ref), ...(c.cloneOf === undefined ? {} : { cloneOf: c.cloneOf }) })),
      hsms,
      backups,
      syncTasks,
      syncFailuresSeen: ctx.syncFailuresSeen ?? []
    }
  } finally {
    await sessions.close()
  }
}
