/**
 * HSM operations: CreateHsm and DeleteHsm (reference F.5, F.7). They record the request; the
 * control plane's background loop does the work (spawning and restoring the HSM process, or
 * stopping it) and moves the states on.
 *
 * Addresses: with `per-hsm` addressing (the default on Linux, where all of 127.0.0.0/8 is
 * loopback), the subnet of availability zone `<region>a` is 127.R.1.0/24, `<region>b`
 * 127.R.2.0/24, and so on, where R is the region's own number (`regionOctet`: us-east-1 1,
 * us-east-2 2, us-west-1 3, us-west-2 4, then the other AWS regions from a fixed table), so the
 * HSMs of two regions never share an address (us-east-1a's first HSM is 127.1.1.4, us-west-2a's
 * 127.4.1.4); an HSM gets the first free address from .4 (AWS reserves the first four of a
 * subnet) and listens on it, so its EniIp is where clients reach it. With `shared` addressing
 * every HSM listens on the control plane's `hsmHost` (by default its host). With HSM hosts
 * (`--hsm-hosts`), an HSM is placed on a free host of its availability zone and gets its address;
 * when none is free, CreateHsm answers CloudHsmResourceLimitExceededException and changes nothing.
 */
import { randomResourceId } from '@hsmlab/hsm'
import { ApiError, invalidRequest, notFound } from '../errors.js'
import type { ControlPlaneState, HsmRecord } from '../state-store.js'
import { randomHex } from './clusters.js'
import { clusterOf } from './common.js'
import type { ApiRequest } from '../api-types.js'
import type { ApiContext, ApiSettings } from './context.js'
import { hsmsOf, renderHsm } from './render.js'

const FIRST_HOST = 4
const LAST_HOST = 254

/**
 * The AWS regions in a fixed order: a region's second address octet is its position + 1. Append
 * only (never reorder), or the addresses of existing labs' HSMs would move.
 */
export const REGION_OCTETS: readonly string[] = [
  'us-east-1', 'us-east-2', 'us-west-1', 'us-west-2',
  'ca-central-1', 'ca-west-1', 'mx-central-1', 'sa-east-1',
  'eu-west-1', 'eu-west-2', 'eu-west-3', 'eu-central-1', 'eu-central-2', 'eu-north-1', 'eu-south-1', 'eu-south-2',
  'ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3', 'ap-southeast-1', 'ap-southeast-2', 'ap-southeast-3',
  'ap-southeast-4', 'ap-southeast-5', 'ap-southeast-7', 'ap-south-1', 'ap-south-2', 'ap-east-1',
  'me-south-1', 'me-central-1', 'il-central-1', 'af-south-1',
  'us-gov-east-1', 'us-gov-west-1', 'cn-north-1', 'cn-northwest-1'
]

/**
 * The second address octet of a region's HSMs, 1 to 254: its place in `REGION_OCTETS`, else
 * (a region not in the table) a hash (FNV-1a) of its name onto the octets after the table's.
 * A fallback octet never equals a table region's, but two regions outside the table can hash to
 * the same octet (and then their HSMs can share addresses, as all regions did before).
 */
export function regionOctet (region: string): number {
  const known = REGION_OCTETS.indexOf(region)
  if (known >= 0) return known + 1
  let hash = 0x811c9dc5
  for (let i = 0; i < region.length; i++) {
    hash ^= region.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  const first = REGION_OCTETS.length + 1
  return first + (hash % (254 - first + 1))
}

function subnetOctet (az: string): number {
  return az.charCodeAt(az.length - 1) - 96
}

function addressesInUse (state: Readonly<ControlPlaneState>): Set<string> {
  return new Set(Object.values(state.hsms).filter(h => h.state !== 'DELETED').map(h => h.eniIp))
}

/** Picks (or checks) the address of a free HSM host of availability zone `az`. */
function hostAddressFor (state: Readonly<ControlPlaneState>, settings: ApiSettings, az: string, wanted: string | undefined): string {
  const zone = settings.hsmHosts.filter(h => h.availabilityZone === az).map(h => h.address)
  const inUse = addressesInUse(state)
  if (wanted !== undefined) {
    if (!zone.includes(wanted)) throw invalidRequest(`IpAddress ${wanted} is not available in ${az}: its HSM hosts are at ${zone.join(', ') || 'no address'}`)
    if (inUse.has(wanted)) throw invalidRequest(`IpAddress ${wanted} is already in use by another HSM`)
    return wanted
  }
  const free = zone.find(address => !inUse.has(address))
  if (free === undefined) {
    throw new ApiError('CloudHsmResourceLimitExceededException', `Insufficient capacity in availability zone ${az}: every HSM host of its subnet holds an HSM (${zone.length} hosts); delete an HSM or use another availability zone of the cluster`)
  }
  return free
}

/** Picks (or checks) the ENI address of a new HSM in availability zone `az`. */
function addressFor (state: Readonly<ControlPlaneState>, settings: ApiSettings, az: string, wanted: string | undefined): string {
  if (settings.hsmAddressing === 'hosts') return hostAddressFor(state, settings, az, wanted)
  if (settings.hsmAddressing === 'shared') {
    if (wanted !== undefined && wanted !== settings.hsmHost) {
      throw invalidRequest(`IpAddress ${wanted} is not available: every HSM of this hsmlab region listens on ${settings.hsmHost}`)
    }
    return settings.hsmHost
  }
  const region = regionOctet(settings.region)
  const octet = subnetOctet(az)
  const inUse = addressesInUse(state)
  if (wanted !== undefined) {
    const parts = wanted.split('.').map(Number)
    if (parts[0] !== 127 || parts[1] !== region || parts[2] !== octet || (parts[3] ?? 0) < FIRST_HOST || (parts[3] ?? 0) > LAST_HOST) {
      throw invalidRequest(`IpAddress ${wanted} is not in the subnet of ${az} (127.${region}.${octet}.0/24, hosts .${FIRST_HOST} to .${LAST_HOST})`)
    }
    if (inUse.has(wanted)) throw invalidRequest(`IpAddress ${wanted} is already in use by another HSM`)
    return wanted
  }
  for (let host = FIRST_HOST; host <= LAST_HOST; host++) {
    const candidate = `127.${region}.${octet}.${host}`
    if (!inUse.has(candidate)) return candidate
  }
  throw invalidRequest(`The subnet of ${az} has no free IP address left`)
}

export async function createHsm (ctx: ApiContext, req: ApiRequest<'CreateHsm'>): Promise<unknown> {
  const hsm = await ctx.store.transact(draft => {
    const cluster = clusterOf(draft, req.ClusterId)
    const hsms = hsmsOf(draft, cluster.clusterId)
    const allowed = ['UNINITIALIZED', 'INITIALIZED', 'ACTIVE', 'DEGRADED']
    if (!allowed.includes(cluster.state)) {
      throw invalidRequest(`Cluster ${cluster.clusterId} is in state ${cluster.state}: CreateHsm needs it to be ${allowed.join(' or ')}`)
    }
    if (cluster.state === 'UNINITIALIZED' && hsms.length > 0) {
      throw invalidRequest(`Cluster ${cluster.clusterId} is UNINITIALIZED and already has an HSM (${hsms[0]?.hsmId ?? ''}): ${cluster.sourceBackupId === undefined ? 'initialize and activate the cluster' : 'wait until the cluster is ACTIVE'} before you add more HSMs`)
    }
    if (cluster.sourceBackupId !== undefined && cluster.state === 'UNINITIALIZED') {
      const source = draft.backups[cluster.sourceBackupId]
      if (source === undefined || source.state === 'DELETED' || source.file === undefined) {
        throw invalidRequest(`The source backup ${cluster.sourceBackupId} of cluster ${cluster.clusterId} is no longer available, so no HSM can be restored from it`)
      }
    }
    const subnetId = cluster.subnetMapping[req.AvailabilityZone]
    if (subnetId === undefined) {
      throw invalidRequest(`Cluster ${cluster.clusterId} has no subnet in availability zone ${req.AvailabilityZone}; its availability zones are ${Object.keys(cluster.subnetMapping).join(', ')}`)
    }
    if (hsms.length >= ctx.settings.hsmsPerClusterMax) {
      throw invalidRequest(`Cluster ${cluster.clusterId} has ${hsms.length} HSMs, the most a cluster can have`)
    }
    const live = Object.values(draft.hsms).filter(h => h.state !== 'DELETED').length
    if (live >= ctx.settings.hsmsMax) {
      throw invalidRequest(`You have reached the limit of ${ctx.settings.hsmsMax} HSMs in ${ctx.settings.region}; delete an HSM first (hsmlab: raise it with --hsms-max)`)
    }
    const record: HsmRecord = {
      hsmId: randomResourceId('hsm'),
      clusterId: cluster.clusterId,
      availabilityZone: req.AvailabilityZone,
      subnetId,
      eniId: `eni-${randomHex(17)}`,
      eniIp: addressFor(draft, ctx.settings, req.AvailabilityZone, req.IpAddress),
      hsmType: cluster.hsmType,
      state: 'CREATE_IN_PROGRESS',
      slot: cluster.nextSlot,
      createdAtMs: ctx.clock.now(),
      provisioned: false,
      failures: 0
    }
    cluster.nextSlot += 1
    draft.hsms[record.hsmId] = record
    return record
  })
  ctx.kick()
  return { Hsm: renderHsm(hsm) }
}

export async function deleteHsm (ctx: ApiContext, req: ApiRequest<'DeleteHsm'>): Promise<unknown> {
  const given = [req.HsmId, req.EniId, req.EniIp].filter(v => v !== undefined)
  if (given.length !== 1) throw invalidRequest('Specify exactly one of HsmId, EniId and EniIp to identify the HSM to delete')
  const hsmId = await ctx.store.transact(draft => {
    const cluster = clusterOf(draft, req.ClusterId)
    const hsm = hsmsOf(draft, cluster.clusterId).find(h =>
      (req.HsmId !== undefined && h.hsmId === req.HsmId) || (req.EniId !== undefined && h.eniId === req.EniId) || (req.EniIp !== undefined && h.eniIp === req.EniIp))
    const what = req.HsmId !== undefined ? `HSM ${req.HsmId}` : req.EniId !== undefined ? `HSM with ENI ${req.EniId}` : `HSM with ENI IP ${req.EniIp ?? ''}`
    if (hsm === undefined) throw notFound(`${what} not found in cluster ${cluster.clusterId}`)
    if (hsm.state === 'DELETE_IN_PROGRESS') throw invalidRequest(`HSM ${hsm.hsmId} is in state DELETE_IN_PROGRESS: it is being deleted already`)
    hsm.state = 'DELETE_IN_PROGRESS'
    hsm.stateMessage = 'The HSM is being deleted.'
    return hsm.hsmId
  })
  ctx.kick()
  return { HsmId: hsmId }
}
