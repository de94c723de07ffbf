/**
 * The check API (docs/exercises.md "The check API"): what an exercise's checks.js is given to look
 * at the live lab. Every read goes to the real HSMs and control planes, as the lab's crypto
 * officer would read them with the client library the shells are built on: users per HSM, a
 * password tried per HSM, keys and their hashes per HSM (findAllKeys), one key's owner and shared
 * users (getKeyInfo), clusters, HSMs and backups from the control planes.
 *
 * Servers are numbered as the lab's CMU configurations number them: the cluster's HSMs in the
 * order DescribeClusters lists them, deleted ones left out; a reason names `server N (hsm-...)`.
 * Nothing here returns or prints a password: a check learns only whether one works.
 *
 * A check never locks a user out by trying a password: on an HSM where the user already has
 * `loginFailuresTriedMax` failed logins or more it does not try, and says so.
 */
import { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { Backup, Cluster, Hsm } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { LabLayout, readLabState } from '@hsmlab/lab'
import type { UserInfo, UserType } from '@hsmlab/protocol'
import { exerciseDefaults } from './defaults.js'
import { ExerciseError, EXERCISE_ERR_CHECK, EXERCISE_ERR_NOT_STARTED } from './errors.js'
import type { ExerciseValue } from './seeded-values.js'
import type { Credential } from './credential.js'

/**
 * One step's check: resolves with the reasons the step is not done yet (none: done). A string is
 * one reason; `undefined`, `true` or an empty list mean done.
 */
export type StepCheck = (lab: CheckLab) => Promise<string[] | string | boolean | undefined>

/** An HSM as a reason names it. */
export interface HsmRef {
  /** Its place in the cluster's CMU configuration (`server N`). */
  server: number
  hsmId: string
  /** `server N (hsm-...)`. */
  label: string
}

/** What one HSM answered. */
export type HsmAnswer<T> = HsmRef & ({ ok: true, value: T } | { ok: false, error: string })

/** A cluster as the control plane of its region describes it. */
export interface ClusterSummary {
  id: string
  region: string
  /** Its name in the lab's topology; null for a cluster the lab did not make (one the learner made). */
  name: string | null
  state: string
  sourceBackupId: string | null
  /** The HSMs that are not deleted, in server order. */
  hsms: Array<{ id: string, state: string, server: number, availabilityZone: string }>
}

/** A backup as DescribeBackups tells it. */
export interface BackupSummary {
  id: string
  region: string
  state: string
  clusterId: string | null
  sourceRegion: string | null
  sourceBackupId: string | null
  sourceCluster: string | null
  /** Seconds since the epoch, as DescribeBackups tells it. */
  createdAt: number | null
}

/** Whether a password works on one HSM. */
export interface LoginOutcome {
  ok: boolean
  /** Why not: the HSM's answer, `locked out`, or that the check did not try. */
  reason?: string
  /** The user's failed logins there before the try. */
  failures?: number
}

/** What findAllKeys tells for one user on one HSM. */
export interface KeysOf {
  handles: number[]
  /** findAllKeys' key hash (of every key of the HSM); absent when the user has no key. */
  hash?: string
}

/** What getKeyInfo tells of one key on one HSM, with user names. */
export interface KeyDetails {
  owner: string
  sharedWith: string[]
}

/** One record of a synchronisation task (HsmlabListSyncResources): one resource on one replica. */
export interface SyncRecord {
  /** A key: its handle on the primary, in decimal; a user: its name. */
  resourceId: string
  resourceType: 'KEY' | 'USER'
  replicaClusterId: string
  /** `region/name` of the replica when the lab made it, else null. */
  replica: string | null
  status: 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'FAILED'
  failureCause: { code: string, message: string } | null
  /** Epoch seconds. */
  lastAttemptAt: number | null
  lastSuccessAt: number | null
  attempts: number
}

/** How a check session reaches the lab. */
export interface CheckLabInit {
  dir: string
  values: Readonly<Record<string, ExerciseValue>>
  seed: number
  credentials: readonly Credential[]
}

function messageOf (err: unknown): string {
  const e = err as { detail?: string, returnCode?: { name: string }, message?: string }
  if (e.returnCode !== undefined) return e.detail === undefined ? e.returnCode.name : `${e.returnCode.name}: ${e.detail}`
  return e.message ?? String(err)
}

/** `server 0, 2` / `server 1`: the servers of some answers, for a reason. */
export function serversOf (answers: ReadonlyArray<Pick<HsmRef, 'server'>>): string {
  return answers.length === 0 ? 'no server' : `server ${answers.map(a => a.server).join(', ')}`
}

/**
 * One check session on a lab: `check` makes one for all of an exercise's checks, and closes it.
 * Descriptions and connections are kept for the session, so several checks cost one connection per HSM.
 */
export class CheckLab {
  /** The exercise's values: its random ones (from the seed) and those its setup recorded. */
  readonly values: Readonly<Record<string, ExerciseValue>>
  readonly seed: number
  private readonly init: CheckLabInit
  private readonly apis = new Map<string, ControlPlaneClient>()
  private readonly described = new Map<string, Promise<Cluster[]>>()
  private readonly connections = new Map<string, Promise<HsmConnection>>()
  private readonly queues = new Map<string, Promise<unknown>>()
  private labNames: Map<string, string> | undefined
  private labRefs = new Map<string, string>()

  constructor (init: CheckLabInit) {
    this.init = init
    this.values = init.values
    this.seed = init.seed
  }

  private async load (): Promise<void> {
    if (this.labNames !== undefined) return
    const lab = await readLabState(new LabLayout(this.init.dir))
    if (lab === undefined) throw new ExerciseError(EXERCISE_ERR_NOT_STARTED, `there is no lab in ${this.init.dir}`)
    for (const cp of lab.controlPlanes) {
      this.apis.set(cp.region, new ControlPlaneClient({ endpoint: cp.endpoint ?? `http://127.0.0.1:${cp.port}`, region: cp.region, timeoutMs: exerciseDefaults.requestTimeoutMs }))
    }
    this.labNames = new Map(lab.clusters.filter(c => c.id !== null).map(c => [c.id as string, c.name]))
    this.labRefs = new Map(lab.clusters.filter(c => c.id !== null).map(c => [c.id as string, `${c.region}/${c.name}`]))
  }

  /** The regions of the lab. */
  async regions (): Promise<string[]> {
    await this.load()
    return [...this.apis.keys()]
  }

  private api (region: string): ControlPlaneClient {
    const api = this.apis.get(region)
    if (api === undefined) throw new ExerciseError(EXERCISE_ERR_CHECK, `the lab has no region ${region} (its regions: ${[...this.apis.keys()].join(', ')})`)
    return api
  }

  private async rawClusters (region: string): Promise<Cluster[]> {
    await this.load()
    let p = this.described.get(region)
    if (p === undefined) {
      p = this.api(region).describeClusters().then(r => r.Clusters ?? [])
      this.described.set(region, p)
    }
    return await p
  }

  private summary (region: string, c: Cluster): ClusterSummary {
    return {
      id: c.ClusterId ?? '',
      region,
      name: this.labNames?.get(c.ClusterId ?? '') ?? null,
      state: c.State ?? 'UNKNOWN',
      sourceBackupId: c.SourceBackupId ?? null,
      hsms: liveHsms(c).map((h, server) => ({ id: h.HsmId ?? '', state: h.State ?? 'UNKNOWN', server, availabilityZone: h.AvailabilityZone ?? '' }))
    }
  }

  /** The clusters of one region (every region without one), deleted ones left out. */
  async clusters (region?: string): Promise<ClusterSummary[]> {
    const regions = region === undefined ? await this.regions() : [region]
    const out: ClusterSummary[] = []
    for (const r of regions) out.push(...(await this.rawClusters(r)).filter(c => c.State !== 'DELETED').map(c => this.summary(r, c)))
    return out
  }

  /** The backups of one region, oldest first. */
  async backups (region: string): Promise<BackupSummary[]> {
    await this.load()
    const backups: Backup[] = (await this.api(region).describeBackups()).Backups ?? []
    return backups.map(b => ({
      id: b.BackupId,
      region,
      state: b.BackupState ?? 'UNKNOWN',
      clusterId: b.ClusterId ?? null,
      sourceRegion: b.SourceRegion ?? null,
      sourceBackupId: b.SourceBackup ?? null,
      sourceCluster: b.SourceCluster ?? null,
      createdAt: b.CreateTimestamp ?? null
    })).sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0))
  }

  /** A cluster: `region/name` of the lab, or a cluster id (of any region). */
  async cluster (ref: string): Promise<ClusterView> {
    await this.load()
    const [region, name, ...rest] = ref.split('/')
    for (const r of region !== undefined && name !== undefined && rest.length === 0 ? [region] : [...this.apis.keys()]) {
      for (const c of await this.rawClusters(r)) {
        if (c.State === 'DELETED') continue
        const labName = this.labNames?.get(c.ClusterId ?? '')
        if (c.ClusterId === ref || (name !== undefined && labName === name)) {
          return new ClusterView(this, r, labName === undefined ? (c.ClusterId ?? ref) : `${r}/${labName}`, c)
        }
      }
    }
    throw new ExerciseError(EXERCISE_ERR_CHECK, `the lab has no cluster ${ref}`)
  }

  /**
   * The records of the synchronisation task whose primary is `ref` (`region/name` or a cluster
   * id), every page, as the primary's control plane lists them; `status` and `replica` filter.
   */
  async syncResources (ref: string, filters: { status?: SyncRecord['status'], replica?: string } = {}): Promise<SyncRecord[]> {
    const primary = await this.cluster(ref)
    const replicaId = filters.replica === undefined ? undefined : (await this.cluster(filters.replica)).id
    const records = await this.api(primary.region).allSyncResources({
      ClusterId: primary.id,
      ...(filters.status === undefined ? {} : { Status: filters.status }),
      ...(replicaId === undefined ? {} : { ReplicaClusterId: replicaId })
    })
    return records.map(r => ({
      resourceId: r.ResourceId,
      resourceType: r.ResourceType,
      replicaClusterId: r.ReplicaClusterId,
      replica: this.labRefs.get(r.ReplicaClusterId) ?? null,
      status: r.Status,
      failureCause: r.FailureCause === null ? null : { code: r.FailureCause.Code, message: r.FailureCause.Message },
      lastAttemptAt: r.LastAttemptAt,
      lastSuccessAt: r.LastSuccessAt,
      attempts: r.Attempts
    }))
  }

  /** The lab's crypto officer for reads on a cluster (exercise.json's credentials). */
  officerFor (ref: string): Credential | undefined {
    const cos = this.init.credentials.filter(c => c.type === 'CO')
    return cos.find(c => c.cluster === ref) ?? cos.find(c => c.cluster === undefined) ?? cos[0]
  }

  /** The open connection to an HSM (one per session). */
  async connection (hsm: Hsm, trustAnchor: string): Promise<HsmConnection> {
    const id = hsm.HsmId ?? ''
    let p = this.connections.get(id)
    if (p === undefined) {
      p = HsmConnection.connect({
        url: hsm.HsmlabEndpoint ?? '',
        trustAnchor: decodeTrustAnchor(trustAnchor),
        connectTimeoutMs: exerciseDefaults.connectTimeoutMs,
        requestTimeoutMs: exerciseDefaults.requestTimeoutMs
      })
      // A failed connection is tried again by the next call, not kept.
      p.catch(() => { this.connections.delete(id) })
      this.connections.set(id, p)
    }
    return await p
  }

  /** Runs `work` alone on the HSM's connection (a login holds it until it logs out). */
  async exclusive<T> (hsmId: string, work: () => Promise<T>): Promise<T> {
    const before = this.queues.get(hsmId) ?? Promise.resolve()
    const run = before.then(work, work)
    this.queues.set(hsmId, run.catch(() => undefined))
    return await run
  }

  /** Closes every connection. */
  async close (): Promise<void> {
    const all = [...this.connections.values()]
    this.connections.clear()
    await Promise.all(all.map(async p => { try { await (await p).close() } catch { /* never opened */ } }))
  }
}

function liveHsms (c: Cluster): Hsm[] {
  return (c.Hsms ?? []).filter(h => h.State !== 'DELETED')
}

/** One cluster's HSMs, read one by one (in parallel across HSMs). */
export class ClusterView {
  /** `region/name` for a cluster of the lab, its id otherwise. */
  readonly ref: string
  readonly region: string
  readonly id: string
  readonly state: string
  private readonly lab: CheckLab
  private readonly cluster: Cluster

  constructor (lab: CheckLab, region: string, ref: string, cluster: Cluster) {
    this.lab = lab
    this.region = region
    this.ref = ref
    this.cluster = cluster
    this.id = cluster.ClusterId ?? ref
    this.state = cluster.State ?? 'UNKNOWN'
  }

  /** The HSMs, in server order, with their state. */
  hsms (): Array<HsmRef & { state: string }> {
    return liveHsms(this.cluster).map((h, server) => ({ server, hsmId: h.HsmId ?? '', label: `server ${server} (${h.HsmId ?? ''})`, state: h.State ?? 'UNKNOWN' }))
  }

  /** Runs `work` on every ACTIVE HSM at once (others answer with an error), with a session that is logged out afterwards. */
  async onEach<T> (work: (connection: HsmConnection, ref: HsmRef) => Promise<T>): Promise<Array<HsmAnswer<T>>> {
    const anchor = this.cluster.HsmlabTrustAnchor
    return await Promise.all(liveHsms(this.cluster).map(async (hsm, server): Promise<HsmAnswer<T>> => {
      const ref: HsmRef = { server, hsmId: hsm.HsmId ?? '', label: `server ${server} (${hsm.HsmId ?? ''})` }
      if (hsm.State !== 'ACTIVE' || anchor === undefined || hsm.HsmlabEndpoint === undefined) return { ...ref, ok: false, error: `the HSM is ${hsm.State ?? 'not ready'}` }
      try {
        const connection = await this.lab.connection(hsm, anchor)
        const value = await this.lab.exclusive(ref.hsmId, async () => {
          try {
            return await work(connection, ref)
          } finally {
            // Whoever the work logged in as: the next work on this connection starts logged out.
            await connection.call('logout', {}).catch(() => undefined)
          }
        })
        return { ...ref, ok: true, value }
      } catch (err) {
        return { ...ref, ok: false, error: messageOf(err) }
      }
    }))
  }

  /** listUsers on every HSM. */
  async users (): Promise<Array<HsmAnswer<UserInfo[]>>> {
    return await this.onEach(async c => (await c.call('listUsers', {})).users)
  }

  /** One user on every HSM (undefined where it does not exist). */
  async user (name: string): Promise<Array<HsmAnswer<UserInfo | undefined>>> {
    return (await this.users()).map(a => a.ok ? { ...a, value: a.value.find(u => u.userName.toLowerCase() === name.toLowerCase()) } : a)
  }

  /**
   * Whether `password` logs `name` in on every HSM (then logs out). Where the user already has
   * `loginFailuresTriedMax` failed logins it does not try (the try could lock the user out).
   */
  async tryLogin (type: UserType, name: string, password: string): Promise<Array<HsmAnswer<LoginOutcome>>> {
    return await this.onEach(async c => {
      const user = (await c.call('listUsers', {})).users.find(u => u.userName.toLowerCase() === name.toLowerCase())
      if (user === undefined) return { ok: false, reason: `there is no user ${name}` }
      const failures = user.loginFailureCount
      if (failures >= exerciseDefaults.loginFailuresTriedMax) return { ok: false, failures, reason: `${name} has ${failures} failed logins (locked out, or nearly: not tried)` }
      try {
        await c.call('login', { userType: type, userName: name, password })
        return { ok: true, failures }
      } catch (err) {
        return { ok: false, failures, reason: messageOf(err) }
      }
    })
  }

  private async asOfficer<T> (c: HsmConnection, work: () => Promise<T>): Promise<T> {
    const co = this.lab.officerFor(this.ref)
    if (co === undefined) throw new ExerciseError(EXERCISE_ERR_CHECK, 'the exercise names no crypto officer (credentials) to read keys with')
    await c.call('login', { userType: 'CO', userName: co.name, password: co.password })
    return await work()
  }

  /** findAllKeys for user `owner` (a name) with the key hash, on every HSM, as the lab's crypto officer. */
  async keys (owner: string): Promise<Array<HsmAnswer<KeysOf>>> {
    return await this.onEach(async c => await this.asOfficer(c, async () => {
      const user = (await c.call('listUsers', {})).users.find(u => u.userName.toLowerCase() === owner.toLowerCase())
      if (user === undefined) throw new ExerciseError(EXERCISE_ERR_CHECK, `there is no user ${owner}`)
      const found = await c.call('findAllKeys', { userId: user.userId, withHash: true })
      return found.hash === undefined ? { handles: found.keys.map(k => k.handle) } : { handles: found.keys.map(k => k.handle), hash: found.hash }
    }))
  }

  /** getKeyInfo of one key on every HSM, as the lab's crypto officer; undefined where there is no such key. */
  async keyInfo (handle: number): Promise<Array<HsmAnswer<KeyDetails | undefined>>> {
    return await this.onEach(async c => await this.asOfficer(c, async () => {
      const names = new Map((await c.call('listUsers', {})).users.map(u => [u.userId, u.userName]))
      try {
        const info = await c.call('getKeyInfo', { handle })
        return { owner: names.get(info.owner) ?? `user ${info.owner}`, sharedWith: info.sharedWith.map(id => names.get(id) ?? `user ${id}`) }
      } catch (err) {
        if ((err as { returnCode?: { name: string } }).returnCode?.name === 'RET_INVALID_HANDLE') return undefined
        throw err
      }
    }))
  }

  /**
   * Logs in as crypto user `name` and tries to delete key `handle` on every HSM: true where the
   * HSM refused. Never tried where `name` owns the key (an owner may delete it: the check must
   * not destroy the learner's work); that HSM answers an error saying so.
   */
  async deleteRefused (name: string, password: string, handle: number): Promise<Array<HsmAnswer<{ refused: boolean, answer: string }>>> {
    return await this.onEach(async c => {
      const { userId } = await c.call('login', { userType: 'CU', userName: name, password })
      let info
      try {
        info = await c.call('getKeyInfo', { handle })
      } catch (err) {
        return { refused: true, answer: messageOf(err) }
      }
      if (info.owner === userId) throw new ExerciseError(EXERCISE_ERR_CHECK, `${name} owns key ${handle} here; not tried`)
      try {
        await c.call('deleteKey', { handle })
        return { refused: false, answer: 'deleted' }
      } catch (err) {
        return { refused: true, answer: messageOf(err) }
      }
    })
  }
}
