/**
 * What a scenario sees of the lab's synchronisation tasks (issue 12), through the control planes'
 * API as `hsmlab sync status` reads it: each task (its replicas, its scope) with every record
 * once the lab settled (`observeSyncTasks`), and every FAILED record seen while the run went on
 * (`SyncWatch`, polling), so that the checkers can say whether a failure ever went without its
 * cause. Clusters are named by their scenario names (`eu-west-1/replica`) where the run knows them.
 */
import type { ControlPlaneClient } from '@hsmlab/control-plane'

/** A task as the checkers see it. */
export interface ObservedSyncTask {
  /** The primary cluster (`<region>/<cluster>`, or its id when the run does not know it). */
  primary: string
  replicas: Array<{ cluster: string, clusterId: string, type: 'KEYS' | 'KEYS_AND_USERS', state: 'ASSOCIATED' | 'DISASSOCIATED' }>
  scope: { allKeys: boolean, owners: string[], handles: number[], users: string[] }
  records: ObservedSyncRecord[]
}

/** One record: a resource on a replica. */
export interface ObservedSyncRecord {
  /** A key: its handle on the primary (decimal); a user: its name. */
  resourceId: string
  resourceType: 'KEY' | 'USER'
  /** The replica cluster (`<region>/<cluster>`, or its id). */
  replica: string
  status: 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'FAILED'
  failureCause: { code: string, message: string } | null
}

/** A FAILED record seen during the run. */
export interface SeenSyncFailure extends ObservedSyncRecord {
  primary: string
  /** When it was first seen with this cause, milliseconds since the run started. */
  atMs: number
}

/** A record's failure cause as the checkers read it. */
function causeOf (cause: { Code: string, Message: string } | null): ObservedSyncRecord['failureCause'] {
  return cause === null ? null : { code: cause.Code, message: cause.Message }
}

/** Cluster id → scenario name. */
function namer (clusterIds: ReadonlyMap<string, string>): (id: string) => string {
  const byId = new Map([...clusterIds].map(([ref, id]) => [id, ref]))
  return id => byId.get(id) ?? id
}

/** Every task of every region, with every record (all pages). */
export async function observeSyncTasks (regions: readonly string[], api: (region: string) => ControlPlaneClient, clusterIds: ReadonlyMap<string, string>): Promise<ObservedSyncTask[]> {
  const name = namer(clusterIds)
  const out: ObservedSyncTask[] = []
  for (const region of regions) {
    const client = api(region)
    for (const task of await client.describeSyncTasks({})) {
      const records = await client.allSyncResources({ ClusterId: task.PrimaryClusterId })
      out.push({
        primary: name(task.PrimaryClusterId),
        replicas: task.Replicas.map(r => ({ cluster: name(r.ClusterId), clusterId: r.ClusterId, type: r.SyncType, state: r.State })),
        scope: {
          allKeys: task.Scope.Keys?.All === true,
          owners: [...task.Scope.Keys?.Owners ?? []],
          handles: [...task.Scope.Keys?.Handles ?? []],
          users: [...task.Scope.Users ?? []]
        },
        records: records.map(r => ({ resourceId: r.ResourceId, resourceType: r.ResourceType, replica: name(r.ReplicaClusterId), status: r.Status, failureCause: causeOf(r.FailureCause) }))
      })
    }
  }
  return out
}

/**
 * Reads the FAILED records of every task every `intervalMs` until stopped; a region that does
 * not answer (partitioned, killed) is read again next time. Each (record, cause) is kept once.
 */
export class SyncWatch {
  readonly seen: SeenSyncFailure[] = []
  private readonly keys = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private reading: Promise<void> | undefined
  private stopped = false

  constructor (private readonly options: {
    regions: readonly string[]
    api: (region: string) => ControlPlaneClient
    clusterIds: ReadonlyMap<string, string>
    intervalMs: number
    now: () => number
  }) {}

  start (): void {
    const tick = (): void => {
      if (this.stopped) return
      this.reading = this.read().finally(() => { if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs) })
    }
    tick()
  }

  /** Stops, after one last reading. */
  async stop (): Promise<SeenSyncFailure[]> {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.reading
    await this.read()
    return this.seen
  }

  private async read (): Promise<void> {
    const name = namer(this.options.clusterIds)
    await Promise.all(this.options.regions.map(async region => {
      try {
        const client = this.options.api(region)
        for (const task of await client.describeSyncTasks({})) {
          for (const r of await client.allSyncResources({ ClusterId: task.PrimaryClusterId, Status: 'FAILED' })) {
            const key = `${task.PrimaryClusterId}|${r.ReplicaClusterId}|${r.ResourceType}|${r.ResourceId}|${r.FailureCause?.Code ?? ''}|${r.FailureCause?.Message ?? ''}`
            if (this.keys.has(key)) continue
            this.keys.add(key)
            this.seen.push({
              primary: name(task.PrimaryClusterId), replica: name(r.ReplicaClusterId), resourceId: r.ResourceId, resourceType: r.ResourceType,
              status: r.Status, failureCause: causeOf(r.FailureCause), atMs: this.options.now()
            })
          }
        }
      } catch {
        // The region does not answer now (a fault of the run): read again next time.
      }
    }))
  }
}
