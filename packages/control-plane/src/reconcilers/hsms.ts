/**
 * The HSMs of this region, run by the supervisor handed in (`HsmProcesses`: the control plane's
 * own children, or processes on HSM hosts). CreateHsm's record → a process spawned from a
 * provision file (a new cluster's first HSM), or restored from a backup (a clone's first HSM; any
 * later HSM, from a fresh backup of an HSM of the cluster, which is how the service adds HSMs),
 * ACTIVE once ready and once it told its lineage (and, for a new cluster, its certificates);
 * DeleteHsm's → a backup of it first in an ACTIVE cluster, its process stopped (SIGTERM, then
 * SIGKILL), its data removed, DELETED. A process that dies is restarted on its data directory and
 * port (DEGRADED meanwhile), after a doubling delay; one whose data cannot be loaded stays
 * DEGRADED (halted). Processes a previous control plane left running are adopted.
 */
import { readdir, mkdir, rm, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { writeProvisionFile } from '@hsmlab/hsm'
import type { AnchorKeyring } from '../anchor-keyring.js'
import type { BackupFiles } from '../backup-files.js'
import { DAY_MS } from '../clock.js'
import { ControlPlaneError, CP_ERR_BACKUP, CP_ERR_HSM } from '../errors.js'
import type { HsmCaller } from '../hsm-links.js'
import { HsmStartError, hsmPaths } from '../hsm-supervisor.js'
import type { HsmExit, HsmProcesses } from '../hsm-supervisor.js'
import type { HsmRecord } from '../state-store.js'
import { hsmsOf } from '../api/render.js'
import type { BackupMaker } from './backups.js'
import type { HsmDirectory } from './hsm-directory.js'
import type { PeerReconciler } from './peers.js'
import { backoff } from './runtime.js'
import { publicKeyPemOfCertificate } from '../x509.js'
import type { ReconcilerComponents } from './runtime.js'

const ACTIVE_HSM_MESSAGE = 'HSM created.'
/** How long a new HSM waits for another HSM of its cluster to be created or restarted, before it decides again where its content comes from, in milliseconds. */
const RESTORE_WAIT_MS = 250

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

async function nonEmptyDir (path: string): Promise<boolean> {
  return await readdir(path).then(entries => entries.length > 0, () => false)
}

/** What the HSM reconciler is given besides the shared components. */
export interface HsmReconcilerParts {
  /** The control plane's data directory (`hsms/<id>/` under it). */
  dataDir: string
  supervisor: HsmProcesses
  keyring: Pick<AnchorKeyring, 'has' | 'issueIdentity' | 'file'>
  directory: HsmDirectory
  links: HsmCaller
  files: BackupFiles
  backups: BackupMaker
  peers: Pick<PeerReconciler, 'forget'>
}

/** HSMs of this region. */
export class HsmReconciler {
  private readonly c: ReconcilerComponents
  private readonly p: HsmReconcilerParts
  /** Real time before which an HSM is not started again (a failed start, an exit, a wait). */
  private readonly restartAt = new Map<string, number>()

  constructor (components: ReconcilerComponents & HsmReconcilerParts) {
    this.c = components
    this.p = components
  }

  /** Adopts the HSM processes a previous control plane left running. */
  async adopt (): Promise<void> {
    const { supervisor, dataDir } = this.p
    await Promise.all(Object.values(this.c.store.state.hsms).map(async hsm => {
      if (hsm.pid === undefined || hsm.state === 'DELETED') return
      if (!await supervisor.adopt(hsm.hsmId, hsm.pid, hsmPaths(dataDir, hsm.hsmId), this.c.tuning.tickIntervalMs)) return
      if (hsm.state !== 'ACTIVE') {
        // Started by a control plane that died before it handled the HSM's ready line: nothing
        // would ever promote an adopted process, so stop it and let the restart path start it
        // again and mark it ACTIVE once ready. Its stores survive a SIGKILL by design.
        await supervisor.kill(hsm.hsmId)
      }
    }))
  }

  /** One pass: DELETED records pruned, HSMs to create, delete or restart. */
  async pass (labNow: number): Promise<void> {
    const { store, runtime } = this.c
    const keepMs = this.c.tuning.deletedRecordsKeptLabDays * DAY_MS
    const prune = Object.values(store.state.hsms).filter(h => h.state === 'DELETED' && (h.deletedAtMs ?? labNow) + keepMs < labNow).map(h => h.hsmId)
    if (prune.length > 0) {
      await store.transact(draft => { for (const id of prune) delete draft.hsms[id] })
      await Promise.allSettled(prune.map(async id => { await rm(hsmPaths(this.p.dataDir, id).dir, { recursive: true, force: true }) }))
    }
    const realNow = runtime.realNow()
    for (const hsm of Object.values(store.state.hsms)) {
      const key = `hsm:${hsm.hsmId}`
      if (hsm.state === 'CREATE_IN_PROGRESS' && hsm.halted !== true && (this.restartAt.get(hsm.hsmId) ?? 0) <= realNow) {
        void runtime.run(key, async () => { await this.provision(hsm.hsmId) })
      } else if (hsm.state === 'DELETE_IN_PROGRESS') {
        void runtime.run(key, async () => { await this.delete(hsm.hsmId) })
      } else if ((hsm.state === 'ACTIVE' || hsm.state === 'DEGRADED') && hsm.halted !== true &&
        this.p.supervisor.pidOf(hsm.hsmId) === undefined && (this.restartAt.get(hsm.hsmId) ?? 0) <= realNow) {
        void runtime.run(key, async () => { await this.restart(hsm.hsmId) })
      }
    }
  }

  /** The supervisor's report of a process that ended unexpectedly: DEGRADED, restarted after a delay. */
  async exited (hsmId: string, exit: HsmExit): Promise<void> {
    const { store, log, runtime, tuning } = this.c
    this.p.links.drop(hsmId)
    if (runtime.stopping) return
    const how = exit.signal !== null ? `killed by ${exit.signal}` : exit.code !== null ? `exit code ${exit.code}` : 'it is gone'
    log.warn({ hsmId, code: exit.code, signal: exit.signal, log: exit.logTail }, 'HSM process exited unexpectedly')
    const failures = await store.transact(draft => {
      const hsm = draft.hsms[hsmId]
      if (hsm === undefined || (hsm.state !== 'ACTIVE' && hsm.state !== 'DEGRADED')) return undefined
      hsm.state = 'DEGRADED'
      hsm.stateMessage = `The HSM process exited unexpectedly (${how}); it is being restarted.`
      hsm.failures += 1
      delete hsm.pid
      return hsm.failures
    })
    if (failures !== undefined) this.restartAt.set(hsmId, runtime.realNow() + backoff(tuning.hsmRestartDelayMs, tuning.hsmRestartDelayMaxMs, failures))
    runtime.kick()
  }

  /** Starts an HSM process and records its pid as soon as it exists. */
  private async startProcess (hsm: HsmRecord, provision: boolean, port: number): Promise<{ pid: number, port: number }> {
    const paths = hsmPaths(this.p.dataDir, hsm.hsmId)
    return await this.p.supervisor.start(hsm.hsmId, paths, { host: hsm.eniIp, port }, provision, async pid => {
      await this.c.store.transact(draft => {
        const h = draft.hsms[hsm.hsmId]
        if (h !== undefined) h.pid = pid
      })
    })
  }

  /** Handles a failure to start: halts the HSM (its data or backup cannot be loaded) or schedules a retry. */
  private async startFailed (hsmId: string, err: unknown, creating: boolean): Promise<void> {
    const { store, log, runtime, tuning } = this.c
    const exitCode = err instanceof HsmStartError ? err.exitCode : undefined
    const restoreFrom = store.state.hsms[hsmId]?.restoreFrom
    // The HSM names the file it was given to restore; the API's user knows the backup.
    const message = restoreFrom === undefined
      ? (err as Error).message
      : (err as Error).message.replaceAll(`the backup file ${resolve(hsmPaths(this.p.dataDir, hsmId).restoreFile)}`, `backup ${restoreFrom}`)
    log.warn({ hsmId, exitCode, err: message }, 'HSM process failed to start')
    const failures = await store.transact(draft => {
      const hsm = draft.hsms[hsmId]
      if (hsm === undefined) return 0
      delete hsm.pid
      hsm.failures += 1
      const give = exitCode === 2 || (creating && hsm.failures >= 3)
      if (give) {
        hsm.state = 'DEGRADED'
        hsm.halted = true
        hsm.stateMessage = `${creating ? 'The HSM could not be created' : 'The HSM cannot be started'}: ${message}`.slice(0, 1000)
        // A cluster waiting for its first HSM to restore its source backup says why it stays UNINITIALIZED.
        const cluster = draft.clusters[hsm.clusterId]
        if (creating && cluster?.state === 'UNINITIALIZED' && cluster.sourceBackupId !== undefined && restoreFrom === cluster.sourceBackupId) {
          cluster.stateMessage = `Backup ${restoreFrom} could not be restored: ${message}`.slice(0, 1000)
        }
      } else if (!creating) {
        hsm.state = 'DEGRADED'
        hsm.stateMessage = `The HSM process failed to start (attempt ${hsm.failures}); retrying: ${message}`.slice(0, 1000)
      }
      return hsm.failures
    })
    this.restartAt.set(hsmId, runtime.realNow() + backoff(tuning.hsmRestartDelayMs, tuning.hsmRestartDelayMaxMs, failures))
  }

  /**
   * After a ready line: the HSM ACTIVE, once it told what only it can: its lineage (getHsmInfo)
   * and, for a cluster that has none yet, its certificates. A new HSM of a cluster whose lineage
   * is known, restored from the cluster's backup, has that lineage: it is ACTIVE at once, and the
   * link to it opens with its peer list, right after. A restarted one is asked, through its
   * route if it has one, so that the link is open again for what comes next.
   */
  private async afterReady (hsmId: string, ran: { pid: number, port: number }, provisioned: boolean): Promise<void> {
    const { store, log } = this.c
    const known = store.state.hsms[hsmId]
    if (known === undefined) return
    const cluster = store.state.clusters[known.clusterId]
    const askCertificates = cluster !== undefined && cluster.certificates.HsmCertificate === undefined
    const askInfo = askCertificates || (cluster !== undefined && (cluster.lineage === undefined || known.state !== 'CREATE_IN_PROGRESS'))
    let lineage: string | undefined
    let clusterCsr: string | undefined
    const certificates: Record<string, string> = {}
    if (askInfo) {
      // Its port is recorded before it is asked, so a control plane that dies meanwhile adopts it where it listens.
      const first = await store.transact(draft => {
        const h = draft.hsms[hsmId]
        if (h === undefined) return undefined
        h.pid = ran.pid
        h.port = ran.port
        return { ...h }
      })
      if (first === undefined) return
      const address = this.p.directory.addressOf(first)
      if (address !== undefined) {
        try {
          const certificate = async (certType: number): Promise<string> => (await this.p.links.call(address, 'getCertificate', { certType })).pem
          // The HSM's X.509 chain (hsm certificates.ts): 2 manufacturer hardware, 16 HSM, 32 AWS hardware, 64 the cluster's CSR.
          const [info, manufacturer, hsmCertificate, aws, csr] = await Promise.all([
            this.p.links.call(address, 'getHsmInfo', {}),
            ...(askCertificates ? [certificate(2), certificate(16), certificate(32), certificate(64)] : [])
          ])
          lineage = info.lineage
          if (manufacturer !== undefined && hsmCertificate !== undefined && aws !== undefined && csr !== undefined) {
            certificates.ManufacturerHardwareCertificate = manufacturer
            certificates.HsmCertificate = hsmCertificate
            certificates.AwsHardwareCertificate = aws
            clusterCsr = csr
          }
        } catch (err) {
          log.warn({ hsmId, err: (err as Error).message }, 'the HSM is ready but did not answer getHsmInfo/getCertificate')
        }
      }
    }
    await store.transact(draft => {
      const h = draft.hsms[hsmId]
      if (h === undefined) return
      h.pid = ran.pid
      h.port = ran.port
      if (h.state === 'CREATE_IN_PROGRESS' || h.state === 'DEGRADED') {
        h.state = 'ACTIVE'
        h.stateMessage = ACTIVE_HSM_MESSAGE
      }
      h.provisioned = h.provisioned || provisioned
      h.failures = 0
      const c = draft.clusters[h.clusterId]
      if (c === undefined) return
      if (lineage !== undefined) c.lineage ??= lineage
      for (const [k, v] of Object.entries(certificates)) (c.certificates as Record<string, string>)[k] ??= v
      if (c.state === 'UNINITIALIZED' && c.sourceBackupId !== undefined) {
        c.state = 'ACTIVE'
        delete c.stateMessage
        log.info({ clusterId: c.clusterId, from: c.sourceBackupId }, 'cluster restored from its backup: ACTIVE')
      } else if (c.state === 'UNINITIALIZED' && c.certificates.ClusterCsr === undefined) {
        // The first HSM made the CSR with the key its HsmCertificate certifies: SignedCert must certify that key.
        if (clusterCsr !== undefined && c.csrPem === undefined && c.certificates.HsmCertificate !== undefined) {
          try {
            c.csrPublicKeyPem = publicKeyPemOfCertificate(c.certificates.HsmCertificate)
            c.csrPem = clusterCsr
          } catch (err) {
            log.warn({ clusterId: c.clusterId, err: (err as Error).message }, 'the HSM certificate cannot be read: the cluster has no CSR yet')
          }
        }
        if (c.csrPem !== undefined) c.certificates.ClusterCsr = c.csrPem
      }
    })
    this.restartAt.delete(hsmId)
    log.info({ hsmId, pid: ran.pid, port: ran.port }, 'HSM ACTIVE')
  }

  /** Where a new HSM's content comes from: nothing (a new cluster), a backup, or not decidable yet. */
  private async restoreSourceFor (hsm: HsmRecord): Promise<{ backupId?: string, wait?: boolean }> {
    const { store } = this.c
    const state = store.state
    const cluster = state.clusters[hsm.clusterId]
    if (cluster === undefined) throw new ControlPlaneError(CP_ERR_HSM, `cluster ${hsm.clusterId} is gone`)
    if (cluster.state === 'UNINITIALIZED') return cluster.sourceBackupId === undefined ? {} : { backupId: cluster.sourceBackupId }
    const others = hsmsOf(state, cluster.clusterId).filter(h => h.hsmId !== hsm.hsmId)
    const running = this.p.directory.running(cluster.clusterId).filter(h => h.hsmId !== hsm.hsmId)
    const source = running[0]
    if (source !== undefined) {
      const backup = await this.p.backups.make(cluster.clusterId, 'hsm-added', source.hsmId)
      await backup.done
      const made = store.state.backups[backup.backupId]
      if (made?.state !== 'READY') throw new ControlPlaneError(CP_ERR_BACKUP, `the backup of ${source.hsmId} to restore onto ${hsm.hsmId} failed: ${made?.stateMessage ?? 'unknown reason'}`)
      return { backupId: backup.backupId }
    }
    if (others.some(h => h.state === 'CREATE_IN_PROGRESS' || ((h.state === 'ACTIVE' || h.state === 'DEGRADED') && h.halted !== true))) return { wait: true }
    const latest = Object.values(state.backups)
      .filter(b => (b.clusterId === cluster.clusterId || b.backupId === cluster.sourceBackupId) && (b.state === 'READY' || b.state === 'PENDING_DELETION') && b.file !== undefined)
      .sort((a, b) => b.createdAtMs - a.createdAtMs)[0]
    if (latest === undefined) throw new ControlPlaneError(CP_ERR_BACKUP, `cluster ${cluster.clusterId} has no HSM and no backup to restore a new HSM from`)
    return { backupId: latest.backupId }
  }

  private async provision (hsmId: string): Promise<void> {
    const { store, runtime } = this.c
    const { supervisor, keyring, dataDir } = this.p
    let hsm = store.state.hsms[hsmId]
    if (hsm === undefined || hsm.state !== 'CREATE_IN_PROGRESS') return
    const cluster = store.state.clusters[hsm.clusterId]
    const paths = hsmPaths(dataDir, hsmId)
    // A process a previous control plane started and did not see ready: start over.
    if (supervisor.pidOf(hsmId) !== undefined) await supervisor.kill(hsmId)
    try {
      if (cluster === undefined || cluster.state === 'DELETED') throw new ControlPlaneError(CP_ERR_HSM, `cluster ${hsm.clusterId} can no longer take HSMs`)
      if (!keyring.has(cluster.clusterId)) {
        throw new ControlPlaneError(CP_ERR_HSM, `the keyring ${keyring.file} holds no trust anchor for cluster ${cluster.clusterId}, so no HSM identity can be issued; restore the file from a copy of the data directory`)
      }
      let provision = await exists(paths.provisionFile)
      if (!provision && !(await nonEmptyDir(paths.dataDir))) {
        let restoreFrom = hsm.restoreFrom
        if (restoreFrom === undefined) {
          const decision = await this.restoreSourceFor(hsm)
          if (decision.wait === true) {
            this.restartAt.set(hsmId, runtime.realNow() + RESTORE_WAIT_MS)
            return
          }
          restoreFrom = decision.backupId
          if (restoreFrom !== undefined) {
            const chosen = restoreFrom
            await store.transact(draft => { const h = draft.hsms[hsmId]; if (h !== undefined) h.restoreFrom = chosen })
          }
        }
        await mkdir(paths.dir, { recursive: true, mode: 0o700 })
        if (restoreFrom !== undefined) {
          const backup = store.state.backups[restoreFrom]
          if (backup?.file === undefined || backup.state === 'DELETED') {
            throw new HsmStartError(`backup ${restoreFrom} to restore is no longer available (${backup?.state ?? 'unknown'})`, 2)
          }
          await this.p.files.copyTo(backup.file, paths.restoreFile)
        }
        const issued = keyring.issueIdentity(hsm.clusterId, hsmId)
        await writeProvisionFile(paths.provisionFile, {
          hsmId,
          clusterId: hsm.clusterId,
          slot: hsm.slot,
          anchorPublicKey: new Uint8Array(Buffer.from(cluster.anchorPublicKey, 'base64')),
          identitySecretKey: issued.identity.secretKey,
          certificate: issued.certificate,
          ...(restoreFrom === undefined ? {} : { backupFile: resolve(paths.restoreFile) })
        })
        provision = true
      }
      hsm = store.state.hsms[hsmId]
      if (hsm === undefined || hsm.state !== 'CREATE_IN_PROGRESS') return
      const ran = await this.startProcess(hsm, provision, hsm.port ?? 0)
      await this.afterReady(hsmId, ran, true)
      await rm(paths.restoreFile, { force: true })
    } catch (err) {
      await this.startFailed(hsmId, err, true)
    }
  }

  private async restart (hsmId: string): Promise<void> {
    const hsm = this.c.store.state.hsms[hsmId]
    if (hsm === undefined || (hsm.state !== 'ACTIVE' && hsm.state !== 'DEGRADED') || hsm.halted === true) return
    const paths = hsmPaths(this.p.dataDir, hsmId)
    const provision = await exists(paths.provisionFile)
    try {
      let ran
      try {
        ran = await this.startProcess(hsm, provision, hsm.port ?? 0)
      } catch (err) {
        // Its port was taken meanwhile: take another one (the peers hear of it).
        if (hsm.port !== undefined && err instanceof HsmStartError && err.exitCode === 1 && /HSM_ERR_LISTEN|EADDRINUSE/.test(err.message)) {
          ran = await this.startProcess(hsm, provision, 0)
        } else {
          throw err
        }
      }
      await this.afterReady(hsmId, ran, provision)
    } catch (err) {
      await this.startFailed(hsmId, err, false)
    }
  }

  private async delete (hsmId: string): Promise<void> {
    const { store, clock, log } = this.c
    const { supervisor, dataDir } = this.p
    const hsm = store.state.hsms[hsmId]
    if (hsm === undefined || hsm.state !== 'DELETE_IN_PROGRESS') return
    const cluster = store.state.clusters[hsm.clusterId]
    // Removing an HSM from an active cluster makes a backup first (of this HSM, while it runs).
    if (cluster?.state === 'ACTIVE' && supervisor.pidOf(hsmId) !== undefined && hsm.port !== undefined) {
      try {
        const backup = await this.p.backups.make(hsm.clusterId, 'hsm-removed', hsmId)
        await backup.done
      } catch (err) {
        log.warn({ hsmId, err: (err as Error).message }, 'no backup could be made before the HSM was deleted')
      }
    }
    const paths = hsmPaths(dataDir, hsmId)
    if (supervisor.pidOf(hsmId) === undefined && hsm.pid !== undefined) await supervisor.adopt(hsmId, hsm.pid, paths, 50)
    await supervisor.stop(hsmId)
    // Before it is DELETED, so that a failure (its host does not answer) is tried again.
    await supervisor.removeData(hsmId, paths)
    this.p.links.drop(hsmId)
    this.p.peers.forget(hsmId)
    this.restartAt.delete(hsmId)
    await store.transact(draft => {
      const h = draft.hsms[hsmId]
      if (h === undefined) return
      h.state = 'DELETED'
      h.stateMessage = 'The HSM has been deleted.'
      h.deletedAtMs = clock.now()
      delete h.pid
    })
    log.info({ hsmId }, 'HSM DELETED')
  }
}
