/**
 * Invariants of synchronisation tasks (issue 12, seed 003).
 *
 * `sync-converged`: once every fault is healed and the lab settled, every resource in a task's
 * scope is on every associated replica as it is on the primary: each key of the primary in scope
 * (all keys, an owner's, or a listed handle) is on every HSM of the replica at the same handle,
 * with the same key check value, label and owner, and its record there is SYNCHRONIZED; a key in
 * scope that the primary no longer has is on no HSM of the replica (its deletion arrived); with
 * every key in scope, findAllKeys gives each crypto user the same hash on the replica as on the
 * primary; each user in scope is on every HSM of a KEYS_AND_USERS replica; and no record of an
 * associated replica is left SYNCHRONIZING or FAILED.
 *
 * `sync-failures-have-causes`: every FAILED record seen, during the run or after it, carries a
 * cause (a code and a sentence).
 */
import type { CheckInput, Violation } from './check-input.js'
import { hsmsOf, sameName } from './check-input.js'

export const SYNC_CONVERGED = 'sync-converged' as const
export const SYNC_FAILURES_HAVE_CAUSES = 'sync-failures-have-causes' as const

export function checkSyncConverged ({ observation }: CheckInput): Violation[] {
  const out: Violation[] = []
  const fail = (detail: string): void => { out.push({ invariant: SYNC_CONVERGED, detail }) }
  for (const task of observation.syncTasks ?? []) {
    const primary = hsmsOf(observation, task.primary)[0]
    if (primary === undefined) continue
    const inScope = (key: { handle: number, ownerName?: string }): boolean =>
      task.scope.allKeys || task.scope.handles.includes(key.handle) || task.scope.owners.some(o => key.ownerName !== undefined && sameName(o, key.ownerName))
    for (const replica of task.replicas.filter(r => r.state === 'ASSOCIATED')) {
      const where = `replica ${replica.cluster} of ${task.primary}`
      const records = task.records.filter(r => r.replica === replica.cluster)
      for (const r of records) {
        if (r.status !== 'SYNCHRONIZED') fail(`${r.resourceType} ${r.resourceId} is ${r.status} on ${where} after the heal${r.failureCause === null ? '' : ` (${r.failureCause.code}: ${r.failureCause.message})`}`)
      }
      const replicaHsms = hsmsOf(observation, replica.cluster)
      for (const key of primary.keys.filter(inScope)) {
        const record = records.find(r => r.resourceType === 'KEY' && r.resourceId === String(key.handle))
        if (record === undefined) fail(`key ${key.handle} (${key.label ?? 'no label'}) of ${task.primary} is in scope but has no record on ${where}`)
        for (const hsm of replicaHsms) {
          const copy = hsm.keys.find(k => k.handle === key.handle)
          if (copy === undefined) { fail(`key ${key.handle} (${key.label ?? 'no label'}) of ${task.primary} is not on ${hsm.name}`); continue }
          if (copy.kcv !== key.kcv || copy.label !== key.label || (copy.ownerName !== undefined && key.ownerName !== undefined && !sameName(copy.ownerName, key.ownerName))) {
            fail(`key ${key.handle} on ${hsm.name} is not the primary's (kcv ${copy.kcv ?? '-'} / ${key.kcv ?? '-'}, label ${copy.label ?? '-'} / ${key.label ?? '-'}, owner ${copy.ownerName ?? '-'} / ${key.ownerName ?? '-'})`)
          }
        }
      }
      for (const hsm of replicaHsms) {
        for (const key of hsm.keys.filter(inScope)) {
          if (!primary.keys.some(k => k.handle === key.handle)) fail(`key ${key.handle} (${key.label ?? 'no label'}) is on ${hsm.name} but no longer on ${task.primary}: its deletion did not arrive`)
        }
        if (task.scope.allKeys) {
          for (const h of primary.keyHashes) {
            const there = hsm.keyHashes.find(x => sameName(x.userName, h.userName))
            if (there?.hash !== h.hash) fail(`findAllKeys of ${h.userName} hashes ${there?.hash ?? 'nothing'} on ${hsm.name}, ${h.hash ?? 'nothing'} on ${primary.name}`)
          }
        }
        if (replica.type === 'KEYS_AND_USERS') {
          for (const name of task.scope.users) {
            if (primary.users.some(u => sameName(u.userName, name)) && !hsm.users.some(u => sameName(u.userName, name))) fail(`user ${name} of ${task.primary} is in scope but not on ${hsm.name}`)
          }
        }
      }
    }
  }
  return out
}

export function checkSyncFailuresHaveCauses ({ observation }: CheckInput): Violation[] {
  const out: Violation[] = []
  const final = (observation.syncTasks ?? []).flatMap(t => t.records.map(r => ({ ...r, primary: t.primary, atMs: undefined as number | undefined })))
  for (const r of [...observation.syncFailuresSeen ?? [], ...final]) {
    if (r.status !== 'FAILED') continue
    const cause = r.failureCause
    if (cause === null || cause.code.trim() === '' || cause.message.trim() === '') {
      out.push({ invariant: SYNC_FAILURES_HAVE_CAUSES, detail: `${r.resourceType} ${r.resourceId} of ${r.primary} was FAILED on ${r.replica}${r.atMs === undefined ? ' after the heal' : ` at ${(r.atMs / 1000).toFixed(3)} s`} without a cause (${JSON.stringify(cause)})` })
    }
  }
  return out
}
