/**
 * Cluster operations: CreateCluster, DescribeClusters, DeleteCluster, InitializeCluster,
 * ModifyCluster (reference F.5, F.7). Each gets its request checked against its shape
 * (api/operations.ts), then checks and changes the state in one transaction: an error leaves
 * nothing changed.
 */
import { createHash, randomBytes } from 'node:crypto'
import { randomResourceId } from '@hsmlab/hsm'
import { invalidRequest, notFound } from '../errors.js'
import type { ClusterRecord, ClusterState } from '../state-store.js'
import { fits, shapes } from '../validation.js'
import { checkSignedCertificate } from '../x509.js'
import { backupIdOf, checkFilterValues, checkFilters, checkTags, clusterOf, page, readToken, retentionDays } from './common.js'
import type { ApiRequest } from '../api-types.js'
import type { ApiContext } from './context.js'
import { hsmsOf, renderCluster } from './render.js'

/** HSM types the service offers (reference F.2). */
export const HSM_TYPES = ['hsm1.medium', 'hsm2m.medium'] as const

export const CLUSTER_STATES: readonly ClusterState[] = [
  'CREATE_IN_PROGRESS', 'UNINITIALIZED', 'INITIALIZE_IN_PROGRESS', 'INITIALIZED', 'ACTIVE', 'UPDATE_IN_PROGRESS',
  'MODIFY_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS', 'DELETE_IN_PROGRESS', 'DELETED', 'DEGRADED'
]

const INITIALIZE_MESSAGE = 'Cluster is initializing. State will change to INITIALIZED upon completion.'
const DELETE_MESSAGE = 'The cluster is being deleted.'

/** `n` random hex digits. */
export function randomHex (n: number): string {
  return randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n)
}

/** The region's one VPC (hsmlab has one network per region). */
export function vpcIdOf (region: string, accountId: string): string {
  return `vpc-${createHash('sha256').update(`vpc\0${accountId}\0${region}`).digest('hex').slice(0, 17)}`
}

function wrongState (cluster: ClusterRecord, doing: string, allowed: readonly string[]): Error {
  return invalidRequest(`Cluster ${cluster.clusterId} is in state ${cluster.state}: ${doing} needs it to be ${allowed.join(' or ')}`)
}

export async function createCluster (ctx: ApiContext, req: ApiRequest<'CreateCluster'>): Promise<unknown> {
  const { region, accountId } = ctx.settings
  if (!(HSM_TYPES as readonly string[]).includes(req.HsmType)) {
    throw invalidRequest(`HsmType ${req.HsmType} is not supported; the allowed values are ${HSM_TYPES.join(' and ')}`)
  }
  if (req.HsmType === 'hsm1.medium' && req.Mode === 'NON_FIPS') {
    throw invalidRequest('Mode NON_FIPS is available for hsm2m.medium clusters only; hsm1.medium clusters are FIPS')
  }
  if (req.NetworkType === 'DUALSTACK') {
    throw invalidRequest('NetworkType DUALSTACK needs subnets with an IPv6 CIDR block; the subnets of an hsmlab VPC have none (use IPV4)')
  }
  const days = retentionDays(req.BackupRetentionPolicy) ?? ctx.settings.backupRetentionDays
  const seen = new Set<string>()
  for (const subnet of req.SubnetIds) {
    if (seen.has(subnet)) throw invalidRequest(`Subnet ${subnet} is listed twice; you can specify only one subnet per Availability Zone`)
    seen.add(subnet)
  }
  const subnetMapping = Object.create(null) as Record<string, string>
  req.SubnetIds.forEach((subnet, i) => { subnetMapping[`${region}${String.fromCharCode(97 + i)}`] = subnet })
  const tags = checkTags(req.TagList)
  const sourceBackupId = req.SourceBackupId === undefined ? undefined : backupIdOf(req.SourceBackupId, region, accountId)
  const clusterId = randomResourceId('cluster')
  // A new cluster's CSR is made by its first HSM (reconcilers/hsms.ts); one made from a backup is never initialized: it has none.
  // The anchor's secret key goes to the engine's keyring (durably) before the cluster is recorded;
  // a cluster that is not recorded after all takes it away again.
  const anchorPublicKey = await ctx.createTrustAnchor(clusterId)
  const recorded = ctx.store.transact(draft => {
    const live = Object.values(draft.clusters).filter(c => c.state !== 'DELETED').length
    if (live >= ctx.settings.clustersMax) {
      throw invalidRequest(`You have reached the limit of ${ctx.settings.clustersMax} clusters in ${region}; delete a cluster first (hsmlab: raise it with --clusters-max)`)
    }
    let nextSlot = 0
    let clusterCertificate: string | undefined
    if (sourceBackupId !== undefined) {
      const backup = draft.backups[sourceBackupId]
      if (backup === undefined) throw notFound(`Backup ${sourceBackupId} not found`)
      if (backup.state !== 'READY') throw invalidRequest(`Backup ${sourceBackupId} is in state ${backup.state}: a cluster can be created only from a READY backup`)
      nextSlot = backup.nextSlot
      // The cluster the backup was made from was initialized with it: a cluster made from the backup shows it too.
      clusterCertificate = backup.clusterCertificate
    }
    const record: ClusterRecord = {
      clusterId,
      createdAtMs: ctx.clock.now(),
      hsmType: req.HsmType,
      ...(req.Mode !== undefined ? { mode: req.Mode } : req.HsmType === 'hsm2m.medium' ? { mode: 'FIPS' as const } : {}),
      networkType: 'IPV4',
      state: 'CREATE_IN_PROGRESS',
      subnetMapping,
      vpcId: vpcIdOf(region, accountId),
      securityGroup: `sg-${randomHex(17)}`,
      ...(sourceBackupId === undefined ? {} : { sourceBackupId }),
      retentionDays: days,
      tags,
      anchorPublicKey: Buffer.from(anchorPublicKey).toString('base64'),
      certificates: clusterCertificate === undefined ? {} : { ClusterCertificate: clusterCertificate },
      nextSlot,
      peersVersion: 0,
      transitionAtRealMs: Date.now() + ctx.settings.clusterCreateDelayMs
    }
    draft.clusters[clusterId] = record
    return record
  })
  let cluster: ClusterRecord
  try {
    cluster = await recorded
  } catch (err) {
    await ctx.dropTrustAnchor(clusterId)
    throw err
  }
  ctx.kick()
  return { Cluster: renderCluster(ctx.store.state, cluster) }
}

export async function describeClusters (ctx: ApiContext, req: ApiRequest<'DescribeClusters'>): Promise<unknown> {
  const filters = checkFilters(req.Filters, ['clusterIds', 'states', 'vpcIds'])
  checkFilterValues(filters, 'clusterIds', v => fits(v, shapes.clusterId), 'a cluster id is cluster- followed by 11 to 16 characters of [2-7a-zA-Z]')
  checkFilterValues(filters, 'states', v => (CLUSTER_STATES as readonly string[]).includes(v), `a state is one of ${CLUSTER_STATES.join(', ')}`)
  const offset = readToken(req.NextToken, 'clusters')
  const state = ctx.store.state
  const matches = Object.values(state.clusters)
    .filter(c => filters.clusterIds === undefined || filters.clusterIds.includes(c.clusterId))
    .filter(c => filters.states === undefined || filters.states.includes(c.state))
    .filter(c => filters.vpcIds === undefined || filters.vpcIds.includes(c.vpcId))
    .sort((a, b) => a.createdAtMs - b.createdAtMs || a.clusterId.localeCompare(b.clusterId))
  const result = page(matches, offset, req.MaxResults, 'clusters')
  // Someone watches an INITIALIZED cluster for its activation: look now rather than at the next tick.
  if (result.items.some(c => c.state === 'INITIALIZED')) ctx.kick()
  return { Clusters: result.items.map(c => renderCluster(state, c)), ...(result.nextToken === undefined ? {} : { NextToken: result.nextToken }) }
}

export async function deleteCluster (ctx: ApiContext, req: ApiRequest<'DeleteCluster'>): Promise<unknown> {
  const cluster = await ctx.store.transact(draft => {
    const cluster = clusterOf(draft, req.ClusterId)
    const allowed = ['UNINITIALIZED', 'INITIALIZED', 'ACTIVE', 'DEGRADED']
    if (!allowed.includes(cluster.state)) throw wrongState(cluster, 'DeleteCluster', allowed)
    const hsms = hsmsOf(draft, cluster.clusterId)
    if (hsms.length > 0) {
      throw invalidRequest(`Cluster ${cluster.clusterId} contains HSMs (${hsms.map(h => `${h.hsmId} ${h.state}`).join(', ')}): before you can delete a cluster, you must delete all HSMs in the cluster`)
    }
    cluster.state = 'DELETE_IN_PROGRESS'
    cluster.stateMessage = DELETE_MESSAGE
    cluster.transitionAtRealMs = Date.now() + ctx.settings.clusterDeleteDelayMs
    return cluster
  })
  ctx.kick()
  return { Cluster: renderCluster(ctx.store.state, cluster) }
}

export async function initializeCluster (ctx: ApiContext, req: ApiRequest<'InitializeCluster'>): Promise<unknown> {
  const before = clusterOf(ctx.store.state, req.ClusterId)
  const check = (cluster: ClusterRecord): string => {
    if (cluster.state !== 'UNINITIALIZED') throw wrongState(cluster, 'InitializeCluster', ['UNINITIALIZED'])
    if (cluster.sourceBackupId !== undefined) {
      throw invalidRequest(`Cluster ${cluster.clusterId} was created from backup ${cluster.sourceBackupId}: don't initialize it, add an HSM and it becomes ACTIVE with the backup's users and keys`)
    }
    if (cluster.csrPublicKeyPem === undefined || cluster.certificates.ClusterCsr === undefined) {
      throw invalidRequest(`Cluster ${cluster.clusterId} has no certificate signing request yet: create an HSM and wait until it is ACTIVE, then sign the ClusterCsr`)
    }
    return cluster.csrPublicKeyPem
  }
  // The certificate checks run outside the transaction (they only read), then again the state.
  checkSignedCertificate(req.SignedCert, req.TrustAnchor, check(before))
  const result = await ctx.store.transact(draft => {
    const cluster = clusterOf(draft, req.ClusterId)
    check(cluster)
    cluster.state = 'INITIALIZE_IN_PROGRESS'
    cluster.stateMessage = INITIALIZE_MESSAGE
    cluster.certificates.ClusterCertificate = req.SignedCert
    cluster.customerTrustAnchor = req.TrustAnchor
    cluster.transitionAtRealMs = Date.now() + ctx.settings.clusterInitializeDelayMs
    return { State: cluster.state, StateMessage: cluster.stateMessage }
  })
  ctx.kick()
  return result
}

export async function modifyCluster (ctx: ApiContext, req: ApiRequest<'ModifyCluster'>): Promise<unknown> {
  if (req.HsmType === undefined && req.BackupRetentionPolicy === undefined) {
    throw invalidRequest('ModifyCluster needs BackupRetentionPolicy or HsmType')
  }
  const days = retentionDays(req.BackupRetentionPolicy)
  const cluster = await ctx.store.transact(draft => {
    const cluster = clusterOf(draft, req.ClusterId)
    if (cluster.state === 'DELETE_IN_PROGRESS' || cluster.state === 'DELETED' || cluster.state === 'CREATE_IN_PROGRESS') {
      throw wrongState(cluster, 'ModifyCluster', ['UNINITIALIZED', 'INITIALIZED', 'ACTIVE', 'DEGRADED'])
    }
    if (req.HsmType !== undefined && req.HsmType !== cluster.hsmType) {
      if (!(HSM_TYPES as readonly string[]).includes(req.HsmType)) throw invalidRequest(`HsmType ${req.HsmType} is not supported; the allowed values are ${HSM_TYPES.join(' and ')}`)
      throw invalidRequest(`Cluster ${cluster.clusterId} is ${cluster.hsmType}: hsmlab does not simulate HSM type migration (to ${req.HsmType})`)
    }
    if (days !== undefined) cluster.retentionDays = days
    return cluster
  })
  ctx.kick()
  return { Cluster: renderCluster(ctx.store.state, cluster) }
}
