/**
 * The control planes' synchronisation API (issue 12, /work/prompts/sync-contract.md), as the
 * console calls it: the shapes of the contract, and one function that sends an operation through
 * a `ControlPlaneClient` (signing, region, errors as it does for every operation).
 */
import type { ControlPlaneClient } from '@hsmlab/control-plane'

export type SyncType = 'KEYS' | 'KEYS_AND_USERS'

export interface SyncScope {
  Keys?: { All?: boolean, Owners?: string[], Handles?: number[] }
  Users?: string[]
}

export interface SyncReplica {
  ClusterId: string
  Region: string
  SyncType: SyncType
  State: 'ASSOCIATED' | 'DISASSOCIATED'
  AssociatedAt: number
  DisassociatedAt?: number
}

export interface SyncTask {
  SyncTaskId: string
  PrimaryClusterId: string
  PrimaryRegion: string
  CreatedAt: number
  Replicas: SyncReplica[]
  Scope: SyncScope
}

export interface SyncResourceRecord {
  ResourceId: string
  ResourceType: 'KEY' | 'USER'
  ReplicaClusterId: string
  Status: 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'FAILED'
  FailureCause: { Code: string, Message: string } | null
  LastAttemptAt: number | null
  LastSuccessAt: number | null
  Attempts: number
}

/** Input and output of each operation the console uses. */
export interface SyncOperations {
  HsmlabCreateSyncTask: { input: { ClusterId: string, Replicas: Array<{ ClusterId: string, Region: string, SyncType: SyncType }>, Scope?: SyncScope }, output: { SyncTask: SyncTask } }
  HsmlabDescribeSyncTasks: { input: { ClusterId?: string }, output: { SyncTasks: SyncTask[] } }
  HsmlabAssociateSyncReplica: { input: { ClusterId: string, ReplicaClusterId: string, ReplicaRegion: string, SyncType: SyncType }, output: { SyncTask: SyncTask } }
  HsmlabDisassociateSyncReplica: { input: { ClusterId: string, ReplicaClusterId: string, Confirm: true }, output: { SyncTask: SyncTask } }
  HsmlabAddSyncResources: { input: { ClusterId: string, Scope: SyncScope }, output: { SyncTask: SyncTask } }
  HsmlabListSyncResources: {
    input: { ClusterId: string, ReplicaClusterId?: string, Status?: string, ResourceType?: string, MaxResults?: number, NextToken?: string }
    output: { Resources: SyncResourceRecord[], NextToken?: string }
  }
}

/** Sends one synchronisation operation through `api` (its errors are the client's: CP_ERR_API with the API's message). */
export async function callSync<O extends keyof SyncOperations> (api: ControlPlaneClient, operation: O, input: SyncOperations[O]['input']): Promise<SyncOperations[O]['output']> {
  // The client is typed by the operations it knows; these are served by the same endpoint and protocol.
  const call = api.call.bind(api) as unknown as (op: string, body: unknown) => Promise<unknown>
  return await call(operation, input) as SyncOperations[O]['output']
}
