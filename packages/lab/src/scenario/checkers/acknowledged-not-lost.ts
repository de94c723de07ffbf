/**
 * Invariant `acknowledged-not-lost`: whatever the system acknowledged is there once the lab
 * settled. A key whose creation was acknowledged is on every HSM of its cluster, at the handle
 * the HSM answered, with its label; a key whose syncKey was acknowledged is on every HSM of the
 * destination cluster at the handle the destination answered; a user whose createUser was
 * acknowledged (by every HSM) is on every HSM of its cluster, and one whose syncUser was
 * acknowledged on every HSM of the destination; every acknowledged backup exists, and every
 * acknowledged CopyBackupToRegion left a copy in the destination region.
 */
import type { CheckInput, Violation } from './check-input.js'
import { hsmsOf, opName, sameName } from './check-input.js'

export const ACKNOWLEDGED_NOT_LOST = 'acknowledged-not-lost' as const

export function checkAcknowledgedNotLost ({ history, observation }: CheckInput): Violation[] {
  const out: Violation[] = []
  const fail = (detail: string): void => { out.push({ invariant: ACKNOWLEDGED_NOT_LOST, detail }) }
  const keyAt = (cluster: string, handle: number, label: string, record: typeof history[number], how: string): void => {
    for (const hsm of hsmsOf(observation, cluster)) {
      const key = hsm.keys.find(k => k.handle === handle)
      if (key === undefined) {
        const elsewhere = hsm.keys.filter(k => k.label === label).map(k => k.handle)
        fail(`key ${label} (handle ${handle}, ${how} by ${opName(record)}) is not on ${hsm.name}${elsewhere.length > 0 ? `; a key with its label is there under handle ${elsewhere.join(', ')}` : ''}`)
      } else if (key.label !== undefined && key.label !== label) {
        fail(`handle ${handle} on ${hsm.name} is key ${key.label}, not key ${label} ${how} by ${opName(record)}`)
      }
    }
  }
  const userOn = (cluster: string, userName: string, record: typeof history[number], how: string): void => {
    for (const hsm of hsmsOf(observation, cluster)) {
      if (!hsm.users.some(u => sameName(u.userName, userName))) fail(`user ${userName} (${how} by ${opName(record)}) is not on ${hsm.name}`)
    }
  }
  // Keys a deleteKey may have removed (acknowledged, or without an answer): not required anywhere.
  const deleted = new Set(history.filter(r => r.op === 'deleteKey' && r.outcome !== 'failed' && r.label !== undefined).map(r => r.label as string))
  for (const r of history) {
    if (r.outcome !== 'ok') continue
    switch (r.op) {
      case 'createKey':
        if (r.handle !== undefined && r.label !== undefined && !deleted.has(r.label)) keyAt(r.cluster, r.handle, r.label, r, 'acknowledged')
        break
      case 'syncKey':
        if (r.to !== undefined && r.label !== undefined) keyAt(r.to, r.destinationHandle ?? r.handle ?? -1, r.label, r, `synced to ${r.to}`)
        break
      case 'createUser':
        if (r.userName !== undefined) userOn(r.cluster, r.userName, r, 'acknowledged')
        break
      case 'syncUser':
        if (r.userName !== undefined && r.to !== undefined) userOn(r.to, r.userName, r, `synced to ${r.to}`)
        break
      case 'createBackup':
        if (r.backupId !== undefined && !observation.backups.some(b => b.backupId === r.backupId)) fail(`backup ${r.backupId} (acknowledged by ${opName(r)}) is gone from ${r.cluster.split('/')[0] ?? ''}`)
        break
      case 'copyBackup': case 'shareKey': case 'deleteKey':
        break
    }
  }
  // Copies: each acknowledged copy of a backup to a region is one copy there at least.
  const acknowledged = new Map<string, typeof history[number][]>()
  for (const r of history) {
    if (r.op !== 'copyBackup' || r.outcome !== 'ok' || r.backupId === undefined || r.to === undefined) continue
    const key = `${r.backupId}|${r.to}`
    acknowledged.set(key, [...(acknowledged.get(key) ?? []), r])
  }
  for (const [key, records] of acknowledged) {
    const [backupId, region] = key.split('|')
    const copies = observation.backups.filter(b => b.region === region && b.sourceBackup === backupId && !b.preexisting)
    if (copies.length < records.length) {
      fail(`${records.length} copies of backup ${backupId} to ${region ?? ''} were acknowledged (${records.map(opName).join(', ')}), but ${region ?? ''} holds ${copies.length}`)
    }
  }
  return out
}
