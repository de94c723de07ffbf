/**
 * Helpers of the end-to-end tests of issue 12 (synchronisation tasks): the topology they start
 * (us-east-1/primary with alice, us-west-2/dr its clone of two HSMs), its users, and a user's keys
 * on an HSM as a crypto officer sees them (handles and findAllKeys' hash).
 */
import type { HsmConnection } from '@hsmlab/client'

export const ALICE = { type: 'CU' as const, name: 'alice', password: 'Alice1234' }
export const ADMIN = { type: 'CO' as const, name: 'admin', password: 'Admin1234' }

export const SYNC_TOPOLOGY = {
  regions: [
    { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 1, activate: { admin: ADMIN.password }, users: [{ type: 'CU', name: 'alice', password: ALICE.password }] }] },
    { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 2, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
  ]
}

/** A user's keys on an HSM, asked by a crypto officer (`admin`): handles in order and the hash findAllKeys gives over them. */
export async function keysOf (admin: HsmConnection, userId: number): Promise<{ handles: number[], hash: string | undefined }> {
  const { keys, hash } = await admin.call('findAllKeys', { userId, withHash: true })
  return { handles: keys.map(k => k.handle).sort((a, b) => a - b), hash }
}
