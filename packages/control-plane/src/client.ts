/**
 * `ControlPlaneClient`: a small typed JSON client for the cloudhsmv2 API of hsmlab's control
 * planes, region-aware (one endpoint serves every region; the region travels in the SigV4
 * credential scope, or in `X-Amz-Region` when unsigned), with waiters for the states that take
 * time. It sees hsmlab's extension members (`HsmlabEndpoint`, `HsmlabTrustAnchor`, ...) that the
 * AWS SDKs drop.
 */
import type {
  ApiOperationName, ApiOperations, Backup, BackupStateName, Cluster, ClusterStateName, Hsm, HsmRoute, HsmRouteStatus, SyncResourceRecord, SyncTask
} from './api-types.js'
import { ControlPlaneError, CP_ERR_API, CP_ERR_HTTP, CP_ERR_TIMEOUT } from './errors.js'
import { sendRegionRequest } from './regions.js'
import type { RegionResponse } from './regions.js'
import type { Credentials } from './sigv4.js'
import { signRequest } from './sigv4.js'

/** Options of `ControlPlaneClient`. */
export interface ControlPlaneClientOptions {
  /** `http://127.0.0.1:PORT` of any control plane of the installation. */
  endpoint: string
  /** The region to address. */
  region: string
  /** Sign requests (SigV4, service `cloudhsm`); without, requests are unsigned. */
  credentials?: Credentials
  /** Deadline of one request, in milliseconds. @default 30000 */
  timeoutMs?: number
}

/** Options of the waiters. */
export interface WaitOptions {
  /** @default 60000 */
  timeoutMs?: number
  /**
   * Longest time between two looks, in milliseconds. The first look again comes after 2 ms, each
   * next one twice as late up to this: a state reached within milliseconds is seen at once, a
   * long wait costs no more requests. @default 100
   */
  intervalMs?: number
}

/** The first delay of a waiter, in milliseconds (see `WaitOptions.intervalMs`). */
const WAIT_FIRST_INTERVAL_MS = 2

/** A typed client of the API. */
export class ControlPlaneClient {
  readonly endpoint: string
  readonly region: string
  private readonly credentials: Credentials | undefined
  private readonly timeoutMs: number

  constructor (options: ControlPlaneClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '')
    this.region = options.region
    this.credentials = options.credentials
    this.timeoutMs = options.timeoutMs ?? 30_000
  }

  /** The same client for another region. */
  forRegion (region: string): ControlPlaneClient {
    return new ControlPlaneClient({ endpoint: this.endpoint, region, timeoutMs: this.timeoutMs, ...(this.credentials === undefined ? {} : { credentials: this.credentials }) })
  }

  /** Calls one operation; throws ControlPlaneError CP_ERR_API (with `awsType`) when the API answers an error. */
  async call<O extends ApiOperationName> (operation: O, input: ApiOperations[O]['input']): Promise<ApiOperations[O]['output']> {
    const url = new URL('/', `${this.endpoint}/`)
    const body = JSON.stringify(input)
    let headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `BaldrApiService.${operation}` }
    if (this.credentials !== undefined) {
      headers = signRequest({ method: 'POST', url, headers, body, region: this.region, credentials: this.credentials })
    } else {
      headers['x-amz-region'] = this.region
    }
    // node:http rather than fetch: a process's first fetch loads and compiles undici, tens of
    // milliseconds that `hsmlab up` would wait for at its first call.
    let response: RegionResponse
    try {
      response = await sendRegionRequest(url, { method: 'POST', headers, body, timeoutMs: this.timeoutMs })
    } catch (err) {
      throw new ControlPlaneError(CP_ERR_HTTP, `${operation} to ${this.endpoint} (${this.region}) failed: ${(err as Error).message}`, { cause: err })
    }
    const text = response.body.toString('utf8')
    let json: Record<string, unknown>
    try {
      json = JSON.parse(text) as Record<string, unknown>
    } catch (err) {
      throw new ControlPlaneError(CP_ERR_HTTP, `${this.endpoint} answered ${operation} with ${response.status} and a body that is not JSON: ${text.slice(0, 200)}`, { cause: err })
    }
    if (response.status < 200 || response.status > 299) {
      const awsType = typeof json.__type === 'string' ? json.__type.replace(/^.*#/, '') : 'UnknownError'
      const message = typeof json.message === 'string' ? json.message : typeof json.Message === 'string' ? json.Message : text
      throw new ControlPlaneError(CP_ERR_API, `${operation} (${this.region}): ${awsType}: ${message}`, { awsType, statusCode: response.status })
    }
    return json as ApiOperations[O]['output']
  }

  async createCluster (input: ApiOperations['CreateCluster']['input']): Promise<Cluster> { return (await this.call('CreateCluster', input)).Cluster }
  async describeClusters (input: ApiOperations['DescribeClusters']['input'] = {}): Promise<ApiOperations['DescribeClusters']['output']> { return await this.call('DescribeClusters', input) }
  async deleteCluster (clusterId: string): Promise<Cluster> { return (await this.call('DeleteCluster', { ClusterId: clusterId })).Cluster }
  async initializeCluster (input: ApiOperations['InitializeCluster']['input']): Promise<ApiOperations['InitializeCluster']['output']> { return await this.call('InitializeCluster', input) }
  async modifyCluster (input: ApiOperations['ModifyCluster']['input']): Promise<Cluster> { return (await this.call('ModifyCluster', input)).Cluster }
  async createHsm (input: ApiOperations['CreateHsm']['input']): Promise<Hsm> { return (await this.call('CreateHsm', input)).Hsm }
  async deleteHsm (input: ApiOperations['DeleteHsm']['input']): Promise<string> { return (await this.call('DeleteHsm', input)).HsmId }
  async describeBackups (input: ApiOperations['DescribeBackups']['input'] = {}): Promise<ApiOperations['DescribeBackups']['output']> { return await this.call('DescribeBackups', input) }
  async copyBackupToRegion (input: ApiOperations['CopyBackupToRegion']['input']): Promise<ApiOperations['CopyBackupToRegion']['output']> { return await this.call('CopyBackupToRegion', input) }
  async deleteBackup (backupId: string): Promise<Backup> { return (await this.call('DeleteBackup', { BackupId: backupId })).Backup }
  async restoreBackup (backupId: string): Promise<Backup> { return (await this.call('RestoreBackup', { BackupId: backupId })).Backup }
  async modifyBackupAttributes (backupId: string, neverExpires: boolean): Promise<Backup> { return (await this.call('ModifyBackupAttributes', { BackupId: backupId, NeverExpires: neverExpires })).Backup }
  async createBackup (clusterId: string): Promise<Backup> { return (await this.call('HsmlabCreateBackup', { ClusterId: clusterId })).Backup }
  /** Replaces the region's routes to HSMs (HsmlabSetHsmRoutes); `[]` removes them. */
  async setHsmRoutes (routes: HsmRoute[]): Promise<HsmRouteStatus[]> { return (await this.call('HsmlabSetHsmRoutes', { Routes: routes })).Routes }
  /** The region's routes to HSMs, each with whether it is in use and delivered (HsmlabDescribeHsmRoutes). */
  async describeHsmRoutes (): Promise<HsmRouteStatus[]> { return (await this.call('HsmlabDescribeHsmRoutes', {})).Routes }

  /** Creates the synchronisation task of a primary cluster with its replicas (HsmlabCreateSyncTask). */
  async createSyncTask (input: ApiOperations['HsmlabCreateSyncTask']['input']): Promise<SyncTask> { return (await this.call('HsmlabCreateSyncTask', input)).SyncTask }
  /** The synchronisation tasks of this region, or the one of a primary cluster (HsmlabDescribeSyncTasks). */
  async describeSyncTasks (input: ApiOperations['HsmlabDescribeSyncTasks']['input'] = {}): Promise<SyncTask[]> { return (await this.call('HsmlabDescribeSyncTasks', input)).SyncTasks }
  /** Adds a replica to a task (HsmlabAssociateSyncReplica). */
  async associateSyncReplica (input: ApiOperations['HsmlabAssociateSyncReplica']['input']): Promise<SyncTask> { return (await this.call('HsmlabAssociateSyncReplica', input)).SyncTask }
  /** Removes a replica from a task for good (HsmlabDisassociateSyncReplica; `Confirm: true` is required). */
  async disassociateSyncReplica (input: ApiOperations['HsmlabDisassociateSyncReplica']['input']): Promise<SyncTask> { return (await this.call('HsmlabDisassociateSyncReplica', input)).SyncTask }
  /** Adds resources to a task's scope (HsmlabAddSyncResources). */
  async addSyncResources (input: ApiOperations['HsmlabAddSyncResources']['input']): Promise<SyncTask> { return (await this.call('HsmlabAddSyncResources', input)).SyncTask }
  /** Always refused: a scope only grows (HsmlabRemoveSyncResources). */
  async removeSyncResources (input: ApiOperations['HsmlabRemoveSyncResources']['input']): Promise<never> {
    await this.call('HsmlabRemoveSyncResources', input)
    throw new ControlPlaneError(CP_ERR_API, 'HsmlabRemoveSyncResources was not refused', { awsType: 'CloudHsmInvalidRequestException', statusCode: 200 })
  }

  /** One page of the records of a task (HsmlabListSyncResources). */
  async listSyncResources (input: ApiOperations['HsmlabListSyncResources']['input']): Promise<ApiOperations['HsmlabListSyncResources']['output']> { return await this.call('HsmlabListSyncResources', input) }

  /** Every record of a task that matches the filters, all pages. */
  async allSyncResources (input: Omit<ApiOperations['HsmlabListSyncResources']['input'], 'NextToken'>): Promise<SyncResourceRecord[]> {
    const out: SyncResourceRecord[] = []
    let token: string | undefined
    do {
      const page = await this.listSyncResources({ ...input, MaxResults: input.MaxResults ?? 10_000, ...(token === undefined ? {} : { NextToken: token }) })
      out.push(...page.Resources)
      token = page.NextToken
    } while (token !== undefined)
    return out
  }

  /** One cluster, or undefined when the region does not know it. */
  async getCluster (clusterId: string): Promise<Cluster | undefined> {
    return (await this.describeClusters({ Filters: { clusterIds: [clusterId] } })).Clusters[0]
  }

  /** One backup, or undefined. */
  async getBackup (backupId: string): Promise<Backup | undefined> {
    return (await this.describeBackups({ Filters: { backupIds: [backupId] } })).Backups[0]
  }

  private async waitFor<T> (what: string, probe: () => Promise<T | undefined>, options: WaitOptions): Promise<T> {
    const timeoutMs = options.timeoutMs ?? 60_000
    const intervalMs = options.intervalMs ?? 100
    const deadline = Date.now() + timeoutMs
    let delayMs = Math.min(WAIT_FIRST_INTERVAL_MS, intervalMs)
    let last = ''
    for (;;) {
      try {
        const value = await probe()
        if (value !== undefined) return value
      } catch (err) {
        last = (err as Error).message
      }
      if (Date.now() >= deadline) throw new ControlPlaneError(CP_ERR_TIMEOUT, `timed out after ${timeoutMs} ms waiting for ${what}${last === '' ? '' : ` (${last})`}`)
      await new Promise(resolve => setTimeout(resolve, delayMs))
      delayMs = Math.min(delayMs * 2, intervalMs)
    }
  }

  /** Waits until a cluster is in one of `states`; resolves with it. */
  async waitForCluster (clusterId: string, states: ClusterStateName | ClusterStateName[], options: WaitOptions = {}): Promise<Cluster> {
    const wanted = Array.isArray(states) ? states : [states]
    let seen = '?'
    return await this.waitFor(`cluster ${clusterId} to be ${wanted.join(' or ')}`, async () => {
      const c = await this.getCluster(clusterId)
      seen = c?.State ?? 'unknown'
      return c?.State !== undefined && wanted.includes(c.State) ? c : undefined
    }, options).catch(err => { throw new ControlPlaneError(CP_ERR_TIMEOUT, `${(err as Error).message}; it is ${seen}`) })
  }

  /** Waits until an HSM is in one of `states` (DELETED: gone from its cluster); resolves with it. */
  async waitForHsm (clusterId: string, hsmId: string, states: NonNullable<Hsm['State']> | Array<NonNullable<Hsm['State']>>, options: WaitOptions = {}): Promise<Hsm> {
    const wanted = Array.isArray(states) ? states : [states]
    return await this.waitFor(`HSM ${hsmId} to be ${wanted.join(' or ')}`, async () => {
      const hsm = (await this.getCluster(clusterId))?.Hsms?.find(h => h.HsmId === hsmId)
      if (hsm === undefined) return wanted.includes('DELETED') ? { HsmId: hsmId, State: 'DELETED' as const } : undefined
      return hsm.State !== undefined && wanted.includes(hsm.State) ? hsm : undefined
    }, options)
  }

  /** Waits until a backup is in one of `states`; resolves with it. */
  async waitForBackup (backupId: string, states: BackupStateName | BackupStateName[], options: WaitOptions = {}): Promise<Backup> {
    const wanted = Array.isArray(states) ? states : [states]
    return await this.waitFor(`backup ${backupId} to be ${wanted.join(' or ')}`, async () => {
      const b = await this.getBackup(backupId)
      return b?.BackupState !== undefined && wanted.includes(b.BackupState) ? b : undefined
    }, options)
  }

  /** The copies of `sourceBackupId` in this client's region (DescribeBackups filter sourceBackupIds). */
  async copiesOf (sourceBackupId: string): Promise<Backup[]> {
    return (await this.describeBackups({ Filters: { sourceBackupIds: [sourceBackupId] } })).Backups
  }
}
