/**
 * What the console shows, read from the lab at a few hertz and kept as one JSON document per
 * topic. A topic whose JSON changed is handed to `onChange`, which the server pushes to every
 * open page over server-sent events: the browser never polls. The sources:
 *
 * | topic | read from | how often |
 * | --- | --- | --- |
 * | `status` | `labStatus` of @hsmlab/lab (lab.json and each control plane's DescribeClusters) | fast |
 * | `faults` | `listFaults` of @hsmlab/lab (the fault proxy's links and toxics) | fast |
 * | `backups` | each region's DescribeBackups | fast |
 * | `sync` | each region's HsmlabDescribeSyncTasks and HsmlabListSyncResources | fast |
 * | `hsms` | every HSM, logged in as the lab's CO through @hsmlab/client | `hsmPollIntervalMs` |
 * | `timeline` | the lab's fault journal (`readFaultJournal`) | fast |
 * | `reports` | the scenario runs left in the lab directory | `hsmPollIntervalMs` |
 * | `exercise` | the running exercise (@hsmlab/exercises: its task and steps), the last check and hints asked from the page | `hsmPollIntervalMs` |
 *
 * Each source fails on its own: a control plane that does not answer leaves its region's part
 * with an `error`, and the rest of the page keeps updating.
 */
import { createHash } from 'node:crypto'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import type { Backup, Cluster, SyncResourceRecord, SyncTask } from '@hsmlab/control-plane'
import { LabLayout, labStatus, listFaults, readFaultJournal, readLabState } from '@hsmlab/lab'
import type { ClusterStatus, LabStatus, Topology } from '@hsmlab/lab'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { checkExercise, nextHint, openExercise, taskOf } from '@hsmlab/exercises'
import type { CheckResult, Hint } from '@hsmlab/exercises'
import { consoleDefaults } from './defaults.js'

/** The topics a page can receive. */
export type Topic = 'status' | 'faults' | 'backups' | 'sync' | 'hsms' | 'timeline' | 'reports' | 'exercise'
export const TOPICS: readonly Topic[] = ['status', 'faults', 'backups', 'sync', 'hsms', 'timeline', 'reports', 'exercise']

/** Options of `LabView`. */
export interface LabViewOptions {
  /** The lab directory (`DIR` of `hsmlab up --dir DIR`). */
  labDir: string
  onChange: (topic: Topic, json: string) => void
  /** True while a page is open: the lab is read at the poll intervals then, and not at all otherwise (`wake` when one opens). @default always */
  watched?: () => boolean
  /** @default consoleDefaults.fastPollIntervalMs */
  fastPollIntervalMs?: number
  /** @default consoleDefaults.hsmPollIntervalMs */
  hsmPollIntervalMs?: number
  /** @default consoleDefaults.requestTimeoutMs */
  requestTimeoutMs?: number
  /** @default consoleDefaults.hsmConnectTimeoutMs */
  hsmConnectTimeoutMs?: number
}

/** One user on one HSM. */
interface UserRow { name: string, type: string, loginFailureCount: number, twoFactor: boolean, quorum: boolean }
/** One key on one HSM. */
interface KeyRow { handle: number, owner: string, sharedWith: string[], label: string, token: boolean, hash: string }
/** What one HSM holds, as its CO sees it. */
interface HsmContents { id: string, server: number, error?: string, users: UserRow[], keys: KeyRow[], keysTotal?: number }

/** The lab's CO password for a cluster: its own activation's, or its source's for a clone. */
function coPasswordOf (topology: Topology, region: string, cluster: string, depth = 0): string | undefined {
  const spec = topology.regions.find(r => r.name === region)?.clusters.find(c => c.name === cluster)
  if (spec === undefined || depth > 8) return undefined
  if (spec.activate !== undefined) return spec.activate.admin
  return spec.cloneOf === undefined ? undefined : coPasswordOf(topology, spec.cloneOf.region, spec.cloneOf.cluster, depth + 1)
}

function hex (value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value
}

/** Reads the lab and publishes what changed; see the module comment. */
export class LabView {
  private readonly options: LabViewOptions
  private readonly layout: LabLayout
  private readonly last = new Map<Topic, string>()
  private readonly connections = new Map<string, HsmConnection>()
  private readonly timers = new Set<NodeJS.Timeout>()
  /** One per loop: ends its wait now. */
  private readonly wakers: Array<() => void> = []
  /** `${hsmId}\0${password}` of every login that failed: never tried again, so that the console cannot lock the lab's CO out. */
  private readonly failedLogins = new Set<string>()
  private stopped = false
  /** The last status read, for the other sources and the API. */
  status: LabStatus | undefined
  /** The exercise's last check and the hints asked for from the page, for the exercise topic (reset when another exercise starts). */
  private exerciseNotes: { startedAt: string, check?: CheckResult, hints: Hint[] } | undefined

  constructor (options: LabViewOptions) {
    this.options = options
    this.layout = new LabLayout(options.labDir)
  }

  /** The JSON last published for a topic, if any. */
  current (topic: Topic): string | undefined {
    return this.last.get(topic)
  }

  /** Reads everything once (so the first page has data), then keeps reading. */
  async start (): Promise<void> {
    await this.fast()
    this.loop(() => this.fast(), () => this.options.fastPollIntervalMs ?? consoleDefaults.fastPollIntervalMs)
    this.loop(() => this.slow(), () => this.options.hsmPollIntervalMs ?? consoleDefaults.hsmPollIntervalMs, true)
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    await Promise.all([...this.connections.values()].map(async c => { await c.close().catch(() => {}) }))
    this.connections.clear()
  }

  /** Reads every source now and polls at the fast intervals from here on (a page opened after a while nobody looked). */
  wake (): void {
    for (const wake of this.wakers) wake()
  }

  /** Reads the fast sources now (after an action of the page, so that it shows at once). */
  async refresh (): Promise<void> {
    await this.fast()
  }

  /** A control-plane client for a region of the lab. */
  api (region: string): ControlPlaneClient {
    const endpoint = this.status?.regions.find(r => r.name === region)?.controlPlane?.endpoint
    if (endpoint === undefined) throw new Error(`the lab has no control plane for ${region}`)
    return new ControlPlaneClient({ endpoint, region, timeoutMs: this.options.requestTimeoutMs ?? consoleDefaults.requestTimeoutMs })
  }

  /**
   * Runs `work` again and again, `intervalMs()` apart while a page is open; while none is, it
   * waits for `wake` (a page opened), which also ends a wait in progress at once. A console nobody
   * looks at reads nothing: its reads as the CO (every CU's keys on every HSM) and of every sync
   * record cost the lab's HSMs and control planes more than anything else an idle lab does.
   */
  private loop (work: () => Promise<void>, intervalMs: () => number, runNow = false): void {
    let waiting: NodeJS.Timeout | undefined
    let asleep = false
    const next = (delayMs: number): void => {
      if (this.stopped) return
      if (!(this.options.watched?.() ?? true)) {
        asleep = true
        return
      }
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        waiting = undefined
        void work().catch(() => {}).finally(() => { next(intervalMs()) })
      }, delayMs)
      waiting = timer
      this.timers.add(timer)
    }
    this.wakers.push(() => {
      if (asleep) {
        asleep = false
        next(0)
        return
      }
      if (waiting === undefined) return
      clearTimeout(waiting)
      this.timers.delete(waiting)
      waiting = undefined
      next(0)
    })
    next(runNow ? 0 : intervalMs())
  }

  private publish (topic: Topic, value: unknown): void {
    const json = JSON.stringify(value)
    if (this.last.get(topic) === json) return
    this.last.set(topic, json)
    this.options.onChange(topic, json)
  }

  private async fast (): Promise<void> {
    const status = await labStatus({ dir: this.options.labDir }).catch((err: unknown) => err as Error)
    if (status instanceof Error) {
      this.publish('status', { error: status.message })
      return
    }
    this.status = status
    this.publish('status', { lab: status })
    await Promise.all([this.readFaults(), this.readBackups(status), this.readSync(status), this.readTimeline()])
  }

  private async slow (): Promise<void> {
    await Promise.all([this.readHsms(), this.readReports(), this.readExercise()])
  }

  /** The running exercise: its title, task and steps (their state from the last check). */
  private async readExercise (): Promise<void> {
    let opened
    try {
      opened = await openExercise({ dir: this.options.labDir })
    } catch {
      this.publish('exercise', { running: false })
      return
    }
    const { state, definition } = opened
    if (this.exerciseNotes?.startedAt !== state.startedAt) this.exerciseNotes = { startedAt: state.startedAt, hints: [] }
    const task = taskOf(definition, state.values)
    const check = this.exerciseNotes.check
    this.publish('exercise', {
      running: true,
      name: state.name,
      title: definition.title,
      level: definition.level,
      minutes: definition.minutes,
      seed: state.seed,
      startedAt: state.startedAt,
      intro: task.intro,
      steps: task.steps.map(s => {
        const result = check?.steps.find(r => r.id === s.id)
        return { ...s, ...(result === undefined ? {} : { passed: result.passed, reasons: result.reasons }) }
      }),
      check: check === undefined ? null : { passed: check.passed, elapsedMs: check.elapsedMs },
      hints: this.exerciseNotes.hints
    })
  }

  /** Runs the exercise's checks now (the page's Check button); the steps show the result. */
  async checkExercise (): Promise<CheckResult> {
    const result = await checkExercise({ dir: this.options.labDir })
    const { state } = await openExercise({ dir: this.options.labDir })
    this.exerciseNotes = { startedAt: state.startedAt, hints: this.exerciseNotes?.startedAt === state.startedAt ? this.exerciseNotes.hints : [], check: result }
    await this.readExercise()
    return result
  }

  /** The next hint (the page's Hint button), kept on the page. */
  async hint (): Promise<Hint> {
    const hint = await nextHint({ dir: this.options.labDir })
    const { state } = await openExercise({ dir: this.options.labDir })
    if (this.exerciseNotes?.startedAt !== state.startedAt) this.exerciseNotes = { startedAt: state.startedAt, hints: [] }
    this.exerciseNotes.hints.push(hint)
    await this.readExercise()
    return hint
  }

  private async readFaults (): Promise<void> {
    try {
      this.publish('faults', { listing: await listFaults({ dir: this.options.labDir }) })
    } catch (err) {
      this.publish('faults', { error: (err as Error).message })
    }
  }

  private async readTimeline (): Promise<void> {
    const entries = await readFaultJournal({ dir: this.options.labDir }).catch(() => [])
    this.publish('timeline', { entries: entries.slice(-consoleDefaults.faultTimelineEntriesMax) })
  }

  private async readBackups (status: LabStatus): Promise<void> {
    // Every cluster of the region too, those made outside the topology (from a backup, on this page) included.
    const regions: Record<string, { backups?: Backup[], clusters?: Array<{ ClusterId: string, State: string, SourceBackupId: string | null, Hsms: number }>, error?: string }> = {}
    await Promise.all(status.regions.map(async r => {
      if (r.controlPlane?.state !== 'RUNNING') { regions[r.name] = { error: `the control plane of ${r.name} does not answer` }; return }
      try {
        const backups: Backup[] = []
        let token: string | undefined
        do {
          const page = await this.api(r.name).describeBackups(token === undefined ? {} : { NextToken: token })
          backups.push(...page.Backups)
          token = page.NextToken
        } while (token !== undefined)
        const clusters: Cluster[] = []
        do {
          const page = await this.api(r.name).describeClusters(token === undefined ? {} : { NextToken: token })
          clusters.push(...page.Clusters)
          token = page.NextToken
        } while (token !== undefined)
        regions[r.name] = {
          backups,
          clusters: clusters.filter(c => c.State !== 'DELETED').map(c => ({ ClusterId: c.ClusterId ?? '', State: c.State ?? 'UNKNOWN', SourceBackupId: c.SourceBackupId ?? null, Hsms: c.Hsms?.length ?? 0 }))
        }
      } catch (err) {
        regions[r.name] = { error: (err as Error).message }
      }
    }))
    this.publish('backups', { regions })
  }

  private async readSync (status: LabStatus): Promise<void> {
    const regions: Record<string, { tasks?: SyncTask[], error?: string }> = {}
    const resources: Record<string, { records?: SyncResourceRecord[], error?: string }> = {}
    await Promise.all(status.regions.map(async r => {
      if (r.controlPlane?.state !== 'RUNNING') { regions[r.name] = { error: `the control plane of ${r.name} does not answer` }; return }
      try {
        const api = this.api(r.name)
        const SyncTasks = await api.describeSyncTasks()
        regions[r.name] = { tasks: SyncTasks }
        await Promise.all(SyncTasks.map(async task => {
          try {
            const records: SyncResourceRecord[] = []
            let token: string | undefined
            do {
              const page = await api.listSyncResources({ ClusterId: task.PrimaryClusterId, ...(token === undefined ? {} : { NextToken: token }) })
              records.push(...page.Resources)
              token = page.NextToken
            } while (token !== undefined)
            resources[task.PrimaryClusterId] = { records }
          } catch (err) {
            resources[task.PrimaryClusterId] = { error: (err as Error).message }
          }
        }))
      } catch (err) {
        regions[r.name] = { error: (err as Error).message }
      }
    }))
    this.publish('sync', { regions, resources })
  }

  private async readReports (): Promise<void> {
    const dir = join(this.options.labDir, 'scenario')
    const runs: Array<{ name: string, modifiedAt: number, report?: unknown }> = []
    const report = await readFile(join(dir, 'report.json'), 'utf8').then(t => JSON.parse(t) as unknown).catch(() => undefined)
    const history = await stat(join(dir, 'history.jsonl')).catch(() => undefined)
    if (history !== undefined) runs.push({ name: 'scenario', modifiedAt: history.mtimeMs, ...(report === undefined ? {} : { report }) })
    // Runs kept apart (scenario/<name>/history.jsonl), newest first.
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const s = await stat(join(dir, name, 'history.jsonl')).catch(() => undefined)
      if (s === undefined) continue
      const r = await readFile(join(dir, name, 'report.json'), 'utf8').then(t => JSON.parse(t) as unknown).catch(() => undefined)
      runs.push({ name, modifiedAt: s.mtimeMs, ...(r === undefined ? {} : { report: r }) })
    }
    runs.sort((a, b) => b.modifiedAt - a.modifiedAt)
    this.publish('reports', { runs: runs.slice(0, consoleDefaults.scenarioRunsMax) })
  }

  private async readHsms (): Promise<void> {
    const status = this.status
    if (status === undefined) return
    const lab = await readLabState(this.layout).catch(() => undefined)
    const clusters: Record<string, { hsms: HsmContents[] }> = {}
    const seen = new Set<string>()
    await Promise.all(status.regions.flatMap(r => r.clusters).map(async cluster => {
      if (cluster.id === null) return
      const password = lab === undefined ? undefined : coPasswordOf(lab.topology, cluster.region, cluster.name)
      const anchor = await readFile(cluster.trustAnchor, 'utf8').then(decodeTrustAnchor).catch(() => undefined)
      const hsms = await Promise.all(cluster.hsms.map(async (hsm, server) => {
        seen.add(hsm.id)
        return await this.readHsm(cluster, hsm.id, hsm.directEndpoint, server, anchor, password)
      }))
      clusters[`${cluster.region}/${cluster.name}`] = { hsms }
    }))
    for (const [id, c] of this.connections) {
      if (!seen.has(id)) { this.connections.delete(id); await c.close().catch(() => {}) }
    }
    this.publish('hsms', { clusters })
  }

  private async connectionTo (cluster: ClusterStatus, hsmId: string, endpoint: string, anchor: Uint8Array, password: string | undefined): Promise<HsmConnection> {
    const open = this.connections.get(hsmId)
    if (open !== undefined && !open.closed) return open
    const connection = await HsmConnection.connect({
      url: endpoint,
      trustAnchor: anchor,
      ...(cluster.id === null ? {} : { expectedClusterId: cluster.id }),
      connectTimeoutMs: this.options.hsmConnectTimeoutMs ?? consoleDefaults.hsmConnectTimeoutMs,
      requestTimeoutMs: this.options.requestTimeoutMs ?? consoleDefaults.requestTimeoutMs
    })
    const attempt = `${hsmId}\0${password ?? ''}`
    if (password !== undefined && !this.failedLogins.has(attempt)) {
      try {
        await connection.call('login', { userType: 'CO', userName: 'admin', password })
      } catch {
        // A cluster not activated yet, or whose admin password changed (an exercise, a learner):
        // what can be read without a login still is, and this password is not tried again on
        // this HSM, so that the console never counts towards locking the CO out.
        this.failedLogins.add(attempt)
      }
    }
    this.connections.set(hsmId, connection)
    return connection
  }

  private async readHsm (cluster: ClusterStatus, hsmId: string, endpoint: string, server: number, anchor: Uint8Array | undefined, password: string | undefined): Promise<HsmContents> {
    const contents: HsmContents = { id: hsmId, server, users: [], keys: [] }
    if (anchor === undefined || endpoint === '') return { ...contents, error: 'no trust anchor or address yet' }
    try {
      const c = await this.connectionTo(cluster, hsmId, endpoint, anchor, password)
      const { users } = await c.call('listUsers', {})
      const names = new Map(users.map(u => [u.userId, u.userName]))
      contents.users = users.map(u => ({ name: u.userName, type: u.userType, loginFailureCount: u.loginFailureCount, twoFactor: u.twoFactor, quorum: u.mofnPubKey }))
      const handles = new Set<number>()
      for (const u of users) {
        if (u.userType !== 'CU') continue
        const found = await c.call('findAllKeys', { userId: u.userId, withHash: false }).catch(() => undefined)
        for (const k of found?.keys ?? []) if (k.relation === 'owned') handles.add(k.handle)
      }
      const sorted = [...handles].sort((a, b) => a - b)
      contents.keysTotal = sorted.length
      for (const handle of sorted.slice(0, consoleDefaults.hsmKeysReadMax)) {
        const info = await c.call('getKeyInfo', { handle }).catch(() => undefined)
        if (info === undefined) continue
        const attributes = await c.call('getAttribute', { handle, attribute: 512 }).then(r => r.attributes).catch(() => [])
        const owner = names.get(info.owner) ?? String(info.owner)
        const sharedWith = info.sharedWith.map(id => names.get(id) ?? String(id)).sort()
        const label = attributes.find(a => a.id === 3)?.value
        const digest = createHash('sha256').update(JSON.stringify({
          owner, sharedWith, token: info.token, keyClass: info.keyClass,
          attributes: attributes.map(a => [a.id, hex(a.value)]).sort((a, b) => Number(a[0]) - Number(b[0]))
        })).digest('hex').slice(0, 16)
        contents.keys.push({ handle, owner, sharedWith, label: typeof label === 'string' ? label : '', token: info.token, hash: digest })
      }
    } catch (err) {
      const open = this.connections.get(hsmId)
      this.connections.delete(hsmId)
      await open?.close().catch(() => {})
      return { ...contents, error: (err as Error).message }
    }
    return contents
  }
}
