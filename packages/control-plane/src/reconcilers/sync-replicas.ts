/**
 * The replica's side of synchronisation tasks (issue 12), in the replica cluster's region: the
 * internal paths a primary's control plane calls (sync-protocol.ts), and the synchronisation role
 * of every HSM of a replica cluster. While a cluster is a replica (or, for good, once it was
 * disassociated) each of its HSMs holds a durable role, signed by the cluster's trust anchor
 * under a version never used before (`setSyncRole`), that makes it refuse client changes; an HSM
 * added later gets it too, as the peer reconciler hands out peer lists.
 *
 * Applying goes to one ACTIVE HSM of the replica (`syncApply`, atomic and idempotent per
 * resource); the HSM spreads what it applied in its cluster. The HSM gets its role first.
 */
import type { SyncResource, SyncRole } from '@hsmlab/protocol'
import { SYNC_BATCH_KEYS_MAX, SYNC_BATCH_USERS_MAX } from '@hsmlab/protocol'
import type { AnchorKeyring } from '../anchor-keyring.js'
import type { HsmCaller, SyncHsmCaller } from '../hsm-links.js'
import type { SyncReplicaOfRecord } from '../state-store.js'
import {
  SYNC_NOT_ASSOCIATED, SYNC_REFUSED, isSyncApplyRequest, isSyncAssociateRequest, isSyncDisassociateRequest, isSyncInventoryRequest, syncErrorBody
} from '../sync-protocol.js'
import type { SyncApplyAnswer, SyncInventoryAnswer } from '../sync-protocol.js'
import type { HsmDirectory } from './hsm-directory.js'
import type { ReconcilerComponents } from './runtime.js'

/** An answer of an internal path. */
export interface SyncAnswer {
  status: number
  body: unknown
}

/** What the internal paths (server.ts) ask of the replica side. */
export interface SyncEndpoints {
  inventory: (body: unknown) => Promise<SyncAnswer>
  associate: (body: unknown) => Promise<SyncAnswer>
  disassociate: (body: unknown) => Promise<SyncAnswer>
  apply: (body: unknown) => Promise<SyncAnswer>
}

const badBody = (path: string): SyncAnswer => ({ status: 400, body: { __type: 'SerializationException', message: `the body of ${path} is not a synchronisation request` } })
const refused = (message: string): SyncAnswer => ({ status: 400, body: syncErrorBody(SYNC_REFUSED, message) })
const iso = (labMs: number | undefined): string => new Date(labMs ?? 0).toISOString()

/** The replica side of synchronisation tasks. */
export class SyncReplicaReconciler implements SyncEndpoints {
  private readonly c: ReconcilerComponents
  private readonly keyring: Pick<AnchorKeyring, 'has' | 'signSyncRole'>
  private readonly directory: HsmDirectory
  private readonly links: HsmCaller
  private readonly sync: SyncHsmCaller
  private readonly region: string
  /** The role each HSM last took, as `role:primary`. */
  private readonly pushed = new Map<string, string>()

  constructor (components: ReconcilerComponents & {
    keyring: Pick<AnchorKeyring, 'has' | 'signSyncRole'>, directory: HsmDirectory, links: HsmCaller, sync: SyncHsmCaller, region: string
  }) {
    this.c = components
    this.keyring = components.keyring
    this.directory = components.directory
    this.links = components.links
    this.sync = components.sync
    this.region = components.region
  }

  /** One pass: every running HSM of a (former) replica cluster that does not hold its role gets it. */
  pass (): void {
    for (const record of Object.values(this.c.store.state.syncReplicaOf ?? {})) {
      const want = roleOf(record)
      if (this.directory.running(record.clusterId).some(h => this.pushed.get(h.hsmId) !== want)) {
        void this.c.runtime.run(`sync-role:${record.clusterId}`, async () => { await this.pushRoles(record.clusterId) })
      }
    }
  }

  /** The record of a cluster of this region that is or was a replica, if any. */
  private replicaRecord (clusterId: string): SyncReplicaOfRecord | undefined {
    return this.c.store.state.syncReplicaOf?.[clusterId]
  }

  // ------------------------------------------------------------------ internal paths

  async inventory (body: unknown): Promise<SyncAnswer> {
    if (!isSyncInventoryRequest(body)) return badBody('/_hsmlab/sync/inventory')
    if (body.check === true) {
      const refusal = this.refusal(body.replicaClusterId, body.primaryClusterId, body.primaryRegion, body.lineage)
      if (refusal !== undefined) return refusal
    } else {
      const unassociated = this.unassociated(body.replicaClusterId, body.primaryClusterId)
      if (unassociated !== undefined) return unassociated
    }
    const addresses = this.directory.running(body.replicaClusterId).flatMap(h => { const a = this.directory.addressOf(h); return a === undefined ? [] : [a] })
    if (addresses.length === 0) return this.unavailable(body.replicaClusterId, 'it has no ACTIVE HSM')
    // Every running HSM of the replica is asked: one that missed what another spread in the
    // cluster (it was away) shows as a difference, which the primary then sends again.
    const answers = await Promise.all(addresses.map(async a => await this.sync.call(a, 'syncChanges', { waitMs: 0 }).then(r => r.resources, (err: Error) => err)))
    const lists = answers.filter((a): a is SyncResource[] => !(a instanceof Error))
    if (lists.length === 0) return this.unavailable(body.replicaClusterId, `its HSMs did not answer: ${answers.map(a => (a as Error).message).join('; ')}`)
    const answer: SyncInventoryAnswer = { lineage: this.c.store.state.clusters[body.replicaClusterId]?.lineage ?? '', resources: agreed(lists) }
    return { status: 200, body: answer }
  }

  async associate (body: unknown): Promise<SyncAnswer> {
    if (!isSyncAssociateRequest(body)) return badBody('/_hsmlab/sync/associate')
    const refusal = this.refusal(body.replicaClusterId, body.primaryClusterId, body.primaryRegion, body.lineage)
    if (refusal !== undefined) return refusal
    await this.c.store.transact(draft => {
      draft.syncReplicaOf ??= Object.create(null) as Record<string, SyncReplicaOfRecord>
      const existing = draft.syncReplicaOf[body.replicaClusterId]
      if (existing?.state === 'ASSOCIATED' && existing.primaryClusterId === body.primaryClusterId) return
      draft.syncReplicaOf[body.replicaClusterId] = {
        clusterId: body.replicaClusterId, primaryClusterId: body.primaryClusterId, primaryRegion: body.primaryRegion, syncType: body.syncType,
        state: 'ASSOCIATED', associatedAtMs: this.c.clock.now(), roleVersion: existing?.roleVersion ?? 0
      }
    })
    this.c.log.info({ replicaClusterId: body.replicaClusterId, primaryClusterId: body.primaryClusterId, primaryRegion: body.primaryRegion }, 'cluster associated as a synchronisation replica')
    // The HSMs that run are read-only before the answer; the pass reaches the others.
    await this.pushRoles(body.replicaClusterId).catch(() => {})
    this.c.runtime.kick()
    return { status: 200, body: {} }
  }

  async disassociate (body: unknown): Promise<SyncAnswer> {
    if (!isSyncDisassociateRequest(body)) return badBody('/_hsmlab/sync/disassociate')
    const cluster = this.c.store.state.clusters[body.replicaClusterId]
    if (cluster === undefined) return { status: 404, body: syncErrorBody('NOT_FOUND', `Cluster ${body.replicaClusterId} not found in ${this.region}`) }
    const other = this.c.store.state.syncReplicaOf?.[body.replicaClusterId]
    if (other !== undefined && other.primaryClusterId !== body.primaryClusterId) {
      return refused(`Cluster ${body.replicaClusterId} is a replica of ${other.primaryClusterId} (${other.primaryRegion}), not of ${body.primaryClusterId}`)
    }
    await this.c.store.transact(draft => {
      draft.syncReplicaOf ??= Object.create(null) as Record<string, SyncReplicaOfRecord>
      const existing = draft.syncReplicaOf[body.replicaClusterId]
      if (existing?.state === 'DISASSOCIATED') return
      const now = this.c.clock.now()
      draft.syncReplicaOf[body.replicaClusterId] = {
        clusterId: body.replicaClusterId, primaryClusterId: body.primaryClusterId, primaryRegion: body.primaryRegion,
        syncType: existing?.syncType ?? body.syncType, state: 'DISASSOCIATED', associatedAtMs: existing?.associatedAtMs ?? now, disassociatedAtMs: now,
        roleVersion: existing?.roleVersion ?? 0
      }
    })
    this.c.log.info({ replicaClusterId: body.replicaClusterId, primaryClusterId: body.primaryClusterId }, 'synchronisation replica disassociated for good')
    await this.pushRoles(body.replicaClusterId).catch(() => {})
    this.c.runtime.kick()
    return { status: 200, body: {} }
  }

  async apply (body: unknown): Promise<SyncAnswer> {
    if (!isSyncApplyRequest(body, SYNC_BATCH_KEYS_MAX + SYNC_BATCH_USERS_MAX)) return badBody('/_hsmlab/sync/apply')
    const unassociated = this.unassociated(body.replicaClusterId, body.primaryClusterId)
    if (unassociated !== undefined) return unassociated
    const hsm = this.directory.running(body.replicaClusterId)[0]
    const address = hsm === undefined ? undefined : this.directory.addressOf(hsm)
    if (hsm === undefined || address === undefined) return this.unavailable(body.replicaClusterId, 'it has no ACTIVE HSM')
    const record = this.replicaRecord(body.replicaClusterId)
    // The HSM applies only as a replica: it gets its role first if it has not taken it yet.
    if (record !== undefined && this.pushed.get(hsm.hsmId) !== roleOf(record)) await this.pushRoles(body.replicaClusterId).catch(() => {})
    try {
      const started = performance.now()
      const result = await this.sync.call(address, 'syncApply', {
        objects: body.objects.map(o => new Uint8Array(Buffer.from(o, 'base64'))), deleteKeys: body.deleteKeys, deleteUsers: body.deleteUsers
      })
      this.c.log.debug({ replica: body.replicaClusterId, hsmId: address.hsmId, objects: body.objects.length, ms: Math.round((performance.now() - started) * 10) / 10 }, 'applied on the replica')
      const answer: SyncApplyAnswer = { outcomes: result.outcomes }
      return { status: 200, body: answer }
    } catch (err) {
      return this.unavailable(body.replicaClusterId, `its HSM ${address.hsmId} did not apply the changes: ${(err as Error).message}`)
    }
  }

  // ------------------------------------------------------------------ rules

  /** Why `clusterId` may not become (or stay) a replica of `primaryClusterId`, or undefined. */
  private refusal (clusterId: string, primaryClusterId: string, primaryRegion: string, lineage: string | undefined): SyncAnswer | undefined {
    const state = this.c.store.state
    const cluster = state.clusters[clusterId]
    if (cluster === undefined || cluster.state === 'DELETED') return { status: 404, body: syncErrorBody('NOT_FOUND', `Cluster ${clusterId} not found in ${this.region}`) }
    const task = state.syncTasks?.[clusterId]
    if (task !== undefined) return refused(`Cluster ${clusterId} (${this.region}) is the primary of synchronisation task ${task.syncTaskId}; a primary cannot be a replica`)
    const record = state.syncReplicaOf?.[clusterId]
    if (record?.state === 'DISASSOCIATED') {
      return refused(record.primaryClusterId === primaryClusterId
        ? `Cluster ${clusterId} (${this.region}) was disassociated from primary ${primaryClusterId} (${primaryRegion}) at ${iso(record.disassociatedAtMs)}; the association cannot be re-established`
        : `Cluster ${clusterId} (${this.region}) was disassociated from primary ${record.primaryClusterId} (${record.primaryRegion}) at ${iso(record.disassociatedAtMs)}; a disassociated replica keeps its resources read-only and cannot be associated again`)
    }
    if (record !== undefined && record.primaryClusterId !== primaryClusterId) {
      return refused(`Cluster ${clusterId} (${this.region}) is already a replica of primary ${record.primaryClusterId} (${record.primaryRegion})`)
    }
    if (cluster.state !== 'ACTIVE' && cluster.state !== 'DEGRADED') return this.unavailable(clusterId, `it is ${cluster.state}, not ACTIVE`)
    if (lineage !== undefined && cluster.lineage !== undefined && cluster.lineage !== lineage) {
      return refused(`Cluster ${clusterId} (${this.region}) is of another lineage (${cluster.lineage}) than primary ${primaryClusterId} (${lineage}): a replica must be made from a backup of its primary`)
    }
    return undefined
  }

  /** The answer when `clusterId` is not associated with `primaryClusterId` (now), or undefined. */
  private unassociated (clusterId: string, primaryClusterId: string): SyncAnswer | undefined {
    const record = this.c.store.state.syncReplicaOf?.[clusterId]
    if (record?.state === 'DISASSOCIATED' && record.primaryClusterId === primaryClusterId) {
      return { status: 409, body: syncErrorBody('REPLICA_DISASSOCIATED', `Cluster ${clusterId} (${this.region}) was disassociated from ${primaryClusterId} at ${iso(record.disassociatedAtMs)}`) }
    }
    if (record?.state !== 'ASSOCIATED' || record.primaryClusterId !== primaryClusterId) {
      return { status: 409, body: syncErrorBody(SYNC_NOT_ASSOCIATED, `Cluster ${clusterId} (${this.region}) is not associated with ${primaryClusterId}`) }
    }
    return undefined
  }

  private unavailable (clusterId: string, why: string): SyncAnswer {
    return { status: 503, body: syncErrorBody('REPLICA_UNAVAILABLE', `Replica cluster ${clusterId} (${this.region}) cannot take changes: ${why}`) }
  }

  /** Sends the role of a (former) replica cluster to its running HSMs that do not hold it, under a new version. */
  private async pushRoles (clusterId: string): Promise<void> {
    const { store, log } = this.c
    const record = store.state.syncReplicaOf?.[clusterId]
    if (record === undefined || !this.keyring.has(clusterId)) return
    const want = roleOf(record)
    const targets = this.directory.running(clusterId).filter(h => this.pushed.get(h.hsmId) !== want)
    if (targets.length === 0) return
    // A version is recorded before any HSM sees it, so it is never used twice.
    const version = await store.transact(draft => {
      const r = draft.syncReplicaOf?.[clusterId]
      if (r === undefined) return 0
      r.roleVersion = Math.max(r.roleVersion + 1, Date.now())
      return r.roleVersion
    })
    const role: SyncRole = record.state === 'ASSOCIATED' ? 'replica' : 'disassociated'
    await Promise.all(targets.map(async hsm => {
      const address = this.directory.addressOf(hsm)
      if (address === undefined) return
      try {
        await this.links.call(address, 'setSyncRole', {
          role, primaryClusterId: record.primaryClusterId, version, signature: this.keyring.signSyncRole(clusterId, hsm.hsmId, role, record.primaryClusterId, version)
        })
        this.pushed.set(hsm.hsmId, want)
      } catch (err) {
        const stored = /version (\d+)/.exec((err as Error).message)
        if (stored !== null) {
          const seen = Number(stored[1])
          await store.transact(draft => { const r = draft.syncReplicaOf?.[clusterId]; if (r !== undefined) r.roleVersion = Math.max(r.roleVersion, seen) })
        }
        log.warn({ hsmId: hsm.hsmId, err: (err as Error).message }, 'the HSM did not take its synchronisation role; trying again')
      }
    }))
    log.info({ clusterId, role, version, targets: targets.length }, 'synchronisation roles sent')
  }
}

/** The digest of a resource the HSMs of a replica do not agree on: no primary's digest equals it. */
const DISAGREED_DIGEST = '0'

/** What the HSMs of a cluster hold: a resource they disagree on (or some lack) has DISAGREED_DIGEST. */
function agreed (lists: SyncResource[][]): SyncResource[] {
  const key = (r: SyncResource): string => r.kind === 'key' ? `k:${r.handle}` : `u:${r.name}`
  const merged = new Map<string, { resource: SyncResource, count: number }>()
  for (const list of lists) {
    for (const r of list) {
      if (r.digest === null) continue
      const seen = merged.get(key(r))
      if (seen === undefined) merged.set(key(r), { resource: r, count: 1 })
      else {
        seen.count++
        if (seen.resource.digest !== r.digest) seen.resource = { ...seen.resource, digest: DISAGREED_DIGEST }
      }
    }
  }
  return [...merged.values()].map(m => m.count === lists.length ? m.resource : { ...m.resource, digest: DISAGREED_DIGEST })
}

function roleOf (record: SyncReplicaOfRecord): string {
  return `${record.state === 'ASSOCIATED' ? 'replica' : 'disassociated'}:${record.primaryClusterId}`
}
