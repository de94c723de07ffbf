/**
 * Helpers of the synchronisation tests (issue 12), which play both control planes: a primary
 * cluster's HSM, a replica made from its backup (the primary's lineage and masking key, its own
 * cluster id and trust anchor), sessions elevated by syncHello, and signed sync roles. Built on
 * backup-helpers.ts; every process and connection is released when the test ends.
 */
import type { HsmConnection } from '@hsmlab/client'
import type { SyncResource, SyncRole } from '@hsmlab/protocol'
import { signPeers, signSyncHello, signSyncRole } from '../src/index.js'
import { connectPlane, exportBackup, loginPlane, newInstallation, newPlaneCluster, planHsm, runPlanned, storeBackup } from './backup-helpers.js'
import type { Installation, PlaneCluster, RunningPlaneHsm } from './backup-helpers.js'

export const ADMIN_PASSWORD = 'officer1pw'
export const ALICE_PASSWORD = 'alicepw1'
export const BOB_PASSWORD = 'bobpass1'

/** A primary HSM (CO admin, CUs alice and bob) and a replica HSM restored from its backup. */
export interface SyncPair {
  installation: Installation
  primary: RunningPlaneHsm
  replica: RunningPlaneHsm
  backupFile: string
}

/** Starts a primary (activated, with alice and bob), backs it up and starts a replica from the backup. */
export async function startSyncPair (): Promise<SyncPair> {
  const installation = await newInstallation()
  const primary = await runPlanned(await planHsm(installation, newPlaneCluster(), { slot: 0 }))
  const co = await loginPlane(primary, 'PRECO', 'admin', 'password')
  await co.call('changePassword', { userType: 'PRECO', userName: 'admin', password: ADMIN_PASSWORD })
  await co.call('createUser', { userType: 'CU', userName: 'alice', password: ALICE_PASSWORD })
  await co.call('createUser', { userType: 'CU', userName: 'bob', password: BOB_PASSWORD })
  const backupFile = await storeBackup(installation, (await exportBackup(primary)).backup)
  const replica = await runPlanned(await planHsm(installation, newPlaneCluster(), { slot: 0, backupFile }))
  return { installation, primary, replica, backupFile }
}

/** Another HSM of `cluster`, restored from `backupFile` in `slot`, with both HSMs told of each other. */
export async function addSibling (installation: Installation, first: RunningPlaneHsm, backupFile: string, slot: number): Promise<RunningPlaneHsm> {
  const sibling = await runPlanned(await planHsm(installation, first.cluster, { slot, backupFile }))
  const peers = [first, sibling].map(h => ({ hsmId: h.hsmId, endpoint: h.url }))
  // Peer-list versions only grow: the time is newer than any list set before.
  const version = Date.now()
  for (const hsm of [first, sibling]) {
    const conn = await connectPlane(hsm)
    await conn.call('setPeers', { peers, version, signature: signPeers(hsm.cluster.anchor.secretKey, hsm.hsmId, peers, version) })
  }
  return sibling
}

/** A connection elevated by syncHello, as the control plane opens it. */
export async function syncConnection (hsm: Pick<RunningPlaneHsm, 'url' | 'cluster' | 'hsmId'>, anchor: PlaneCluster['anchor'] = hsm.cluster.anchor): Promise<HsmConnection> {
  const conn = await connectPlane(hsm)
  const requestedAtMs = Date.now()
  await conn.call('syncHello', { requestedAtMs, signature: signSyncHello(anchor.secretKey, hsm.hsmId, requestedAtMs) })
  return conn
}

/** Sets the sync role of an HSM, signed by its cluster's anchor. */
export async function setRole (hsm: Pick<RunningPlaneHsm, 'url' | 'cluster' | 'hsmId'>, role: SyncRole, primaryClusterId: string | undefined, version: number): Promise<void> {
  const conn = await connectPlane(hsm)
  const args = { role, version, signature: signSyncRole(hsm.cluster.anchor.secretKey, hsm.hsmId, role, primaryClusterId, version) }
  await conn.call('setSyncRole', primaryClusterId === undefined ? args : { ...args, primaryClusterId })
  await conn.close()
}

/** `k<handle>` / `u<name>` → digest. */
export function digests (resources: SyncResource[]): Map<string, string | null> {
  return new Map(resources.map(r => [r.kind === 'key' ? `k${r.handle}` : `u${r.name.toLowerCase()}`, r.digest]))
}

/** The full answer of syncChanges on a sync connection. */
export async function fullDigests (conn: HsmConnection): Promise<Map<string, string | null>> {
  const answer = await conn.call('syncChanges', {})
  return digests(answer.resources)
}
