/**
 * `hsmlab down` and `hsmlab backup` as functions: stopping every process of the lab, and making a
 * backup of one cluster now. See docs/lab.md.
 */
import { rm } from 'node:fs/promises'
import { relative, sep } from 'node:path'
import type { Backup } from '@hsmlab/control-plane'
import { stopClientDaemons } from './client-daemons.js'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_BACKUP, LAB_ERR_CONTROL_PLANE, LAB_ERR_NO_LAB, LAB_ERR_USAGE } from './errors.js'
import { LabLayout, LabStateWriter, acquireLabLock, readLabState } from './lab-state.js'
import type { LabState } from './lab-state.js'
import { findLabProcesses, killProcess, stopProcess } from './launcher.js'
import type { LabProcess } from './launcher.js'
import { stopFaultProxy } from './fault-layer.js'
import { answers, apiFor, exists, labDir } from './lab.js'
import type { LabDownResult, LabLocation } from './lab.js'

/** Options of `labDown`. */
export interface LabDownOptions extends LabLocation {
  /** Also delete the lab directory (every HSM's data, the backups, keys and logs). @default false */
  purge?: boolean
  /** How long a control plane may take to stop its HSMs and exit after SIGTERM before SIGKILL, in milliseconds. @default labDefaults.controlPlaneStopTimeoutMs */
  stopTimeoutMs?: number
}

/**
 * Stops every process of the lab in DIR: each control plane gets SIGTERM (it stops its HSMs),
 * SIGKILL after a deadline; then every process of the lab still there (an HSM whose control plane
 * was gone already gets SIGTERM first) is killed. Idempotent.
 */
export async function labDown (options: LabDownOptions = {}): Promise<LabDownResult> {
  const layout = new LabLayout(labDir(options))
  const result: LabDownResult = { dir: layout.dir, found: false, stopped: [], leftRunning: [], purged: false }
  // Without lab.json there is nothing of ours to stop, and --purge does not remove a directory it did not make.
  if (!await exists(layout.stateFile)) return result
  result.found = true
  const release = await acquireLabLock(layout)
  let released = false
  try {
    let lab: LabState | undefined
    let unreadable: unknown
    try {
      lab = await readLabState(layout)
    } catch (err) {
      // A state file that cannot be read names no region: what runs is still found and stopped
      // below, --purge still removes it, and without --purge the error is reported after that.
      unreadable = err
    }
    if (lab !== undefined) {
      const writer = new LabStateWriter(layout)
      // The client daemons first: their applications get CKR_DEVICE_ERROR, not a half-stopped cluster.
      for (const s of await stopClientDaemons(layout, lab.clusters)) result.stopped.push({ kind: 'client-daemon', ...s })
      await Promise.all(lab.controlPlanes.map(async cp => {
        if (cp.endpoint !== undefined) {
          result.leftRunning.push({ region: cp.region, endpoint: cp.endpoint })
          return
        }
        const root = layout.controlPlaneDir(cp.region)
        const planeDataDir = layout.controlPlaneDataDir(cp.region)
        const kindOf = (p: LabProcess): 'control-plane' | 'hsm' => p.dataDir === planeDataDir ? 'control-plane' : 'hsm'
        const before = await findLabProcesses(root)
        const plane = before.find(p => kindOf(p) === 'control-plane')
        if (plane !== undefined) {
          const how = await stopProcess(plane.pid, options.stopTimeoutMs ?? labDefaults.controlPlaneStopTimeoutMs)
          if (how !== 'gone') result.stopped.push({ kind: 'control-plane', region: cp.region, pid: plane.pid, how })
        }
        const after = await findLabProcesses(root)
        for (const p of before) {
          if (p !== plane && !after.some(q => q.pid === p.pid)) result.stopped.push({ kind: 'hsm', region: cp.region, pid: p.pid, how: 'terminated' })
        }
        await Promise.all(after.map(async p => {
          if (plane !== undefined || kindOf(p) === 'control-plane') {
            // A straggler of a control plane that stopped (or was killed): nothing else will stop it.
            await killProcess(p.pid)
            result.stopped.push({ kind: kindOf(p), region: cp.region, pid: p.pid, how: 'killed' })
          } else {
            // An HSM whose control plane was gone already (killed): it may still stop gracefully.
            const how = await stopProcess(p.pid, labDefaults.stopTimeoutMs)
            if (how !== 'gone') result.stopped.push({ kind: 'hsm', region: cp.region, pid: p.pid, how })
          }
        }))
        cp.pid = null
      }))
      for (const cluster of lab.clusters) for (const hsm of cluster.hsms) hsm.pid = null
      // Last the fault proxy, once nothing sends through it any more.
      const faultProxy = await stopFaultProxy(layout, lab)
      if (faultProxy !== undefined) result.stopped.push({ kind: 'fault-proxy', region: '', pid: faultProxy.pid, how: faultProxy.how })
      if (lab.faultProxy !== undefined) lab.faultProxy.pid = null
      await writer.save(lab)
    }
    // Whatever else of the lab still runs (a lab.json that cannot be read, one of an older
    // format whose HSMs the lab started itself): every process serving a directory in DIR.
    await Promise.all((await findLabProcesses(layout.dir)).map(async p => {
      const how = await stopProcess(p.pid, labDefaults.stopTimeoutMs)
      const region = relative(layout.dir, p.dataDir).split(sep)[0] ?? ''
      const kind = p.dataDir === layout.faultProxyConfigFile ? 'fault-proxy' : p.dataDir === layout.controlPlaneDataDir(region) ? 'control-plane' : 'hsm'
      if (how !== 'gone') result.stopped.push({ kind, region: kind === 'fault-proxy' ? '' : region, pid: p.pid, how })
    }))
    if (unreadable !== undefined && options.purge !== true) throw unreadable as Error
    if (options.purge === true) {
      await rm(layout.dir, { recursive: true, force: true })
      released = true
      result.purged = true
    }
  } finally {
    if (!released) await release()
  }
  return result
}

/** Options of `labBackup`. */
export interface LabBackupOptions extends LabLocation {
  /** `<region>/<cluster>` of the lab. */
  cluster: string
  /** How long to wait for the backup to be READY, in milliseconds. @default labDefaults.stepTimeoutMs */
  timeoutMs?: number
}

/**
 * Makes a backup of one cluster now, with the control plane's extension operation
 * `HsmlabCreateBackup` (AWS makes backups only on its own schedule), and resolves once it is
 * READY.
 */
export async function labBackup (options: LabBackupOptions): Promise<Backup> {
  const layout = new LabLayout(labDir(options))
  const lab = await readLabState(layout)
  if (lab === undefined) throw new LabError(LAB_ERR_NO_LAB, `there is no lab in ${layout.dir}; start one with 'hsmlab up'`)
  const [regionName, clusterName, ...rest] = options.cluster.split('/')
  const record = rest.length === 0 ? lab.clusters.find(c => c.region === regionName && c.name === clusterName) : undefined
  if (record === undefined) {
    throw new LabError(LAB_ERR_USAGE, `the lab has no cluster '${options.cluster}'; its clusters: ${lab.clusters.map(c => `${c.region}/${c.name}`).join(', ')}`)
  }
  const cp = lab.controlPlanes.find(c => c.region === record.region)
  if (record.id === null || cp === undefined) throw new LabError(LAB_ERR_BACKUP, `cluster ${options.cluster} has not been created yet: run 'hsmlab up'`)
  if (!await answers(cp)) throw new LabError(LAB_ERR_CONTROL_PLANE, `the control plane of ${record.region} does not answer: run 'hsmlab up'`)
  const api = apiFor(cp)
  let backup: Backup
  try {
    backup = await api.createBackup(record.id)
    backup = await api.waitForBackup(backup.BackupId, ['READY', 'DELETED'], { timeoutMs: options.timeoutMs ?? labDefaults.stepTimeoutMs, intervalMs: labDefaults.apiPollIntervalMs })
  } catch (err) {
    throw new LabError(LAB_ERR_BACKUP, `backup of ${options.cluster} (${record.id}): ${(err as Error).message}`, { cause: err })
  }
  if (backup.BackupState !== 'READY') throw new LabError(LAB_ERR_BACKUP, `backup ${backup.BackupId} of ${options.cluster} failed: ${backup.StateMessage ?? backup.BackupState ?? 'unknown state'}`)
  return backup
}
