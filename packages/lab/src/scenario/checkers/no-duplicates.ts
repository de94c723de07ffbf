/**
 * Invariant `no-duplicates`: nothing the run created exists twice. Each key label of the run
 * names one key per cluster (one handle on every HSM of it; a retried or repeated syncKey keeps
 * the handle); each user of the run is listed at most once per HSM; and a region holds no more
 * copies of a backup than the run asked for (acknowledged or unanswered CopyBackupToRegion calls).
 */
import type { CheckInput, Violation } from './check-input.js'
import { hsmsOf } from './check-input.js'

export const NO_DUPLICATES = 'no-duplicates' as const

export function checkNoDuplicates ({ history, observation }: CheckInput): Violation[] {
  const out: Violation[] = []
  const fail = (detail: string): void => { out.push({ invariant: NO_DUPLICATES, detail }) }
  const labels = new Set(history.filter(r => r.op === 'createKey' && r.label !== undefined).map(r => r.label ?? ''))
  const users = new Set(history.filter(r => r.op === 'createUser' && r.userName !== undefined).map(r => (r.userName ?? '').toLowerCase()))
  for (const cluster of observation.clusters) {
    const hsms = hsmsOf(observation, cluster.ref)
    const handles = new Map<string, Map<number, string[]>>()
    for (const hsm of hsms) {
      for (const key of hsm.keys) {
        if (key.label === undefined || !labels.has(key.label)) continue
        const byHandle = handles.get(key.label) ?? new Map<number, string[]>()
        byHandle.set(key.handle, [...(byHandle.get(key.handle) ?? []), hsm.name])
        handles.set(key.label, byHandle)
      }
      const counts = new Map<string, number>()
      for (const u of hsm.users) {
        const name = u.userName.toLowerCase()
        if (users.has(name)) counts.set(name, (counts.get(name) ?? 0) + 1)
      }
      for (const [name, count] of counts) if (count > 1) fail(`user ${name} is listed ${count} times on ${hsm.name}`)
    }
    for (const [label, byHandle] of handles) {
      if (byHandle.size > 1) {
        fail(`key ${label} exists ${byHandle.size} times in ${cluster.ref}: ${[...byHandle].map(([h, on]) => `handle ${h} on ${on.join(', ')}`).join('; ')}`)
      }
    }
  }
  const asked = new Map<string, number>()
  for (const r of history) {
    if (r.op !== 'copyBackup' || r.outcome === 'failed' || r.backupId === undefined || r.to === undefined) continue
    asked.set(`${r.backupId}|${r.to}`, (asked.get(`${r.backupId}|${r.to}`) ?? 0) + 1)
  }
  const copies = new Map<string, string[]>()
  for (const b of observation.backups) {
    if (b.preexisting || b.sourceBackup === undefined) continue
    const key = `${b.sourceBackup}|${b.region}`
    copies.set(key, [...(copies.get(key) ?? []), b.backupId])
  }
  for (const [key, ids] of copies) {
    const [source, region] = key.split('|')
    const allowed = asked.get(key) ?? 0
    if (ids.length > allowed) fail(`${region ?? ''} holds ${ids.length} new copies of backup ${source ?? ''} (${ids.join(', ')}), but the run asked for ${allowed}`)
  }
  return out
}
