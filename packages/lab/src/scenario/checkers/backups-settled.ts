/**
 * Invariant `backups-settled`: once the lab settled, every backup the run made or copied is READY,
 * or DELETED with a StateMessage that says why (a copy that could not be made within its retry
 * window); none is still CREATE_IN_PROGRESS, and none is in any other state (the run deletes no
 * backup).
 */
import type { CheckInput, Violation } from './check-input.js'

export const BACKUPS_SETTLED = 'backups-settled' as const

export function checkBackupsSettled ({ observation }: CheckInput): Violation[] {
  const out: Violation[] = []
  for (const b of observation.backups) {
    if (b.preexisting) continue
    const what = `${b.sourceBackup === undefined ? 'backup' : `copy of ${b.sourceBackup}`} ${b.backupId} in ${b.region}`
    if (b.state === 'READY') continue
    if (b.state === 'DELETED') {
      if (b.stateMessage === undefined || b.stateMessage.trim() === '') out.push({ invariant: BACKUPS_SETTLED, detail: `${what} is DELETED without a StateMessage saying why` })
      continue
    }
    out.push({ invariant: BACKUPS_SETTLED, detail: `${what} is ${b.state}${b.stateMessage === undefined ? '' : ` (${b.stateMessage})`} after the lab settled` })
  }
  return out
}
