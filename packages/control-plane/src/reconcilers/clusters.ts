/**
 * The clusters of this region: CREATE_IN_PROGRESS → UNINITIALIZED, INITIALIZE_IN_PROGRESS →
 * INITIALIZED and DELETE_IN_PROGRESS → DELETED once their delays (set by the API) passed;
 * an initialized cluster's running HSMs are given its SignedCert and TrustAnchor
 * (setClusterCertificates, which they keep and put in their backups: getCert 8 and 4), and
 * INITIALIZE_IN_PROGRESS → INITIALIZED waits until each running HSM holds them;
 * INITIALIZED → ACTIVE once no HSM of the cluster has a PRECO left (its listUsers, polled; a
 * backup is made then); a DELETED cluster's trust anchor leaves the keyring, and its record is
 * pruned after `deletedRecordsKeptLabDays`. A cluster made from a backup becomes ACTIVE when its
 * first HSM restored it (reconcilers/hsms.ts).
 */
import type { AnchorKeyring } from '../anchor-keyring.js'
import { DAY_MS } from '../clock.js'
import type { HsmCaller } from '../hsm-links.js'
import type { ClusterRecord } from '../state-store.js'
import type { BackupMaker } from './backups.js'
import type { HsmDirectory } from './hsm-directory.js'
import { backoff } from './runtime.js'
import type { ReconcilerComponents } from './runtime.js'

type ClusterKeyring = Pick<AnchorKeyring, 'clusterIds' | 'remove' | 'signClusterCertificates'>

/** The states in which a cluster's HSMs are to hold the certificates it was initialized with. */
const CERTIFIED_STATES: ReadonlySet<string> = new Set(['INITIALIZE_IN_PROGRESS', 'INITIALIZED', 'ACTIVE', 'DEGRADED', 'UPDATE_IN_PROGRESS', 'MODIFY_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS'])

/**
 * Least time between two activation checks of an INITIALIZED cluster (listUsers on its HSMs), in
 * milliseconds. Checks run on every pass, and sooner while someone describes the cluster.
 */
const ACTIVATION_POLL_MS = 50

/** Clusters of this region. */
export class ClusterReconciler {
  private readonly c: ReconcilerComponents
  private readonly keyring: ClusterKeyring
  private readonly directory: HsmDirectory
  private readonly links: HsmCaller
  private readonly backups: BackupMaker
  /** Real time of each INITIALIZED cluster's last activation check. */
  private readonly lastActivationPoll = new Map<string, number>()
  /** HSMs that hold their cluster's certificates (setClusterCertificates answered) since this control plane started. */
  private readonly certified = new Set<string>()
  /** Failed setClusterCertificates by HSM: how many in a row, and the real time before which it is not tried again. */
  private readonly certifyRetry = new Map<string, { failures: number, atMs: number }>()

  constructor (components: ReconcilerComponents & { keyring: ClusterKeyring, directory: HsmDirectory, links: HsmCaller, backups: BackupMaker }) {
    this.c = components
    this.keyring = components.keyring
    this.directory = components.directory
    this.links = components.links
    this.backups = components.backups
  }

  /** One pass: timed transitions and purges due, anchors of DELETED clusters, activation checks. */
  async pass (labNow: number): Promise<void> {
    const { store, log, runtime } = this.c
    const realNow = runtime.realNow()
    const keepMs = this.c.tuning.deletedRecordsKeptLabDays * DAY_MS
    this.certify(realNow)
    // A cluster is INITIALIZED once its running HSMs hold its certificates: the activation backup carries them.
    const due = Object.values(store.state.clusters).filter(c => c.transitionAtRealMs !== undefined && c.transitionAtRealMs <= realNow &&
      (c.state === 'CREATE_IN_PROGRESS' || (c.state === 'INITIALIZE_IN_PROGRESS' && this.holdCertificates(c)) || c.state === 'DELETE_IN_PROGRESS'))
    const prune = Object.values(store.state.clusters).filter(c => c.state === 'DELETED' && (c.deletedAtMs ?? labNow) + keepMs < labNow).map(c => c.clusterId)
    if (due.length + prune.length > 0) {
      await store.transact(draft => {
        for (const { clusterId } of due) {
          const c = draft.clusters[clusterId]
          if (c === undefined) continue
          delete c.transitionAtRealMs
          if (c.state === 'CREATE_IN_PROGRESS') {
            c.state = 'UNINITIALIZED'
            delete c.stateMessage
          } else if (c.state === 'INITIALIZE_IN_PROGRESS') {
            c.state = 'INITIALIZED'
            c.stateMessage = 'Cluster is initialized. Activate it: log in as the PRECO and change its password.'
          } else if (c.state === 'DELETE_IN_PROGRESS') {
            c.state = 'DELETED'
            c.stateMessage = 'The cluster has been deleted.'
            c.deletedAtMs = labNow
            delete c.csrPublicKeyPem
            delete c.csrPem
          }
          log.info({ clusterId, state: c.state }, 'cluster state changed')
        }
        for (const id of prune) delete draft.clusters[id]
      })
    }
    // A DELETED cluster's trust anchor goes (it issues nothing more); a failure is tried again on the next pass.
    await this.dropDeletedAnchors(prune).catch(err => { log.warn({ err: (err as Error).message }, 'the keyring could not be written') })
    for (const cluster of Object.values(store.state.clusters)) {
      if (cluster.state !== 'INITIALIZED' || (this.lastActivationPoll.get(cluster.clusterId) ?? 0) + ACTIVATION_POLL_MS > realNow) continue
      if (this.directory.running(cluster.clusterId).length === 0) continue
      this.lastActivationPoll.set(cluster.clusterId, realNow)
      void runtime.run(`activate:${cluster.clusterId}`, async () => { await this.pollActivation(cluster.clusterId) })
    }
  }

  /** True when every running HSM of `cluster` holds its certificates. */
  private holdCertificates (cluster: ClusterRecord): boolean {
    return this.directory.running(cluster.clusterId).every(h => this.certified.has(h.hsmId))
  }

  /**
   * Gives each running HSM of an initialized cluster, that does not hold them yet, the cluster's
   * SignedCert and TrustAnchor. A cluster made from a backup has no TrustAnchor of its own: its
   * HSMs restored the certificates with the backup.
   */
  private certify (realNow: number): void {
    const { store, runtime } = this.c
    for (const id of this.certified) if (store.state.hsms[id] === undefined) this.certified.delete(id)
    for (const cluster of Object.values(store.state.clusters)) {
      const clusterCertificate = cluster.certificates.ClusterCertificate
      const trustAnchor = cluster.customerTrustAnchor
      if (!CERTIFIED_STATES.has(cluster.state) || clusterCertificate === undefined || trustAnchor === undefined) continue
      for (const hsm of this.directory.running(cluster.clusterId)) {
        if (this.certified.has(hsm.hsmId) || (this.certifyRetry.get(hsm.hsmId)?.atMs ?? 0) > realNow) continue
        void runtime.run(`certify:${hsm.hsmId}`, async () => {
          const address = this.directory.addressOf(hsm)
          if (address === undefined) return
          const certificates = { clusterCertificate, trustAnchor }
          try {
            await this.links.call(address, 'setClusterCertificates', { ...certificates, signature: this.keyring.signClusterCertificates(cluster.clusterId, hsm.hsmId, certificates) })
            this.certified.add(hsm.hsmId)
            this.certifyRetry.delete(hsm.hsmId)
          } catch (err) {
            const failures = (this.certifyRetry.get(hsm.hsmId)?.failures ?? 0) + 1
            this.certifyRetry.set(hsm.hsmId, { failures, atMs: runtime.realNow() + backoff(this.c.tuning.hsmRestartDelayMs, this.c.tuning.hsmRestartDelayMaxMs, failures) })
            this.c.log.warn({ hsmId: hsm.hsmId, err: (err as Error).message }, 'the HSM did not take its cluster\'s certificates; trying again')
          }
        })
      }
    }
  }

  /**
   * Forgets the trust anchors of clusters that are DELETED or were just pruned. An anchor without
   * a record stays otherwise: a cluster being created has its anchor before its record.
   */
  private async dropDeletedAnchors (pruned: readonly string[]): Promise<void> {
    const clusters = this.c.store.state.clusters
    await this.keyring.remove(this.keyring.clusterIds().filter(id => clusters[id]?.state === 'DELETED' || pruned.includes(id)))
  }

  /** INITIALIZED → ACTIVE once no running HSM of the cluster lists a PRECO; a backup follows. */
  private async pollActivation (clusterId: string): Promise<void> {
    const hsms = this.directory.running(clusterId)
    if (hsms.length === 0) return
    for (const hsm of hsms) {
      const address = this.directory.addressOf(hsm)
      if (address === undefined) return
      const { users } = await this.links.call(address, 'listUsers', {})
      if (users.some(u => u.userType === 'PRECO')) return
    }
    const activated = await this.c.store.transact(draft => {
      const c = draft.clusters[clusterId]
      if (c?.state !== 'INITIALIZED') return false
      c.state = 'ACTIVE'
      delete c.stateMessage
      return true
    })
    if (activated) {
      this.c.log.info({ clusterId }, 'cluster ACTIVE: the PRECO changed its password')
      await this.backups.make(clusterId, 'activation')
    }
  }
}
