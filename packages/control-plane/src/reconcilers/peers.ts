/**
 * The peer lists of the HSMs: after every change of a cluster's running HSMs (or of the routes
 * between them, HsmlabSetHsmRoutes), each HSM gets the list of its peers, each where it reaches
 * them, signed with the cluster's trust anchor under a version never used before (`setPeers`).
 * It also tells HsmlabDescribeHsmRoutes whether a route is in use and delivered.
 */
import type { PeerAddress } from '@hsmlab/protocol'
import type { AnchorKeyring } from '../anchor-keyring.js'
import { CONTROL_PLANE_ROUTE_FROM } from '../api/routes.js'
import type { HsmCaller } from '../hsm-links.js'
import type { HsmRecord, HsmRouteRecord } from '../state-store.js'
import type { HsmDirectory } from './hsm-directory.js'
import type { ReconcilerComponents } from './runtime.js'

/** Peer lists of the HSMs. */
export class PeerReconciler {
  private readonly c: ReconcilerComponents
  private readonly keyring: Pick<AnchorKeyring, 'has' | 'signPeers'>
  private readonly directory: HsmDirectory
  private readonly links: HsmCaller
  /** The peer set each HSM last took, as `peerSetKey`. */
  private readonly pushed = new Map<string, string>()
  /** The peer list each HSM last took (setPeers), for HsmlabDescribeHsmRoutes' `Delivered`. */
  private readonly delivered = new Map<string, PeerAddress[]>()

  constructor (components: ReconcilerComponents & { keyring: Pick<AnchorKeyring, 'has' | 'signPeers'>, directory: HsmDirectory, links: HsmCaller }) {
    this.c = components
    this.keyring = components.keyring
    this.directory = components.directory
    this.links = components.links
  }

  /** One pass: a cluster with an HSM whose peer list is not the current one gets new lists. */
  pass (): void {
    for (const cluster of Object.values(this.c.store.state.clusters)) {
      const active = this.directory.running(cluster.clusterId)
      if (active.length === 0 || !this.keyring.has(cluster.clusterId)) continue
      if (active.some(h => this.pushed.get(h.hsmId) !== this.peerSetKey(h, active))) {
        void this.c.runtime.run(`peers:${cluster.clusterId}`, async () => { await this.push(cluster.clusterId) })
      }
    }
  }

  /** Forgets what a deleted HSM was sent. */
  forget (hsmId: string): void {
    this.pushed.delete(hsmId)
    this.delivered.delete(hsmId)
  }

  /** HsmlabDescribeHsmRoutes: whether a route is in use, and whether its `from` has it. */
  routeStatus (route: HsmRouteRecord): { inUse: boolean, delivered: boolean } {
    const hsm = this.c.store.state.hsms[route.hsmId]
    const inUse = hsm !== undefined && this.directory.routeOf(route.from, hsm) === route.endpoint
    if (route.from === CONTROL_PLANE_ROUTE_FROM) return { inUse, delivered: inUse }
    const delivered = this.delivered.get(route.from)?.some(p => p.hsmId === route.hsmId && p.endpoint === route.endpoint) ?? false
    return { inUse, delivered: inUse && delivered }
  }

  private peerSetKey (target: HsmRecord, hsms: HsmRecord[]): string {
    return this.directory.peersFor(target, hsms).map(p => `${p.hsmId}@${p.endpoint}`).sort().join(',')
  }

  private async push (clusterId: string): Promise<void> {
    const { store, log } = this.c
    const cluster = store.state.clusters[clusterId]
    const active = this.directory.running(clusterId)
    if (cluster === undefined || !this.keyring.has(clusterId) || active.length === 0) return
    const targets = active.filter(h => this.pushed.get(h.hsmId) !== this.peerSetKey(h, active))
    if (targets.length === 0) return
    // A version is recorded before any HSM sees it, so it is never used twice.
    const version = await store.transact(draft => {
      const c = draft.clusters[clusterId]
      if (c === undefined) return 0
      c.peersVersion = Math.max(c.peersVersion + 1, Date.now())
      return c.peersVersion
    })
    await Promise.all(targets.map(async hsm => {
      const address = this.directory.addressOf(hsm)
      if (address === undefined) return
      // Each HSM gets its own list: its routes (HsmlabSetHsmRoutes) decide where it reaches each peer.
      const peers = this.directory.peersFor(hsm, active)
      const setKey = this.peerSetKey(hsm, active)
      try {
        await this.links.call(address, 'setPeers', { peers, version, signature: this.keyring.signPeers(clusterId, hsm.hsmId, peers, version) })
        this.pushed.set(hsm.hsmId, setKey)
        this.delivered.set(hsm.hsmId, peers)
      } catch (err) {
        const stored = /stored version (\d+)/.exec((err as Error).message)
        if (stored !== null) {
          const seen = Number(stored[1])
          await store.transact(draft => { const c = draft.clusters[clusterId]; if (c !== undefined) c.peersVersion = Math.max(c.peersVersion, seen) })
        }
        log.warn({ hsmId: hsm.hsmId, err: (err as Error).message }, 'the HSM did not take its peer list; trying again')
      }
    }))
    log.info({ clusterId, version, peers: active.length, targets: targets.length }, 'peer lists sent')
  }
}
