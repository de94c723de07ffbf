/**
 * The workload of a scenario: streams of clients, each running operations one after the other
 * (picked at random by weight, after a random pause) from its stream's start to its stop, the
 * way applications and operators use a cluster: create crypto users and officers (on every HSM of
 * the cluster, as CMU's createUser does), create AES keys as a crypto user (on one HSM, as KMU's
 * genSymKey does; the cluster replicates them), sync keys and users to another cluster of the
 * lineage (as CMU's syncKey and syncUser do: extractMaskedObject on a source HSM,
 * insertMaskedObject with sameHandle on the destination), make backups and copy them to another
 * region (CopyBackupToRegion). Every operation goes into the history before it is sent and again
 * when it ends.
 *
 * How an operation ends: `ok` when every request it needed was answered with success; `failed`
 * when the system answered no (an HSM return code, an API error) or when a session could not be
 * opened (nothing was sent), with the cause; `unknown` when a request that changes something got
 * no answer (timeout, connection lost).
 */
import { ControlPlaneError, CP_ERR_API } from '@hsmlab/control-plane'
import type { ControlPlaneClient } from '@hsmlab/control-plane'
import { CLIENT_ERR_BUSY, CLIENT_ERR_CONNECT } from '@hsmlab/client'
import { KeyType, WireError } from '@hsmlab/protocol'
import type { History, OperationRecord, Outcome } from './history.js'
import { HsmSessions, SessionError, describeError } from './hsm-sessions.js'
import type { ClusterServers, Credential } from './hsm-sessions.js'
import type { Random } from './random.js'
import type { ScenarioCluster, WorkloadOp, WorkloadStream } from './scenario-file.js'
import { scenarioDefaults } from './defaults.js'

/** What the workload needs from the runner. */
export interface WorkloadContext {
  streams: WorkloadStream[]
  clusters: Map<string, ScenarioCluster>
  servers: Map<string, ClusterServers>
  /** ClusterId of each cluster. */
  clusterIds: Map<string, string>
  /** The cloudhsmv2 API of each region. */
  api: (region: string) => ControlPlaneClient
  /** READY backups of each cluster when the run started (what copyBackup can copy before the run made its own). */
  initialBackups: Map<string, string[]>
  history: History
  /** A short tag that makes the run's key labels and user names its own. */
  runTag: string
  requestTimeoutMs: number
  /** Milliseconds since the run started. */
  now: () => number
  signal: AbortSignal
}

/** How often shareKey tries an HSM that does not have the key yet (every idleWaitMs: about a second). */
const SHARE_ATTEMPTS_MAX = 20

/** An acknowledged key. */
interface KnownKey { opId: number, label: string, handle: number, owner: string }
/** An acknowledged user. */
interface KnownUser { opId: number, name: string, type: 'CU' | 'CO' }

/** What the clients learn from acknowledgements, shared by all of them: what there is to sync and copy. */
class Knowledge {
  readonly keys = new Map<string, KnownKey[]>()
  readonly users = new Map<string, KnownUser[]>()
  readonly backups = new Map<string, string[]>()
  /** `<to>|<label or user name>` synced, or being synced. */
  readonly synced = new Set<string>()

  list<T> (map: Map<string, T[]>, key: string): T[] {
    let list = map.get(key)
    if (list === undefined) { list = []; map.set(key, list) }
    return list
  }
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    function done (): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
    signal.addEventListener('abort', done, { once: true })
  })
}

/** `failed` when the request surely did not take effect, `unknown` when it may have. */
export function outcomeOf (err: unknown): 'failed' | 'unknown' {
  if (err instanceof SessionError || err instanceof WireError) return 'failed'
  const code = (err as { code?: unknown }).code
  if (code === CLIENT_ERR_CONNECT || code === CLIENT_ERR_BUSY) return 'failed'
  if (err instanceof ControlPlaneError && code === CP_ERR_API) return (err.statusCode ?? 500) < 500 ? 'failed' : 'unknown'
  return 'unknown'
}

/** One client of a stream. */
class Client {
  readonly name: string
  private readonly ctx: WorkloadContext
  private readonly stream: WorkloadStream
  private readonly random: Random
  private readonly sessions: HsmSessions
  private readonly knowledge: Knowledge
  private sequence = 0

  constructor (ctx: WorkloadContext, stream: WorkloadStream, index: number, random: Random, knowledge: Knowledge) {
    this.ctx = ctx
    this.stream = stream
    this.name = `${stream.name}#${index}`
    this.random = random
    this.knowledge = knowledge
    this.sessions = new HsmSessions(ctx.servers, { connectTimeoutMs: Math.min(scenarioDefaults.connectTimeoutMs, ctx.requestTimeoutMs), requestTimeoutMs: ctx.requestTimeoutMs })
  }

  async run (): Promise<void> {
    const { signal } = this.ctx
    try {
      await sleep(this.stream.startMs - this.ctx.now(), signal)
      let done = 0
      while (!signal.aborted && this.ctx.now() < this.stream.stopMs && done < (this.stream.operationsMax ?? Infinity)) {
        await sleep(this.random.between(this.stream.pauseMs[0], this.stream.pauseMs[1]), signal)
        if (signal.aborted || this.ctx.now() >= this.stream.stopMs) break
        const op = this.random.weighted(this.stream.ops)
        if (await this.execute(op)) done++
        else await sleep(scenarioDefaults.idleWaitMs, signal)
      }
    } finally {
      await this.sessions.close()
    }
  }

  /** Runs one operation; false when it had nothing to work on yet (nothing acknowledged to sync or copy). */
  private async execute (op: WorkloadOp): Promise<boolean> {
    switch (op.op) {
      case 'createKey': await this.createKey(op); return true
      case 'createUser': await this.createUser(op); return true
      case 'syncKey': return await this.syncKey(op)
      case 'syncUser': return await this.syncUser(op)
      case 'createBackup': await this.createBackup(op); return true
      case 'copyBackup': return await this.copyBackup(op)
      case 'shareKey': return await this.shareKey(op)
      case 'deleteKey': return await this.deleteKey(op)
    }
  }

  private cluster (ref: string): ScenarioCluster {
    const cluster = this.ctx.clusters.get(ref)
    if (cluster === undefined) throw new Error(`unknown cluster ${ref}`)
    return cluster
  }

  private officer (ref: string): Credential {
    const { officer } = this.cluster(ref)
    return { type: 'CO', name: officer.name, password: officer.password }
  }

  private nextName (kind: string): string {
    this.sequence++
    const [stream, client] = this.name.split('#')
    const streamIndex = this.ctx.streams.findIndex(s => s.name === stream)
    return `${this.ctx.runTag}_${kind}${streamIndex}_${client ?? '0'}_${this.sequence}`
  }

  private fail (record: OperationRecord, err: unknown, prefix = ''): void {
    this.ctx.history.complete(record, outcomeOf(err), { cause: `${prefix}${describeError(err)}` })
  }

  private async createKey (op: Extract<WorkloadOp, { op: 'createKey' }>): Promise<void> {
    const cluster = this.cluster(op.cluster)
    const owner = op.as === undefined
      ? this.random.pick(cluster.cryptoUsers)
      : cluster.cryptoUsers.find(u => u.name.toLowerCase() === op.as?.toLowerCase()) ?? this.random.pick(cluster.cryptoUsers)
    const server = this.random.int(this.sessions.size(op.cluster))
    const sizeBytes = this.random.pick(op.sizesBytes)
    const label = this.nextName('k')
    const record = this.ctx.history.invoke({ client: this.name, op: 'createKey', cluster: op.cluster, server, label, sizeBytes, owner: owner.name })
    try {
      const session = await this.sessions.session(op.cluster, server, { type: 'CU', name: owner.name, password: owner.password })
      const minServers = op.minServers === undefined ? {} : { minServers: op.minServers, timeoutMs: this.ctx.requestTimeoutMs }
      const { handle } = await session.call('generateSymmetricKey', { label, keyType: KeyType.AES, sizeBytes, ...minServers }, { timeoutMs: this.ctx.requestTimeoutMs * (op.minServers === undefined ? 1 : 2) })
      this.ctx.history.complete(record, 'ok', { handle })
      this.knowledge.list(this.knowledge.keys, op.cluster).push({ opId: record.id, label, handle, owner: owner.name })
    } catch (err) {
      this.fail(record, err)
    }
  }

  /**
   * The same request on every HSM of a cluster (CMU's createUser, syncUser's inserts on each HSM
   * of the destination): ok when all answered ok; unknown when one did not answer; else failed.
   */
  private async onEvery (record: OperationRecord, cluster: string, servers: number[], send: (server: number) => Promise<unknown>): Promise<{ outcome: Outcome, okServers: number[] }> {
    const results = await Promise.all(servers.map(async server => {
      try {
        await send(server)
        return { server, ok: true as const }
      } catch (err) {
        return { server, ok: false as const, outcome: outcomeOf(err), cause: describeError(err) }
      }
    }))
    const okServers = results.filter(r => r.ok).map(r => r.server)
    const failures = results.flatMap(r => r.ok ? [] : [r])
    if (failures.length === 0) return { outcome: 'ok', okServers }
    const outcome: Outcome = failures.some(f => f.outcome === 'unknown') ? 'unknown' : 'failed'
    const causes = failures.map(f => ({ target: `${cluster}/hsm-${f.server}`, cause: f.cause }))
    this.ctx.history.complete(record, outcome, {
      cause: `${failures.length} of ${servers.length} HSMs did not acknowledge it: ${causes.map(c => `${c.target}: ${c.cause}`).join('; ')}`,
      causes,
      okServers
    })
    return { outcome, okServers }
  }

  private async createUser (op: Extract<WorkloadOp, { op: 'createUser' }>): Promise<void> {
    const userName = this.nextName('u')
    const password = this.random.word(12)
    const servers = [...Array(this.sessions.size(op.cluster)).keys()]
    const record = this.ctx.history.invoke({ client: this.name, op: 'createUser', cluster: op.cluster, userName, userType: op.userType, password })
    const officer = this.officer(op.cluster)
    const { outcome } = await this.onEvery(record, op.cluster, servers, async server => {
      const session = await this.sessions.session(op.cluster, server, officer)
      await session.call('createUser', { userType: op.userType, userName, password })
    })
    if (outcome === 'ok') {
      this.ctx.history.complete(record, 'ok')
      this.knowledge.list(this.knowledge.users, op.cluster).push({ opId: record.id, name: userName, type: op.userType })
    }
  }

  /** An acknowledged item not yet synced to `to` (by any client), or any acknowledged one when all are. */
  private choose<T> (items: T[], to: string, id: (item: T) => string): T | undefined {
    const fresh = items.filter(item => !this.knowledge.synced.has(`${to}|${id(item)}`))
    if (fresh.length > 0) return this.random.pick(fresh)
    return items.length === 0 ? undefined : this.random.pick(items)
  }

  private async syncKey (op: Extract<WorkloadOp, { op: 'syncKey' }>): Promise<boolean> {
    const key = this.choose(this.knowledge.list(this.knowledge.keys, op.from), op.to, k => k.label)
    if (key === undefined) return false
    this.knowledge.synced.add(`${op.to}|${key.label}`)
    const server = this.random.int(this.sessions.size(op.from))
    const destination = this.random.int(this.sessions.size(op.to))
    const record = this.ctx.history.invoke({
      client: this.name, op: 'syncKey', cluster: op.from, to: op.to, server, destinationServers: [destination], label: key.label, handle: key.handle, owner: key.owner, sourceOp: key.opId
    })
    let blob: Uint8Array
    try {
      const source = await this.sessions.session(op.from, server, this.officer(op.from))
      blob = (await source.call('extractMaskedObject', { kind: 'key', handle: key.handle })).blob
    } catch (err) {
      // Extracting writes nothing: whatever happened, nothing reached the destination.
      this.ctx.history.complete(record, 'failed', { cause: `extractMaskedObject on ${op.from}/hsm-${server}: ${describeError(err)}` })
      this.retryUnlessOk(record, `${op.to}|${key.label}`)
      return true
    }
    try {
      const target = await this.sessions.session(op.to, destination, this.officer(op.to))
      const inserted = await target.call('insertMaskedObject', { blob, sameHandle: true })
      this.ctx.history.complete(record, 'ok', { destinationHandle: inserted.handle ?? key.handle })
    } catch (err) {
      this.fail(record, err, `insertMaskedObject on ${op.to}/hsm-${destination}: `)
    }
    this.retryUnlessOk(record, `${op.to}|${key.label}`)
    return true
  }

  /** A sync that did not succeed is picked again later, as a person syncs until it works (a repeated sync must change nothing). */
  private retryUnlessOk (record: OperationRecord, synced: string): void {
    if (record.outcome !== 'ok') this.knowledge.synced.delete(synced)
  }

  private async syncUser (op: Extract<WorkloadOp, { op: 'syncUser' }>): Promise<boolean> {
    const user = this.choose(this.knowledge.list(this.knowledge.users, op.from), op.to, u => u.name)
    if (user === undefined) return false
    this.knowledge.synced.add(`${op.to}|${user.name}`)
    const server = this.random.int(this.sessions.size(op.from))
    const destinations = [...Array(this.sessions.size(op.to)).keys()]
    const record = this.ctx.history.invoke({
      client: this.name, op: 'syncUser', cluster: op.from, to: op.to, server, destinationServers: destinations, userName: user.name, userType: user.type, sourceOp: user.opId
    })
    let blob: Uint8Array
    try {
      const source = await this.sessions.session(op.from, server, this.officer(op.from))
      const { users } = await source.call('listUsers', {})
      const found = users.find(u => u.userName.toLowerCase() === user.name.toLowerCase())
      if (found === undefined) throw new Error(`${user.name} is not a user of ${op.from}/hsm-${server}`)
      blob = (await source.call('extractMaskedObject', { kind: 'user', userId: found.userId })).blob
    } catch (err) {
      this.ctx.history.complete(record, 'failed', { cause: `extractMaskedObject on ${op.from}/hsm-${server}: ${describeError(err)}` })
      this.retryUnlessOk(record, `${op.to}|${user.name}`)
      return true
    }
    const officer = this.officer(op.to)
    const { outcome } = await this.onEvery(record, op.to, destinations, async d => {
      const target = await this.sessions.session(op.to, d, officer)
      await target.call('insertMaskedObject', { blob })
    })
    if (outcome === 'ok') this.ctx.history.complete(record, 'ok')
    this.retryUnlessOk(record, `${op.to}|${user.name}`)
    return true
  }

  /**
   * CMU's `shareKey`: an acknowledged key of the run shared by its owner with another crypto user
   * of the topology, on every HSM of the cluster (an HSM changes its own copy only; CMU sends the
   * change to each): a change of the key, its sharing, which a synchronisation task carries to
   * its replicas.
   */
  private async shareKey (op: Extract<WorkloadOp, { op: 'shareKey' }>): Promise<boolean> {
    const keys = this.knowledge.list(this.knowledge.keys, op.cluster)
    if (keys.length === 0) return false
    const key = this.random.pick(keys)
    const cluster = this.cluster(op.cluster)
    const owner = cluster.cryptoUsers.find(u => u.name.toLowerCase() === key.owner.toLowerCase())
    const others = cluster.cryptoUsers.filter(u => u !== owner)
    if (owner === undefined || others.length === 0) return false
    const other = this.random.pick(others)
    const servers = [...Array(this.sessions.size(op.cluster)).keys()]
    const record = this.ctx.history.invoke({ client: this.name, op: 'shareKey', cluster: op.cluster, label: key.label, handle: key.handle, owner: key.owner, userName: other.name, sourceOp: key.opId })
    const { outcome } = await this.onEvery(record, op.cluster, servers, async server => {
      const session = await this.sessions.session(op.cluster, server, { type: 'CU', name: owner.name, password: owner.password })
      const { users } = await session.call('listUsers', {}, { timeoutMs: this.ctx.requestTimeoutMs })
      const target = users.find(u => u.userName.toLowerCase() === other.name.toLowerCase())
      if (target === undefined) throw new Error(`${other.name} is not on ${op.cluster}/hsm-${server}`)
      // A key made on another HSM a moment ago may not have reached this one yet (in-cluster
      // replication): as a person would, try again a little later rather than leave the cluster
      // with the key shared on some HSMs only.
      for (let attempt = 1; ; attempt++) {
        try {
          await session.call('shareKey', { handle: key.handle, userId: target.userId, share: true }, { timeoutMs: this.ctx.requestTimeoutMs })
          return
        } catch (err) {
          if (attempt >= SHARE_ATTEMPTS_MAX || !/RET_INVALID_HANDLE/.test(describeError(err))) throw err
          await sleep(scenarioDefaults.idleWaitMs, this.ctx.signal)
        }
      }
    })
    if (outcome === 'ok') this.ctx.history.complete(record, 'ok')
    return true
  }

  /**
   * KMU's `deleteKey`: an acknowledged key of the run deleted by its owner on a random HSM. It is
   * no longer offered to the other operations from the moment it is asked for (its outcome may
   * stay unknown).
   */
  private async deleteKey (op: Extract<WorkloadOp, { op: 'deleteKey' }>): Promise<boolean> {
    const keys = this.knowledge.list(this.knowledge.keys, op.cluster)
    if (keys.length === 0) return false
    const key = this.random.pick(keys)
    keys.splice(keys.indexOf(key), 1)
    const owner = this.cluster(op.cluster).cryptoUsers.find(u => u.name.toLowerCase() === key.owner.toLowerCase())
    if (owner === undefined) return false
    const server = this.random.int(this.sessions.size(op.cluster))
    const record = this.ctx.history.invoke({ client: this.name, op: 'deleteKey', cluster: op.cluster, server, label: key.label, handle: key.handle, owner: key.owner, sourceOp: key.opId })
    try {
      const session = await this.sessions.session(op.cluster, server, { type: 'CU', name: owner.name, password: owner.password })
      await session.call('deleteKey', { handle: key.handle }, { timeoutMs: this.ctx.requestTimeoutMs })
      this.ctx.history.complete(record, 'ok')
    } catch (err) {
      this.fail(record, err)
    }
    return true
  }

  private async createBackup (op: Extract<WorkloadOp, { op: 'createBackup' }>): Promise<void> {
    const record = this.ctx.history.invoke({ client: this.name, op: 'createBackup', cluster: op.cluster })
    try {
      const clusterId = this.ctx.clusterIds.get(op.cluster) ?? ''
      const backup = await this.ctx.api(this.cluster(op.cluster).region).createBackup(clusterId)
      this.ctx.history.complete(record, 'ok', { backupId: backup.BackupId })
      this.knowledge.list(this.knowledge.backups, op.cluster).push(backup.BackupId)
    } catch (err) {
      this.fail(record, err)
    }
  }

  private async copyBackup (op: Extract<WorkloadOp, { op: 'copyBackup' }>): Promise<boolean> {
    const candidates = [...(this.ctx.initialBackups.get(op.cluster) ?? []), ...this.knowledge.list(this.knowledge.backups, op.cluster)]
    if (candidates.length === 0) return false
    const backupId = this.random.pick(candidates)
    const record = this.ctx.history.invoke({ client: this.name, op: 'copyBackup', cluster: op.cluster, to: op.to, backupId })
    try {
      await this.ctx.api(this.cluster(op.cluster).region).copyBackupToRegion({ BackupId: backupId, DestinationRegion: op.to })
      this.ctx.history.complete(record, 'ok')
    } catch (err) {
      this.fail(record, err)
    }
    return true
  }
}

/**
 * Runs every client of every stream until its stream stops (or `signal` aborts); resolves when
 * every client has finished its last operation. Each client gets its generator from `random`, in
 * stream and client order.
 */
export async function runWorkload (ctx: WorkloadContext, random: Random): Promise<void> {
  const knowledge = new Knowledge()
  const clients: Client[] = []
  for (const stream of ctx.streams) {
    for (let i = 0; i < stream.clients; i++) clients.push(new Client(ctx, stream, i, random.fork(), knowledge))
  }
  await Promise.all(clients.map(async c => { await c.run() }))
}
