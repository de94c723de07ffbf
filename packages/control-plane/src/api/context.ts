/**
 * What the API handlers work with: the state store, the lab clock, the region's settings, and a
 * few services of the control plane (waking its background loop, reaching other regions).
 */

import type { SyncResource } from '@hsmlab/protocol'
import type { LabClock } from '../clock.js'
import type { RegionRequest, RegionResponse, RegionsMap } from '../regions.js'
import type { HsmRouteRecord, StateStore } from '../state-store.js'
import type { SyncRecord } from '../sync-records.js'

/** Limits and settings the handlers enforce. */
export interface ApiSettings {
  region: string
  accountId: string
  /** The API's own host. */
  host: string
  /** Address HSMs listen on in `shared` addressing (their EniIp): `hsmHost`, else `host`. */
  hsmHost: string
  /**
   * `per-hsm`: each HSM gets its own loopback address in its subnet; `shared`: all use `hsmHost`;
   * `hosts`: each HSM gets the address of a free HSM host of its availability zone (`hsmHosts`).
   */
  hsmAddressing: 'per-hsm' | 'shared' | 'hosts'
  /** With `hosts` addressing: the HSM hosts' addresses and availability zones (`--hsm-hosts`). */
  hsmHosts: ReadonlyArray<{ address: string, availabilityZone: string }>
  clustersMax: number
  hsmsMax: number
  hsmsPerClusterMax: number
  tagsPerResourceMax: number
  backupRetentionDays: number
  backupDeletionWindowDays: number
  copyRetryWindowLabSeconds: number
  clusterCreateDelayMs: number
  clusterInitializeDelayMs: number
  clusterDeleteDelayMs: number
  regionRequestTimeoutMs: number
  /** Replicas a synchronisation task may have associated at once. */
  syncReplicasMax: number
  /** Deadline of a request to a replica's region, in milliseconds. */
  syncRequestTimeoutMs: number
}

/** What the synchronisation handlers (api/sync.ts) use of the service (reconcilers/sync-tasks.ts). */
export interface SyncService {
  /** Every resource of the primary cluster (one of its ACTIVE HSMs tells it). */
  primaryInventory: (clusterId: string) => Promise<SyncResource[]>
  /** Tells the replica's region of an association or disassociation now; resolves whether it confirmed (else the service tries again). */
  confirmNow: (primaryClusterId: string, replicaClusterId: string) => Promise<boolean>
  /** Wakes the task's pushers (its scope grew). */
  wake: (primaryClusterId: string) => void
  /** The records of a task in listing order. */
  records: (primaryClusterId: string) => readonly SyncRecord[]
}

/** What a handler can use. */
export interface ApiContext {
  store: StateStore
  clock: LabClock
  settings: ApiSettings
  /** Wakes the background loop (state changes to carry out). */
  kick: () => void
  /** The regions file, read now. */
  regions: () => Promise<RegionsMap>
  /** Sends a (signed, when credentials are set) request to the control plane of `region`. */
  regionFetch: (region: string, request: RegionRequest) => Promise<RegionResponse>
  /**
   * Makes the trust anchor of a new cluster and keeps its secret key in the engine's keyring,
   * durably; resolves with the public key. Handlers never see a secret key.
   */
  createTrustAnchor: (clusterId: string) => Promise<Uint8Array>
  /** Drops the trust anchor of a cluster that was not recorded after all. */
  dropTrustAnchor: (clusterId: string) => Promise<void>
  /** Makes a backup of an active cluster now (HsmlabCreateBackup); resolves with the new backup's id once it is recorded. */
  requestBackup: (clusterId: string) => Promise<string>
  /**
   * Whether a route to an HSM (HsmlabSetHsmRoutes) is in use (its HSM runs at its Upstream) and
   * delivered (the HSM it is from has taken a peer list naming it; for the control plane's own
   * routes: in use).
   */
  hsmRouteStatus: (route: HsmRouteRecord) => { inUse: boolean, delivered: boolean }
  /** The synchronisation service (issue 12). */
  sync: SyncService
}
