/**
 * hsmlab's extension operations for routes to HSMs: `HsmlabSetHsmRoutes` replaces the region's
 * table of routes (who reaches which HSM through which endpoint, such as a fault proxy's
 * listener), `HsmlabDescribeHsmRoutes` shows it with whether each route is in use and delivered.
 * A route `from` an HSM changes the peer list the control plane sends to that HSM (`setPeers`);
 * a route from `control-plane` changes where the control plane itself dials the HSM. A route is
 * used only while the HSM is at its `Upstream` endpoint, so a route made before an HSM moved to
 * another port is left aside rather than leading nowhere. See docs/control-plane.md.
 */
import { invalidRequest, notFound } from '../errors.js'
import type { HsmRouteRecord } from '../state-store.js'
import type { ApiRequest } from '../api-types.js'
import type { ApiContext } from './context.js'

/** `From` of a route the control plane itself uses. */
export const CONTROL_PLANE_ROUTE_FROM = 'control-plane'

/** A route as the API shows it. */
function render (ctx: ApiContext, route: HsmRouteRecord): Record<string, unknown> {
  const status = ctx.hsmRouteStatus(route)
  return {
    HsmId: route.hsmId,
    From: route.from,
    Endpoint: route.endpoint,
    ...(route.upstream === undefined ? {} : { Upstream: route.upstream }),
    InUse: status.inUse,
    Delivered: status.delivered
  }
}

function sameRoutes (a: readonly HsmRouteRecord[], b: readonly HsmRouteRecord[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/**
 * `HsmlabSetHsmRoutes {Routes: [{HsmId, From, Endpoint, Upstream?}]}` → `{Routes}`: replaces every
 * route of the region (`Routes: []` removes them all). Each HsmId must be an HSM of this region that
 * is not DELETED; From is `control-plane` or another HSM of the same cluster; a pair is given once.
 */
export async function hsmlabSetHsmRoutes (ctx: ApiContext, req: ApiRequest<'HsmlabSetHsmRoutes'>): Promise<unknown> {
  const state = ctx.store.state
  const seen = new Set<string>()
  const routes: HsmRouteRecord[] = req.Routes.map(r => {
    const hsm = state.hsms[r.HsmId]
    if (hsm === undefined || hsm.state === 'DELETED') throw notFound(`HSM ${r.HsmId} not found in ${ctx.settings.region}`)
    if (r.From !== CONTROL_PLANE_ROUTE_FROM) {
      const from = state.hsms[r.From]
      if (from === undefined || from.state === 'DELETED') throw notFound(`HSM ${r.From} (From of the route to ${r.HsmId}) not found in ${ctx.settings.region}`)
      if (r.From === r.HsmId) throw invalidRequest(`The route to ${r.HsmId} is from the HSM itself: an HSM does not dial itself`)
      if (from.clusterId !== hsm.clusterId) {
        throw invalidRequest(`The route from ${r.From} to ${r.HsmId} joins two clusters (${from.clusterId}, ${hsm.clusterId}): HSMs dial only the HSMs of their own cluster`)
      }
    }
    const key = `${r.From}->${r.HsmId}`
    if (seen.has(key)) throw invalidRequest(`The route from ${r.From} to ${r.HsmId} is given twice; give each pair once`)
    seen.add(key)
    return { hsmId: r.HsmId, from: r.From, endpoint: r.Endpoint, ...(r.Upstream === undefined ? {} : { upstream: r.Upstream }) }
  })
  if (!sameRoutes(routes, state.hsmRoutes ?? [])) {
    await ctx.store.transact(draft => { draft.hsmRoutes = routes })
    ctx.kick()
  }
  return { Routes: routes.map(r => render(ctx, r)) }
}

/** `HsmlabDescribeHsmRoutes {}` → `{Routes: [{HsmId, From, Endpoint, Upstream?, InUse, Delivered}]}`. */
export async function hsmlabDescribeHsmRoutes (ctx: ApiContext, _req: ApiRequest<'HsmlabDescribeHsmRoutes'>): Promise<unknown> {
  return { Routes: (ctx.store.state.hsmRoutes ?? []).map(r => render(ctx, r)) }
}
