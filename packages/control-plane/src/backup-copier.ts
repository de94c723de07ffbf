/**
 * The destination side of CopyBackupToRegion: a copy recorded CREATE_IN_PROGRESS fetches the
 * source backup's bytes from the source region's control plane (`GET /_hsmlab/backups/<id>`,
 * through the regions file, so a fault proxy can sit in between; the first request is made by
 * receiveCopy as the copy is recorded), retrying with a capped, doubling delay until the copy's
 * retry window (from its CopyTimestamp, on the lab clock) ends.
 * Then it is READY, with its bytes checked (length, SHA-256, a readable backup header); or
 * DELETED with the reason in its `StateMessage` and in the log — at once when the source answers
 * that its backup is gone (404) or that its stored bytes are damaged (422). A copy that a restart
 * interrupted resumes; one whose window ended meanwhile is DELETED at once: none stays
 * CREATE_IN_PROGRESS. A copy whose request the source answered with a failure (the source
 * answers 410 to its request for the bytes) is removed altogether: a request that failed leaves
 * nothing behind (api/backups.ts).
 */
import { createHash } from 'node:crypto'
import { mkdir, open, rm } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { readBackupHeader } from '@hsmlab/hsm'
import { BACKUP_DAMAGED_STATUS, COPY_ABANDONED_STATUS, backupBytesPath, rememberVerifiedFile } from './api/backups.js'
import type { RegionRequest } from './api/context.js'
import type { LabClock } from './clock.js'
import type { Logger } from './logger.js'
import { BODY_SHA256_HEADER } from './regions.js'
import type { RegionResponse } from './regions.js'
import type { StateStore } from './state-store.js'
import { fsyncDir } from '@hsmlab/process'

/** What a copy needs. */
export interface CopierDeps {
  store: StateStore
  clock: LabClock
  dataDir: string
  regionFetch: (region: string, request: RegionRequest) => Promise<RegionResponse>
  log: Logger
  retryDelayMs: number
  retryDelayMaxMs: number
}

/** Relative path of a backup's bytes inside the data directory. */
export function backupFileOf (backupId: string): string {
  return join('backups', `${backupId}.backup`)
}

/**
 * Stores backup bytes durably at `backups/<id>.backup`; resolves with that relative path and their
 * SHA-256 (hex), which a caller that already computed it passes in. The file is written in place,
 * not renamed into place: nothing reads it before the state records the backup READY, which is
 * made durable only after this resolves, and a copy or export interrupted midway writes it again.
 */
export async function storeBackupBytes (dataDir: string, backupId: string, bytes: Uint8Array, sha256 = createHash('sha256').update(bytes).digest('hex')): Promise<{ file: string, sha256: string }> {
  return await startStoringBackupBytes(dataDir, backupId, bytes, sha256).done
}

/** A backup's file, opened (created, or emptied) for its bytes, and the durability of its name. */
interface OpenedBackupFile {
  handle: Promise<FileHandle>
  /** Resolves once the file's name is durable (the directory fsynced). */
  named: Promise<void>
}

/** Opens `backups/<id>.backup` for writing (created, or emptied) and makes its name durable meanwhile. */
function openBackupFile (dataDir: string, backupId: string): OpenedBackupFile {
  const path = join(dataDir, backupFileOf(backupId))
  const handle = (async () => {
    try {
      return await open(path, 'w', 0o600)
    } catch (err) {
      // The first backup of a data directory makes `backups/`.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      await mkdir(dirname(path), { recursive: true, mode: 0o700 })
      return await open(path, 'w', 0o600)
    }
  })()
  const named = handle.then(async () => { await fsyncDir(dirname(path)) })
  // Both are awaited by whoever stores or closes the file; neither counts as unhandled meanwhile.
  named.catch(() => {})
  return { handle, named }
}

/** Closes a file opened with openBackupFile that no bytes were written to (it stays, empty, until written or its copy fails). */
async function closeBackupFile (opened: OpenedBackupFile): Promise<void> {
  await opened.named.catch(() => {})
  await opened.handle.then(async h => { await h.close() }, () => {})
}

/**
 * storeBackupBytes in two steps: `writing` resolves once the bytes are on their way to the file
 * (opened, and the write of all of them handed to the thread pool; or the store failed), `done`
 * as storeBackupBytes. A caller that has other work for the event loop (the state that records
 * the bytes) starts it after `writing`, so that the write runs meanwhile rather than after it.
 * `opened`: the file, when the caller opened it already (while it waited for the bytes).
 */
function startStoringBackupBytes (dataDir: string, backupId: string, bytes: Uint8Array, sha256: string, opened = openBackupFile(dataDir, backupId)): { writing: Promise<void>, done: Promise<{ file: string, sha256: string }> } {
  let issued = (): void => {}
  const writing = new Promise<void>(resolve => { issued = resolve })
  const done = (async () => {
    const file = backupFileOf(backupId)
    const handle = await opened.handle
    try {
      const written = writeAll(handle, bytes)
      issued()
      await written
      // The bytes and the file's name durable; the file as written, whose bytes were just
      // hashed, need not be hashed again to be served to another region.
      const [, , stat] = await Promise.all([handle.sync(), opened.named, handle.stat()])
      rememberVerifiedFile(resolve(dataDir, file), stat, sha256)
    } finally {
      await handle.close()
    }
    return { file, sha256 }
  })()
  done.then(issued, issued)
  return { writing, done }
}

/** Writes all of `bytes` at the start of the file, in one write (FileHandle.writeFile writes 512 KiB at a time, each after a turn of the event loop). */
async function writeAll (handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let at = 0
  while (at < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, at, bytes.length - at, at)
    at += bytesWritten
  }
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
  const deleted = await deps.store.transact(draft => {
    const backup = draft.backups[backupId]
    if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS') return false
    backup.state = 'DELETED'
    backup.stateMessage = reason
    backup.deletedAtMs = deps.clock.now()
    return true
  })
  // The file an attempt opened for the bytes, if any: no backup has it.
  if (deleted) await rm(join(deps.dataDir, backupFileOf(backupId)), { force: true }).catch(() => {})
}

/** Removes a copy whose request the source answered with a failure: no record, no file. */
async function discard (deps: CopierDeps, backupId: string, reason: string): Promise<void> {
  deps.log.warn({ backupId, reason }, 'copy of a backup abandoned by its source region; it is removed')
  const removed = await deps.store.transact(draft => {
    const backup = draft.backups[backupId]
    if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS') return false
    delete draft.backups[backupId]
    return true
  })
  if (removed) await rm(join(deps.dataDir, backupFileOf(backupId)), { force: true }).catch(() => {})
}

/**
 * Runs one copy to its end (READY or DELETED), or until `signal` aborts (the control plane stops).
 * `firstAnswer` is the source's answer to a request for the bytes made before the copy was
 * recorded (receiveCopy asks while the record is written); the first attempt uses it.
 */
export async function runCopy (deps: CopierDeps, backupId: string, signal: AbortSignal, firstAnswer?: Promise<RegionResponse>): Promise<void> {
  let attempt = 0
  let lastError = 'no attempt was made'
  while (!signal.aborted) {
    const backup = deps.store.state.backups[backupId]
    if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS' || backup.copy === undefined || backup.sourceRegion === undefined || backup.sourceBackup === undefined) return
    const { sourceRegion, sourceBackup } = backup
    const requestId = backup.copy.requestId
    const windowSeconds = Math.round((backup.copy.deadlineLabMs - (backup.copiedAtMs ?? backup.copy.deadlineLabMs)) / 1000)
    if (deps.clock.now() >= backup.copy.deadlineLabMs) {
      await fail(deps, backupId, `The copy of ${sourceBackup} from ${sourceRegion} did not complete within its retry window of ${windowSeconds} seconds: ${lastError}`)
      return
    }
    attempt += 1
    // The file for the bytes, opened (and its name made durable) while they come; closed unless
    // this attempt stores them.
    let opened: OpenedBackupFile | undefined
    const release = async (): Promise<void> => {
      if (opened === undefined) return
      const file = opened
      opened = undefined
      await closeBackupFile(file)
    }
    try {
      const answer = firstAnswer ?? deps.regionFetch(sourceRegion, { method: 'GET', path: backupBytesPath(sourceBackup, requestId) })
      firstAnswer = undefined
      const askedAt = performance.now()
      opened = openBackupFile(deps.dataDir, backupId)
      const response = await answer
      if (response.status === 200) {
        const answeredAt = performance.now()
        const bytes = response.body
        // Hashed as the bytes arrived when the source named their SHA-256 (it does).
        const sha256 = response.bodySha256 ?? createHash('sha256').update(bytes).digest('hex')
        const claimed = response.headers[BODY_SHA256_HEADER]
        if (claimed !== undefined && claimed !== sha256) throw new Error(`the bytes received do not match their SHA-256 (${bytes.length} bytes); they were damaged on the way`)
        const header = readBackupHeader(bytes)
        const checkedAt = performance.now()
        // The bytes and the state that records them READY are written at the same time; the
        // state becomes durable, and READY visible, only once the bytes are durable. The state's
        // transaction (a copy and serialization of the whole state, on the event loop) starts once
        // the write of the bytes is under way.
        const store = startStoringBackupBytes(deps.dataDir, backupId, bytes, sha256, opened)
        opened = undefined
        const storing = store.done
        await store.writing
        let recorded = false
        try {
          recorded = await deps.store.transact(draft => {
            const b = draft.backups[backupId]
            if (b === undefined || b.state !== 'CREATE_IN_PROGRESS') return false
            b.state = 'READY'
            b.file = backupFileOf(backupId)
            b.sha256 = sha256
            b.sizeBytes = bytes.length
            b.lineage = header.lineage
            b.keyCount = header.keyCount
            b.userCount = header.userCount
            if (b.copy !== undefined) b.copy.attempts = attempt
            return true
          }, { after: storing })
        } finally {
          // The write ends before another attempt may write the file again, also when the state's write failed first.
          await storing.catch(() => {})
        }
        // Removed meanwhile (its request was cancelled by the source): the bytes have no backup.
        if (!recorded && deps.store.state.backups[backupId] === undefined) {
          await rm(join(deps.dataDir, backupFileOf(backupId)), { force: true }).catch(() => {})
          return
        }
        // Where the copy's time went: waiting for the source's answer, checking the bytes, storing them and recording READY.
        const ms = (from: number, to: number): number => Math.round((to - from) * 10) / 10
        deps.log.info({
          backupId, sourceRegion, sourceBackup, attempts: attempt, bytes: bytes.length,
          sourceMs: ms(askedAt, answeredAt), checkMs: ms(answeredAt, checkedAt), storeMs: ms(checkedAt, performance.now())
        }, 'backup copied')
        return
      }
      const text = response.body.toString('utf8')
      let message = text
      try { message = (JSON.parse(text) as { message?: string }).message ?? text } catch { /* not JSON */ }
      await release()
      if (response.status === 404) {
        await fail(deps, backupId, `The source backup ${sourceBackup} no longer exists in ${sourceRegion}: ${message}`)
        return
      }
      if (response.status === COPY_ABANDONED_STATUS) {
        await discard(deps, backupId, `The copy request was answered with a failure in ${sourceRegion}: ${message}`)
        return
      }
      if (response.status === BACKUP_DAMAGED_STATUS) {
        await fail(deps, backupId, `The source backup ${sourceBackup} in ${sourceRegion} cannot be copied: ${message}`)
        return
      }
      lastError = `${sourceRegion} answered ${response.status}: ${message}`
    } catch (err) {
      lastError = `${sourceRegion} cannot be reached: ${(err as Error).message}`
    } finally {
      await release()
    }
    deps.log.debug({ backupId, attempt, lastError }, 'copy attempt failed; retrying')
    const latest = deps.store.state.backups[backupId]
    if (latest?.copy === undefined) return
    const leftRealMs = Math.max(0, deps.clock.realDuration(latest.copy.deadlineLabMs - deps.clock.now()))
    await sleep(Math.min(deps.retryDelayMs * 2 ** Math.min(attempt - 1, 20), deps.retryDelayMaxMs, leftRealMs + 1), signal)
  }
}
