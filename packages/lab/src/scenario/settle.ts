/**
 * The settle phase (Vortex: liveness is asserted only once every fault is healed): lift every
 * fault, start again whatever was killed (`hsmlab up`), then wait, up to a deadline, until the lab
 * is quiet — every HSM ACTIVE for its control plane and answering, the HSMs of each cluster
 * holding the same keys (the key count of getHsmInfo and the hash of findAllKeys agree: replication
 * caught up), and no backup the run made or copied still CREATE_IN_PROGRESS. Not quiet by the
 * deadline is a liveness failure, reported with what was still not so.
 */
import type { ControlPlaneClient } from '@hsmlab/control-plane'
import type { LabStatus } from '../lab.js'
import { HsmSessions, describeError } from './hsm-sessions.js'
import type { ClusterServers } from './hsm-sessions.js'
import { describeAllBackups } from './observation.js'
import type { ScenarioCluster } from './scenario-file.js'

/** What the settle phase needs. */
export interface SettleContext {
  clusters: Map<string, ScenarioCluster>
  servers: Map<string, ClusterServers>
  api: (region: string) => ControlPlaneClient
  regions: string[]
  preexistingBackups: Set<string>
  /** Starts what is not running and waits until every HSM is ACTIVE, giving up after `timeoutMs`. */
  restart: (timeoutMs: number) => Promise<void>
  status: () => Promise<LabStatus>
  timeoutMs: number
  pollIntervalMs: number
  requestTimeoutMs: number
  connectTimeoutMs: number
}

/** How the settle phase ended. */
export type SettleResult = { settled: true, tookMs: number } | { settled: false, tookMs: number, reason: string }

/** One look at the lab: undefined when it is quiet, else what is not. */
async function notQuiet (ctx: SettleContext, sessions: HsmSessions): Promise<string | undefined> {
  const status = await ctx.status()
  const busy: string[] = []
  for (const region of status.regions) {
    if (region.controlPlane?.state !== 'RUNNING') busy.push(`the control plane of ${region.name} does not answer`)
    for (const cluster of region.clusters) {
      for (const hsm of cluster.hsms) {
        if (hsm.state !== 'ACTIVE') busy.push(`${region.name}/${cluster.name}/hsm-${hsm.server} is ${hsm.state}${hsm.stateMessage === undefined ? '' : ` (${hsm.stateMessage})`}`)
      }
    }
  }
  if (busy.length > 0) return busy.join('; ')
  for (const cluster of ctx.clusters.values()) {
    const officer = { type: 'CO' as const, name: cluster.officer.name, password: cluster.officer.password }
    const seen: Array<{ server: number, keys: number, hash: string }> = []
    for (let server = 0; server < sessions.size(cluster.ref); server++) {
      try {
        const co = await sessions.session(cluster.ref, server, officer)
        const info = await co.call('getHsmInfo', {})
        let hash = ''
        for (const user of (await co.call('listUsers', {})).users.filter(u => u.userType === 'CU')) {
          const listed = await co.call('findAllKeys', { userId: user.userId, withHash: true })
          if (listed.hash !== undefined) { hash = listed.hash; break }
        }
        seen.push({ server, keys: info.keyCount, hash })
      } catch (err) {
        await sessions.drop(cluster.ref, server, officer)
        busy.push(`${cluster.ref}/hsm-${server} does not answer: ${describeError(err)}`)
      }
    }
    const first = seen[0]
    if (first !== undefined && seen.some(s => s.keys !== first.keys || s.hash !== first.hash)) {
      busy.push(`the HSMs of ${cluster.ref} do not hold the same keys yet (${seen.map(s => `hsm-${s.server}: ${s.keys} keys, hash ${s.hash === '' ? '-' : s.hash.slice(0, 12)}`).join(', ')})`)
    }
  }
  for (const region of ctx.regions) {
    const pending = (await describeAllBackups(ctx.api(region)))
      .filter(b => b.BackupState === 'CREATE_IN_PROGRESS' && !ctx.preexistingBackups.has(String(b.BackupId)))
    if (pending.length > 0) busy.push(`${region}: ${pending.map(b => String(b.BackupId)).join(', ')} still CREATE_IN_PROGRESS`)
    // Synchronisation tasks (issue 12): every record on every associated replica SYNCHRONIZED.
    const api = ctx.api(region)
    for (const task of await api.describeSyncTasks({})) {
      const associated = new Set(task.Replicas.filter(r => r.State === 'ASSOCIATED').map(r => r.ClusterId))
      const open = (await api.allSyncResources({ ClusterId: task.PrimaryClusterId })).filter(r => associated.has(r.ReplicaClusterId) && r.Status !== 'SYNCHRONIZED')
      if (open.length > 0) {
        const first = open[0]
        busy.push(`the synchronisation task of ${task.PrimaryClusterId} has ${open.length} record${open.length === 1 ? '' : 's'} not SYNCHRONIZED yet (${first?.ResourceType ?? ''} ${first?.ResourceId ?? ''} on ${first?.ReplicaClusterId ?? ''}: ${first?.Status ?? ''}${first?.FailureCause == null ? '' : `, ${first.FailureCause.Code}`})`)
      }
    }
  }
  return busy.length > 0 ? busy.join('; ') : undefined
}

/** Runs the settle phase (every fault already lifted); see the module comment. */
export async function settle (ctx: SettleContext): Promise<SettleResult> {
  const startedAt = performance.now()
  const deadline = startedAt + ctx.timeoutMs
  const took = (): number => performance.now() - startedAt
  try {
    await ctx.restart(ctx.timeoutMs)
  } catch (err) {
    return { settled: false, tookMs: took(), reason: `the lab could not be started again: ${describeError(err)}` }
  }
  const sessions = new HsmSessions(ctx.servers, { connectTimeoutMs: ctx.connectTimeoutMs, requestTimeoutMs: ctx.requestTimeoutMs })
  try {
    for (;;) {
      let reason: string | undefined
      try {
        reason = await notQuiet(ctx, sessions)
      } catch (err) {
        reason = describeError(err)
      }
      if (reason === undefined) return { settled: true, tookMs: took() }
      if (performance.now() + ctx.pollIntervalMs >= deadline) return { settled: false, tookMs: took(), reason }
      await new Promise(resolve => setTimeout(resolve, ctx.pollIntervalMs))
    }
  } finally {
    await sessions.close()
  }
}
