/**
 * Where the control plane and each HSM reach an HSM, and which HSMs run: read from the state
 * (the HSM records and the routes of HsmlabSetHsmRoutes) and from the supervisor (whose process
 * runs). Every reconciler that talks to HSMs asks here; none keeps its own copy.
 */
import type { PeerAddress } from '@hsmlab/protocol'
import { hsmEndpoint, hsmsOf } from '../api/render.js'
import { CONTROL_PLANE_ROUTE_FROM } from '../api/routes.js'
import type { HsmAddress } from '../hsm-links.js'
import type { HsmProcesses } from '../hsm-supervisor.js'
import type { HsmRecord, HsmRouteRecord, StateStore } from '../state-store.js'

/** Routes, addresses and running HSMs. */
export class HsmDirectory {
  private readonly store: StateStore
  private readonly supervisor: Pick<HsmProcesses, 'pidOf'>
  /** The routes of the state by `from->hsmId`, rebuilt when they change. */
  private routeIndex: { of: readonly HsmRouteRecord[] | undefined, byKey: Map<string, HsmRouteRecord> } = { of: undefined, byKey: new Map() }

  constructor (store: StateStore, supervisor: Pick<HsmProcesses, 'pidOf'>) {
    this.store = store
    this.supervisor = supervisor
  }

  /**
   * Where `from` (`control-plane` or an HSM id) reaches `hsm` through a route (HsmlabSetHsmRoutes),
   * or undefined for its own endpoint: no route, or the HSM is no longer where the route leads.
   */
  routeOf (from: string, hsm: HsmRecord): string | undefined {
    const routes = this.store.state.hsmRoutes
    if (routes === undefined || routes.length === 0) return undefined
    if (this.routeIndex.of !== routes) this.routeIndex = { of: routes, byKey: new Map(routes.map(r => [`${r.from}->${r.hsmId}`, r])) }
    const route = this.routeIndex.byKey.get(`${from}->${hsm.hsmId}`)
    const direct = hsmEndpoint(hsm)
    if (route === undefined || direct === undefined || (route.upstream !== undefined && route.upstream !== direct)) return undefined
    return route.endpoint
  }

  /** Where the control plane reaches `hsm` (its route, else its own endpoint), and who it must be. */
  addressOf (hsm: HsmRecord): HsmAddress | undefined {
    const cluster = this.store.state.clusters[hsm.clusterId]
    const url = this.routeOf(CONTROL_PLANE_ROUTE_FROM, hsm) ?? hsmEndpoint(hsm)
    if (cluster === undefined || url === undefined) return undefined
    return { hsmId: hsm.hsmId, clusterId: hsm.clusterId, url, anchorPublicKey: new Uint8Array(Buffer.from(cluster.anchorPublicKey, 'base64')) }
  }

  /** The ACTIVE HSMs of a cluster whose process runs. */
  running (clusterId: string): HsmRecord[] {
    return hsmsOf(this.store.state, clusterId).filter(h => h.state === 'ACTIVE' && h.port !== undefined && this.supervisor.pidOf(h.hsmId) !== undefined)
  }

  /** True while HSM `hsmId`'s process runs. */
  runs (hsmId: string): boolean {
    return this.supervisor.pidOf(hsmId) !== undefined
  }

  /** The peer list `target` gets: every HSM of `hsms`, each where `target` reaches it (a route, else its own endpoint). */
  peersFor (target: HsmRecord, hsms: HsmRecord[]): PeerAddress[] {
    return hsms.map(h => ({ hsmId: h.hsmId, endpoint: (h.hsmId === target.hsmId ? undefined : this.routeOf(target.hsmId, h)) ?? hsmEndpoint(h) ?? '' }))
  }
}
