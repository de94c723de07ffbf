/**
 * An exercise's setup (exercise.json `setup`): what is broken, in the lab's own terms, done
 * against the running lab once `hsmlab up` built its topology. Each step is an object with one
 * action (docs/exercises.md "Setup steps"):
 *
 * - `createUser` / `changePassword` `{cluster, type, name, password, hsmsDown?}`: as the lab's
 *   crypto officer, on every HSM of the cluster, as CMU does; the HSMs of `hsmsDown` (server
 *   numbers) are cut off by a partition of the fault proxy meanwhile, so they miss the change;
 * - `failLogins` `{cluster, name, type?, times}`: that many failed logins on every HSM;
 * - `createKeys` `{cluster, owner, labels, as?}`: one AES-256 token key per label, owned by crypto
 *   user `owner`, on every HSM before it goes on; `as` records the handles;
 * - `syncKeys` `{from, to, keys, partition?: {group, before}, syncedAs?, leftAs?}`: syncKey of
 *   each handle from the first HSM of `from` to the first of `to`, as CMU's does it; `partition`
 *   cuts `group` off just before the key at index `before` (the rest fail as they would), and
 *   heals it at the end; `syncedAs` and `leftAs` record the handles that made it and those left behind;
 * - `backup` `{cluster, as?}`: a backup now (`hsmlab backup`), its id recorded;
 * - `deleteHsm` `{cluster, server}`: DeleteHsm of that server, gone for good;
 * - `userId` `{cluster, name, as}`: records a user's id (what the task and solution name);
 * - `clusterId` `{cluster, as}`: records a cluster's id (what the AWS CLI names it by);
 * - `waitSync` `{cluster, status, count}`: waits until the synchronisation task of `cluster` has
 *   `count` records in `status` (so that the learner finds them so);
 * - `fault` (a fault of the lab, docs/lab.md "Faults") and `heal` `{group?}`.
 */
import { ClusterClient, readCmuConfig } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { LabLayout, applyFault, healFaults, labBackup, readLabState } from '@hsmlab/lab'
import type { LabFault } from '@hsmlab/lab'
import type { UserType } from '@hsmlab/protocol'
import { exerciseDefaults } from './defaults.js'
import { ExerciseError, EXERCISE_ERR_SETUP } from './errors.js'
import { substituteJson } from './seeded-values.js'
import type { ExerciseValue } from './seeded-values.js'
import type { Credential } from './credential.js'

/** One setup step (see the module comment). */
export type SetupStep =
  | { createUser: { cluster: string, type: UserType, name: string, password: string, hsmsDown?: number[] } }
  | { changePassword: { cluster: string, type: UserType, name: string, password: string, hsmsDown?: number[] } }
  | { failLogins: { cluster: string, name: string, type?: UserType, times: number } }
  | { createKeys: { cluster: string, owner: string, labels: string[], as?: string } }
  | { syncKeys: { from: string, to: string, keys: number[], partition?: { group: string, before: number }, syncedAs?: string, leftAs?: string } }
  | { backup: { cluster: string, as?: string } }
  | { deleteHsm: { cluster: string, server: number } }
  | { userId: { cluster: string, name: string, as: string } }
  | { clusterId: { cluster: string, as: string } }
  | { waitSync: { cluster: string, status: 'SYNCHRONIZED' | 'FAILED', count: number } }
  | { fault: LabFault }
  | { heal: { group?: string } }

const ACTIONS = ['createUser', 'changePassword', 'failLogins', 'createKeys', 'syncKeys', 'backup', 'deleteHsm', 'userId', 'clusterId', 'waitSync', 'fault', 'heal'] as const
type Action = typeof ACTIONS[number]

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0
const isStr = (v: unknown): v is string => typeof v === 'string' && v !== ''
const isCluster = (v: unknown): boolean => isStr(v) && v.split('/').length === 2

/** What is wrong with a setup step (its values filled in), or undefined. */
export function checkSetupStep (raw: unknown): string | undefined {
  if (!isObject(raw) || Object.keys(raw).length !== 1) return `a step is an object with one action: ${ACTIONS.join(', ')}`
  const action = Object.keys(raw)[0] as string
  if (!(ACTIONS as readonly string[]).includes(action)) return `unknown action "${action}" (the actions: ${ACTIONS.join(', ')})`
  const a = raw[action]
  if (!isObject(a)) return `${action} takes an object`
  const fine = ((): boolean => {
    switch (action as Action) {
      case 'createUser': case 'changePassword':
        return isCluster(a.cluster) && (a.type === 'CO' || a.type === 'CU') && isStr(a.name) && isStr(a.password) && (a.hsmsDown === undefined || (Array.isArray(a.hsmsDown) && a.hsmsDown.every(isInt)))
      case 'failLogins': return isCluster(a.cluster) && isStr(a.name) && isInt(a.times) && (a.type === undefined || a.type === 'CO' || a.type === 'CU')
      case 'createKeys': return isCluster(a.cluster) && isStr(a.owner) && Array.isArray(a.labels) && a.labels.every(isStr) && (a.as === undefined || isStr(a.as))
      case 'syncKeys': return isCluster(a.from) && isCluster(a.to) && (isStr(a.keys) || (Array.isArray(a.keys) && a.keys.every(isInt))) &&
        (a.partition === undefined || (isObject(a.partition) && isStr(a.partition.group) && (isInt(a.partition.before) || isStr(a.partition.before)))) &&
        (a.syncedAs === undefined || isStr(a.syncedAs)) && (a.leftAs === undefined || isStr(a.leftAs))
      case 'backup': return isCluster(a.cluster) && (a.as === undefined || isStr(a.as))
      case 'deleteHsm': return isCluster(a.cluster) && isInt(a.server)
      case 'userId': return isCluster(a.cluster) && isStr(a.name) && isStr(a.as)
      case 'clusterId': return isCluster(a.cluster) && isStr(a.as)
      case 'waitSync': return isCluster(a.cluster) && (a.status === 'SYNCHRONIZED' || a.status === 'FAILED') && isInt(a.count)
      case 'fault': return isStr(a.type)
      case 'heal': return a.group === undefined || isStr(a.group)
    }
  })()
  return fine ? undefined : `${action} ${JSON.stringify(a)} does not have the fields docs/exercises.md "Setup steps" gives it`
}

/** Where the setup runs and what it may use. */
export interface SetupContext {
  dir: string
  credentials: readonly Credential[]
  /** The values so far; a step's `as` adds to them. */
  values: Record<string, ExerciseValue>
}

function failed (what: string, why: string, cause?: unknown): ExerciseError {
  return new ExerciseError(EXERCISE_ERR_SETUP, `setup: ${what}: ${why}`, cause === undefined ? undefined : { cause })
}

function messageOf (err: unknown): string {
  return (err as Error).message ?? String(err)
}

/**
 * Runs the setup steps in order, each with the values known when it starts (a step's `as` is
 * there for the steps after it); the first that fails stops it, named.
 */
export async function runSetup (steps: readonly unknown[], ctx: SetupContext): Promise<void> {
  const runner = new SetupRunner(ctx)
  for (const [i, raw] of steps.entries()) {
    const step = substituteJson(raw, ctx.values) as SetupStep
    const [action] = Object.keys(step)
    const problem = checkSetupStep(step)
    if (problem !== undefined) throw failed(`step ${i} (${action ?? ''})`, problem)
    try {
      await runner.run(step)
    } catch (err) {
      if (err instanceof ExerciseError) throw failed(`step ${i} (${action ?? ''})`, err.message.replace(/^setup: /, ''), err)
      throw failed(`step ${i} (${action ?? ''})`, messageOf(err), err)
    }
  }
}

class SetupRunner {
  private readonly ctx: SetupContext
  private readonly layout: LabLayout

  constructor (ctx: SetupContext) {
    this.ctx = ctx
    this.layout = new LabLayout(ctx.dir)
  }

  private user (cluster: string, type: UserType, name?: string): Credential {
    const found = this.ctx.credentials.filter(c => c.type === type && (name === undefined || c.name.toLowerCase() === name.toLowerCase()))
    const credential = found.find(c => c.cluster === cluster) ?? found.find(c => c.cluster === undefined) ?? found[0]
    if (credential === undefined) throw failed(cluster, `exercise.json's credentials name no ${type}${name === undefined ? '' : ` ${name}`} to do this as`)
    return credential
  }

  /** The lab's CMU configuration of `region/name`, opened; closed by the caller. */
  private async open (cluster: string): Promise<ClusterClient> {
    const [region, name] = cluster.split('/') as [string, string]
    const config = await readCmuConfig(this.layout.cmuConfig(region, name))
    return await ClusterClient.open(config.servers, { connectTimeoutMs: exerciseDefaults.connectTimeoutMs, requestTimeoutMs: exerciseDefaults.requestTimeoutMs })
  }

  private async api (cluster: string): Promise<{ api: ControlPlaneClient, clusterId: string }> {
    const lab = await readLabState(this.layout)
    const [region, name] = cluster.split('/')
    const cp = lab?.controlPlanes.find(c => c.region === region)
    const record = lab?.clusters.find(c => c.region === region && c.name === name)
    if (cp === undefined || record?.id == null) throw failed(cluster, 'the lab has no such cluster')
    return { api: new ControlPlaneClient({ endpoint: cp.endpoint ?? `http://127.0.0.1:${cp.port}`, region: cp.region }), clusterId: record.id }
  }

  /** Every server of `client` must have answered `ok`; else the step fails naming the server. */
  private static expectAll (what: string, outcomes: Array<{ server: { id: number }, ok: boolean, error?: Error }>): void {
    const bad = outcomes.find(o => !o.ok)
    if (bad !== undefined) throw failed(what, `server ${bad.server.id}: ${messageOf(bad.error)}`)
  }

  async run (step: SetupStep): Promise<void> {
    if ('createUser' in step || 'changePassword' in step) {
      const a = 'createUser' in step ? step.createUser : step.changePassword
      const op = 'createUser' in step ? 'createUser' : 'changePassword'
      const down = a.hsmsDown ?? []
      const groups = down.map(n => `${a.cluster}/hsm-${n}`)
      for (const group of groups) await applyFault({ dir: this.ctx.dir, fault: { type: 'partition', group } })
      try {
        const client = await this.open(a.cluster)
        try {
          const up = client.servers.filter(s => !down.includes(s.id)).map(s => s.id)
          const co = this.user(a.cluster, 'CO')
          SetupRunner.expectAll(`${op} ${a.name}: login`, await client.fanOut('login', { userType: 'CO', userName: co.name, password: co.password }, up))
          SetupRunner.expectAll(`${op} ${a.name}`, await client.fanOut(op, { userType: a.type, userName: a.name, password: a.password }, up))
          await client.fanOut('logout', {}, up)
        } finally {
          await client.close()
        }
      } finally {
        for (const group of groups) await healFaults({ dir: this.ctx.dir, group })
      }
      return
    }
    if ('failLogins' in step) {
      const a = step.failLogins
      const client = await this.open(a.cluster)
      try {
        for (let i = 0; i < a.times; i++) {
          const outcomes = await client.fanOut('login', { userType: a.type ?? 'CU', userName: a.name, password: `not-${a.name}-${i}-password` })
          const wrong = outcomes.find(o => o.ok || !/LOGIN_FAILURE|LOCKED/.test(messageOf(o.error)))
          if (wrong !== undefined) throw failed(`failLogins ${a.name}`, `server ${wrong.server.id} did not refuse a wrong password: ${wrong.ok ? 'it logged in' : messageOf(wrong.error)}`)
        }
      } finally {
        await client.close()
      }
      return
    }
    if ('createKeys' in step) {
      const a = step.createKeys
      const owner = this.user(a.cluster, 'CU', a.owner)
      const client = await this.open(a.cluster)
      const handles: number[] = []
      try {
        const all = client.servers.length
        await client.call(0, 'login', { userType: 'CU', userName: owner.name, password: owner.password })
        for (const label of a.labels) {
          const { handle } = await client.call(0, 'generateSymmetricKey', { keyType: 31, sizeBytes: 32, label, minServers: all, timeoutMs: exerciseDefaults.setupWaitMs })
          handles.push(handle)
        }
      } finally {
        await client.close()
      }
      if (a.as !== undefined) this.ctx.values[a.as] = handles
      return
    }
    if ('syncKeys' in step) {
      await this.syncKeys(step.syncKeys)
      return
    }
    if ('backup' in step) {
      const backup = await labBackup({ dir: this.ctx.dir, cluster: step.backup.cluster })
      if (step.backup.as !== undefined) this.ctx.values[step.backup.as] = backup.BackupId
      return
    }
    if ('deleteHsm' in step) {
      const a = step.deleteHsm
      const { api, clusterId } = await this.api(a.cluster)
      const cluster = await api.getCluster(clusterId)
      const hsm = (cluster?.Hsms ?? []).filter(h => h.State !== 'DELETED')[a.server]
      if (hsm?.HsmId === undefined) throw failed(`deleteHsm ${a.cluster} server ${a.server}`, 'there is no such server')
      await api.deleteHsm({ ClusterId: clusterId, HsmId: hsm.HsmId })
      await api.waitForCluster(clusterId, 'ACTIVE', { timeoutMs: exerciseDefaults.setupWaitMs })
      return
    }
    if ('userId' in step) {
      const a = step.userId
      const client = await this.open(a.cluster)
      try {
        const { users } = await client.call(0, 'listUsers', {})
        const user = users.find(u => u.userName.toLowerCase() === a.name.toLowerCase())
        if (user === undefined) throw failed(`userId ${a.name}`, `${a.cluster} has no user ${a.name}`)
        this.ctx.values[a.as] = user.userId
      } finally {
        await client.close()
      }
      return
    }
    if ('clusterId' in step) {
      this.ctx.values[step.clusterId.as] = (await this.api(step.clusterId.cluster)).clusterId
      return
    }
    if ('waitSync' in step) {
      const a = step.waitSync
      const { api, clusterId } = await this.api(a.cluster)
      const deadline = Date.now() + exerciseDefaults.setupWaitMs
      for (;;) {
        const records = await api.allSyncResources({ ClusterId: clusterId, Status: a.status })
        if (records.length >= a.count) return
        if (Date.now() >= deadline) throw failed(`waitSync ${a.cluster}`, `${records.length} records ${a.status} after ${exerciseDefaults.setupWaitMs} ms, not ${a.count}`)
        await new Promise(resolve => setTimeout(resolve, exerciseDefaults.setupPollMs))
      }
    }
    if ('fault' in step) {
      await applyFault({ dir: this.ctx.dir, fault: step.fault })
      return
    }
    await healFaults({ dir: this.ctx.dir, ...(step.heal.group === undefined ? {} : { group: step.heal.group }) })
  }

  /** syncKey of each handle, first HSM of `from` → first HSM of `to` (CMU's way), the partition cutting in where asked. */
  private async syncKeys (a: Extract<SetupStep, { syncKeys: unknown }>['syncKeys']): Promise<void> {
    const [from, to] = [await this.open(a.from), await this.open(a.to)]
    const co = this.user(a.from, 'CO')
    const synced: number[] = []
    const left: number[] = []
    let cut = false
    try {
      for (const c of [from, to]) await c.call(0, 'login', { userType: 'CO', userName: co.name, password: co.password })
      for (const [i, handle] of a.keys.entries()) {
        if (a.partition !== undefined && i === a.partition.before) {
          await applyFault({ dir: this.ctx.dir, fault: { type: 'partition', group: a.partition.group } })
          cut = true
        }
        try {
          const { blob } = await from.call(0, 'extractMaskedObject', { kind: 'key', handle })
          await to.call(0, 'insertMaskedObject', { blob, sameHandle: true })
          synced.push(handle)
        } catch (err) {
          // Past the partition a sync fails, as the learner's bulk syncKey did; before it, it must not.
          if (!cut) throw failed(`syncKeys ${handle}`, messageOf(err), err)
          left.push(handle)
        }
      }
    } finally {
      await Promise.all([from.close(), to.close()])
      if (cut && a.partition !== undefined) await healFaults({ dir: this.ctx.dir, group: a.partition.group })
    }
    if (a.syncedAs !== undefined) this.ctx.values[a.syncedAs] = synced
    if (a.leftAs !== undefined) this.ctx.values[a.leftAs] = left
  }
}
