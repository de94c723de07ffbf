/**
 * The destination side of CopyBackupToRegion: a copy recorded CREATE_IN_PROGRESS fetches the
 * source backup's bytes from the source region's control plane (`GET /_hsmlab/backups/<id>`,
 * through the regions file, so a fault proxy can sit in between), retrying with a capped,
 * doubling delay until the copy's retry window (from its CopyTimestamp, on the lab clock) ends.
 * Then it is READY, with its bytes checked (length, SHA-256, a readable backup header); or
 * DELETED with the reason in its `StateMessage` and in the log — at once when the source answers
 * that its backup is gone (404) or that its stored bytes are damaged (422). A copy that a restart
 * interrupted resumes; one whose window ended meanwhile is DELETED at once: none stays
 * CREATE_IN_PROGRESS.
 */
import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { readBackupHeader } from '@hsmlab/hsm'
import { BACKUP_DAMAGED_STATUS } from './api/backups.js'
import type { RegionRequest } from './api/context.js'
import type { LabClock } from './clock.js'
import type { Logger } from './logger.js'
import type { StateStore } from './state-store.js'
import { writeFileAtomic } from './state-store.js'

/** What a copy needs. */
export interface CopierDeps {
  store: StateStore
  clock: LabClock
  dataDir: string
  regionFetch: (region: string, request: RegionRequest) => Promise<Response>
  log: Logger
  retryDelayMs: number
  retryDelayMaxMs: number
}

/** Relative path of a backup's bytes inside the data directory. */
export function backupFileOf (backupId: string): string {
  return join('backups', `${backupId}.backup`)
}

/** Stores backup bytes durably; resolves with the relative path and their SHA-256 (hex). */
export async function storeBackupBytes (dataDir: string, backupId: string, bytes: Uint8Array): Promise<{ file: string, sha256: string }> {
  await mkdir(join(dataDir, 'backups'), { recursive: true, mode: 0o700 })
  const file = backupFileOf(backupId)
  await writeFileAtomic(join(dataDir, file), bytes)
  return { file, sha256: createHash('sha256').update(bytes).digest('hex') }
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}

/** Ends a copy as DELETED with `reason`. */
async function fail (deps: CopierDeps, backupId: string, reason: string): Promise<void> {
  deps.log.warn({ backupId, reason }, 'copy of a backup failed; it is DELETED')
  await deps.store.transact(draft => {
    const backup = draft.backups[backupId]
    if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS') return
    backup.state = 'DELETED'
    backup.stateMessage = reason
    backup.deletedAtMs = deps.clock.now()
  })
}

/** Runs one copy to its end (READY or DELETED), or until `signal` aborts (the control plane stops). */
export async function runCopy (deps: CopierDeps, backupId: string, signal: AbortSignal): Promise<void> {
  let attempt = 0
  let lastError = 'no attempt was made'
  while (!signal.aborted) {
    const backup = deps.store.state.backups[backupId]
    if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS' || backup.copy === undefined || backup.sourceRegion === undefined || backup.sourceBackup === undefined) return
    const { sourceRegion, sourceBackup } = backup
    const windowSeconds = Math.round((backup.copy.deadlineLabMs - (backup.copiedAtMs ?? backup.copy.deadlineLabMs)) / 1000)
    if (deps.clock.now() >= backup.copy.deadlineLabMs) {
      await fail(deps, backupId, `The copy of ${sourceBackup} from ${sourceRegion} did not complete within its retry window of ${windowSeconds} seconds: ${lastError}`)
      return
    }
    attempt += 1
    try {
      const response = await deps.regionFetch(sourceRegion, { method: 'GET', path: `/_hsmlab/backups/${sourceBackup}` })
      if (response.status === 200) {
        const bytes = new Uint8Array(await response.arrayBuffer())
        const sha256 = createHash('sha256').update(bytes).digest('hex')
        const claimed = response.headers.get('x-hsmlab-sha256')
        if (claimed !== null && claimed !== sha256) throw new Error(`the bytes received do not match their SHA-256 (${bytes.length} bytes); they were damaged on the way`)
        const header = readBackupHeader(bytes)
        const stored = await storeBackupBytes(deps.dataDir, backupId, bytes)
        await deps.store.transact(draft => {
          const b = draft.backups[backupId]
          if (b === undefined || b.state !== 'CREATE_IN_PROGRESS') return
          b.state = 'READY'
          b.file = stored.file
          b.sha256 = stored.sha256
          b.sizeBytes = bytes.length
          b.lineage = header.lineage
          b.keyCount = header.keyCount
          b.userCount = header.userCount
          if (b.copy !== undefined) b.copy.attempts = attempt
        })
        deps.log.info({ backupId, sourceRegion, sourceBackup, attempts: attempt, bytes: bytes.length }, 'backup copied')
        return
      }
      const text = await response.text()
      let message = text
      try { message = (JSON.parse(text) as { message?: string }).message ?? text } catch { /* not JSON */ }
      if (response.status === 404) {
        await fail(deps, backupId, `The source backup ${sourceBackup} no longer exists in ${sourceRegion}: ${message}`)
        return
      }
      if (response.status === BACKUP_DAMAGED_STATUS) {
        await fail(deps, backupId, `The source backup ${sourceBackup} in ${sourceRegion} cannot be copied: ${message}`)
        return
      }
      lastError = `${sourceRegion} answered ${response.status}: ${message}`
    } catch (err) {
      lastError = `${sourceRegion} cannot be reached: ${(err as Error).message}`
    }
    deps.log.debug({ backupId, attempt, lastError }, 'copy attempt failed; retrying')
    const latest = deps.store.state.backups[backupId]
    if (latest?.copy === undefined) return
    const leftRealMs = Math.max(0, deps.clock.realDuration(latest.copy.deadlineLabMs - deps.clock.now()))
    await sleep(Math.min(deps.retryDelayMs * 2 ** Math.min(attempt - 1, 20), deps.retryDelayMaxMs, leftRealMs + 1), signal)
  }
}
