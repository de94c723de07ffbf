/**
 * CopyBackupToRegion between regions' control planes, both sides, after the source region's API
 * answered the request (api/backups.ts `copyBackupToRegion`, which asks the destination to record
 * the copy). Each side is entered once per request from the internal paths (server.ts), and
 * nothing here calls back into the API layer.
 *
 * Destination: `receive` records a copy CREATE_IN_PROGRESS durably (no cluster, no retention,
 * CopyTimestamp and Source*) and answers its id; meanwhile it already asks the source for the
 * bytes (`GET /_hsmlab/backups/<id>?copy=<request id>`, through the regions file, so a fault proxy
 * can sit in between), and the copy's first attempt takes that answer. Attempts are retried with
 * a capped, doubling delay until the copy's retry window (from its CopyTimestamp, on the lab clock)
 * ends. Then it is READY, with its bytes checked (length, SHA-256, a readable backup header); or
 * DELETED with the reason in its `StateMessage` and in the log — at once when the source answers
 * that its backup is gone (404) or that its stored bytes are damaged (422). A copy that a restart
 * interrupted resumes; one whose window ended meanwhile is DELETED at once: none stays
 * CREATE_IN_PROGRESS.
 *
 * A copy request that answered failure leaves nothing behind. The source answers
 * CloudHsmInternalFailureException only once it recorded the request as abandoned
 * (`abandonedCopies`, durably); from then on it refuses the bytes to that request (410), which the
 * destination takes as the end of the copy (the copy is removed altogether), and it tells the
 * destination to drop whatever it recorded (`cancel`, tried again until the destination answers).
 */
import { createHash } from 'node:crypto'
import { randomResourceId, readBackupHeader } from '@hsmlab/hsm'
import type { BackupFiles, OpenedBackupFile } from '../backup-files.js'
import { backupFileOf } from '../backup-files.js'
import { DAY_MS } from '../clock.js'
import { BACKUP_DAMAGED_STATUS, COPY_ABANDONED_STATUS, backupBytesPath, copyCancelPath, copyRefusal, isCopyRequest } from '../copy-protocol.js'
import { invalidRequest } from '../errors.js'
import { BODY_SHA256_HEADER } from '../regions.js'
import type { RegionResponse } from '../regions.js'
import type { AbandonedCopyRecord, BackupRecord } from '../state-store.js'
import type { ReconcilerComponents } from './runtime.js'

/** An answer of an internal path: a status and a JSON body, or the bytes of a backup. */
export interface InternalAnswer {
  status: number
  body: unknown
  sha256?: string
}

/** What the internal paths (server.ts) ask of the copies. */
export interface CopyEndpoints {
  /** `POST /_hsmlab/copies`: records a copy in this (the destination) region, durably, and answers its id. */
  receive: (body: unknown) => Promise<{ BackupId: string }>
  /** `GET /_hsmlab/copies/<request id>`: whether a copy request was recorded here (200) or not (404). */
  recorded: (requestId: string) => InternalAnswer
  /** `POST /_hsmlab/copies/<request id>/cancel`: drops what this region recorded of a copy request. */
  cancel: (requestId: string) => Promise<{ dropped: string[] }>
  /** `GET /_hsmlab/backups/<id>?copy=<request id>`: the bytes of a backup, for another region's copy. */
  bytes: (backupId: string, requestId?: string) => InternalAnswer
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

/** Copies of backups from and to other regions. */
export class CopyReconciler implements CopyEndpoints {
  private readonly c: ReconcilerComponents
  private readonly files: BackupFiles
  private readonly region: string
  /** Real time of the last cancellation sent for each abandoned copy request. */
  private readonly cancelSentAt = new Map<string, number>()

  constructor (components: ReconcilerComponents & { files: BackupFiles, region: string }) {
    this.c = components
    this.files = components.files
    this.region = components.region
  }

  /** One pass: cancellations of abandoned copy requests due, copies to resume. */
  pass (labNow: number): void {
    const { store, runtime, tuning } = this.c
    const realNow = runtime.realNow()
    // Copy requests this region answered with a failure: their destinations drop what they recorded.
    for (const [requestId, abandoned] of Object.entries(store.state.abandonedCopies ?? {})) {
      if ((this.cancelSentAt.get(requestId) ?? 0) + tuning.copyRetryDelayMaxMs > realNow) continue
      this.cancelSentAt.set(requestId, realNow)
      void runtime.run(`cancel:${requestId}`, async () => { await this.cancelAbandoned(requestId, abandoned, labNow) })
    }
    for (const backup of Object.values(store.state.backups)) {
      if (backup.state === 'CREATE_IN_PROGRESS' && backup.copy !== undefined) this.start(backup.backupId)
    }
  }

  // ---------------------------------------------------------------- destination side

  async receive (body: unknown): Promise<{ BackupId: string }> {
    const { store, clock, runtime } = this.c
    if (!isCopyRequest(body)) throw invalidRequest('not a copy request')
    const refusal = copyRefusal(body.sourceRegion, this.region)
    if (refusal !== undefined) throw invalidRequest(refusal)
    // Ask the source for the bytes now, while the record is written: the copy's first attempt
    // takes this answer (the bytes are stored only once the record is durable). A repeated request
    // for a copy already recorded asks nothing.
    const recordedBefore = Object.values(store.state.backups).some(b => b.copy?.requestId === body.requestId)
    const firstAnswer = recordedBefore ? undefined : runtime.regionClient.fetch(body.sourceRegion, { method: 'GET', path: backupBytesPath(body.sourceBackup, body.requestId) })
    // Read by the copy; when the record fails there is no copy, and nothing to report.
    firstAnswer?.catch(() => {})
    const backupId = await store.transact(draft => {
      const existing = Object.values(draft.backups).find(b => b.copy?.requestId === body.requestId)
      if (existing !== undefined) return existing.backupId
      const now = clock.now()
      const record: BackupRecord = {
        backupId: randomResourceId('backup'),
        state: 'CREATE_IN_PROGRESS',
        createdAtMs: body.createdAtMs,
        copiedAtMs: now,
        neverExpires: false,
        sourceRegion: body.sourceRegion,
        sourceBackup: body.sourceBackup,
        ...(body.sourceCluster === undefined ? {} : { sourceCluster: body.sourceCluster }),
        tags: body.tags.map(t => ({ Key: String(t.Key), Value: String(t.Value) })),
        hsmType: body.hsmType,
        ...(body.mode === undefined ? {} : { mode: body.mode }),
        reason: 'copy',
        nextSlot: body.nextSlot,
        ...(body.clusterCertificate === undefined ? {} : { clusterCertificate: body.clusterCertificate }),
        copy: { requestId: body.requestId, deadlineLabMs: now + this.c.tuning.copyRetryWindowLabSeconds * 1000, attempts: 0 }
      }
      draft.backups[record.backupId] = record
      return record.backupId
    })
    this.start(backupId, firstAnswer)
    return { BackupId: backupId }
  }

  recorded (requestId: string): InternalAnswer {
    const backup = Object.values(this.c.store.state.backups).find(b => b.copy?.requestId === requestId)
    return backup === undefined ? { status: 404, body: { message: 'no such copy request' } } : { status: 200, body: { BackupId: backup.backupId } }
  }

  /** From the source region of a copy request it answered with a failure; a cluster created from the copy meanwhile keeps it. */
  async cancel (requestId: string): Promise<{ dropped: string[] }> {
    const dropped = await this.c.store.transact(draft => {
      const out: string[] = []
      for (const backup of Object.values(draft.backups)) {
        if (backup.copy?.requestId !== requestId) continue
        if (Object.values(draft.clusters).some(c => c.sourceBackupId === backup.backupId && c.state !== 'DELETED')) continue
        delete draft.backups[backup.backupId]
        out.push(backup.backupId)
      }
      return out
    })
    await Promise.all(dropped.map(async id => { await this.files.removeOf(id) }))
    return { dropped }
  }

  /** Runs the copy recorded as `backupId` (once at a time); `firstAnswer` is its first attempt's answer, when already asked for. */
  private start (backupId: string, firstAnswer?: Promise<RegionResponse>): void {
    void this.c.runtime.run(`copy:${backupId}`, async () => { await this.run(backupId, firstAnswer) })
  }

  /** Ends a copy as DELETED with `reason`. */
  private async fail (backupId: string, reason: string): Promise<void> {
    this.c.log.warn({ backupId, reason }, 'copy of a backup failed; it is DELETED')
    const deleted = await this.c.store.transact(draft => {
      const backup = draft.backups[backupId]
      if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS') return false
      backup.state = 'DELETED'
      backup.stateMessage = reason
      backup.deletedAtMs = this.c.clock.now()
      return true
    })
    // The file an attempt opened for the bytes, if any: no backup has it.
    if (deleted) await this.files.removeOf(backupId).catch(() => {})
  }

  /** Removes a copy whose request the source answered with a failure: no record, no file. */
  private async discard (backupId: string, reason: string): Promise<void> {
    this.c.log.warn({ backupId, reason }, 'copy of a backup abandoned by its source region; it is removed')
    const removed = await this.c.store.transact(draft => {
      const backup = draft.backups[backupId]
      if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS') return false
      delete draft.backups[backupId]
      return true
    })
    if (removed) await this.files.removeOf(backupId).catch(() => {})
  }

  /** Runs one copy to its end (READY or DELETED), or until the runtime stops. */
  private async run (backupId: string, firstAnswer: Promise<RegionResponse> | undefined): Promise<void> {
    const { store, clock, log, runtime, tuning } = this.c
    const signal = runtime.signal
    let attempt = 0
    let lastError = 'no attempt was made'
    while (!signal.aborted) {
      const backup = store.state.backups[backupId]
      if (backup === undefined || backup.state !== 'CREATE_IN_PROGRESS' || backup.copy === undefined || backup.sourceRegion === undefined || backup.sourceBackup === undefined) return
      const { sourceRegion, sourceBackup } = backup
      const requestId = backup.copy.requestId
      const windowSeconds = Math.round((backup.copy.deadlineLabMs - (backup.copiedAtMs ?? backup.copy.deadlineLabMs)) / 1000)
      if (clock.now() >= backup.copy.deadlineLabMs) {
        await this.fail(backupId, `The copy of ${sourceBackup} from ${sourceRegion} did not complete within its retry window of ${windowSeconds} seconds: ${lastError}`)
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
        await this.files.closeUnwritten(file)
      }
      try {
        const answer = firstAnswer ?? runtime.regionClient.fetch(sourceRegion, { method: 'GET', path: backupBytesPath(sourceBackup, requestId) })
        firstAnswer = undefined
        const askedAt = performance.now()
        opened = this.files.open(backupId)
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
          const storing = this.files.startStoring(backupId, bytes, sha256, opened)
          opened = undefined
          await storing.writing
          let recorded = false
          try {
            recorded = await store.transact(draft => {
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
            }, { after: storing.done })
          } finally {
            // The write ends before another attempt may write the file again, also when the state's write failed first.
            await storing.done.catch(() => {})
          }
          // Removed meanwhile (its request was cancelled by the source): the bytes have no backup.
          if (!recorded && store.state.backups[backupId] === undefined) {
            await this.files.removeOf(backupId).catch(() => {})
            return
          }
          // Where the copy's time went: waiting for the source's answer, checking the bytes, storing them and recording READY.
          const ms = (from: number, to: number): number => Math.round((to - from) * 10) / 10
          log.info({
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
          await this.fail(backupId, `The source backup ${sourceBackup} no longer exists in ${sourceRegion}: ${message}`)
          return
        }
        if (response.status === COPY_ABANDONED_STATUS) {
          await this.discard(backupId, `The copy request was answered with a failure in ${sourceRegion}: ${message}`)
          return
        }
        if (response.status === BACKUP_DAMAGED_STATUS) {
          await this.fail(backupId, `The source backup ${sourceBackup} in ${sourceRegion} cannot be copied: ${message}`)
          return
        }
        lastError = `${sourceRegion} answered ${response.status}: ${message}`
      } catch (err) {
        lastError = `${sourceRegion} cannot be reached: ${(err as Error).message}`
      } finally {
        await release()
      }
      log.debug({ backupId, attempt, lastError }, 'copy attempt failed; retrying')
      const latest = store.state.backups[backupId]
      if (latest?.copy === undefined) return
      const leftRealMs = Math.max(0, clock.realDuration(latest.copy.deadlineLabMs - clock.now()))
      await sleep(Math.min(tuning.copyRetryDelayMs * 2 ** Math.min(attempt - 1, 20), tuning.copyRetryDelayMaxMs, leftRealMs + 1), signal)
    }
  }

  // ---------------------------------------------------------------- source side

  /**
   * The bytes of a backup that has them (READY or PENDING_DELETION); 409 while it is being made
   * (ask again), 404 when it is unknown or DELETED, 410 to a copy request answered with a failure,
   * 422 when its stored bytes are not the ones it was made with (give up).
   */
  bytes (backupId: string, requestId?: string): InternalAnswer {
    const state = this.c.store.state
    const abandoned = requestId === undefined ? undefined : state.abandonedCopies?.[requestId]
    if (abandoned !== undefined) {
      return { status: COPY_ABANDONED_STATUS, body: { __type: 'CloudHsmInvalidRequestException', message: `The copy request ${requestId ?? ''} of backup ${abandoned.backupId} to ${abandoned.region} was answered with a failure in ${this.region}; nothing of it is to be kept` } }
    }
    const backup = state.backups[backupId]
    if (backup === undefined || backup.state === 'DELETED') {
      return { status: 404, body: { __type: 'CloudHsmResourceNotFoundException', message: `Backup ${backupId} not found${backup === undefined ? '' : ' (it is DELETED)'}` } }
    }
    if (backup.file === undefined || backup.state === 'CREATE_IN_PROGRESS') {
      return { status: 409, body: { __type: 'CloudHsmInvalidRequestException', message: `Backup ${backupId} is in state ${backup.state}; ask again later` } }
    }
    const read = this.files.read(backup.file, backup.sha256)
    if (read.damaged === true) {
      // Bytes changed on disk since the backup was made can never be copied: say so (422, which
      // the destination does not retry) rather than send them for the destination to find damaged.
      return {
        status: BACKUP_DAMAGED_STATUS,
        body: { __type: 'CloudHsmInvalidRequestException', message: `Backup ${backupId} cannot be copied: its stored bytes (${backup.file}) no longer match the SHA-256 recorded when it was made; they were changed or damaged` }
      }
    }
    return { status: 200, body: read.bytes, ...(backup.sha256 === undefined ? {} : { sha256: backup.sha256 }) }
  }

  /**
   * Tells the destination of a copy request answered with a failure to drop what it recorded of
   * it; once it answered, the request is forgotten (tried again on later passes until then, for
   * as long as DELETED records are kept).
   */
  private async cancelAbandoned (requestId: string, abandoned: AbandonedCopyRecord, labNow: number): Promise<void> {
    const forget = async (): Promise<void> => {
      this.cancelSentAt.delete(requestId)
      await this.c.store.transact(draft => { if (draft.abandonedCopies !== undefined) delete draft.abandonedCopies[requestId] })
    }
    if (labNow > abandoned.atLabMs + this.c.tuning.deletedRecordsKeptLabDays * DAY_MS) {
      this.c.log.warn({ requestId, region: abandoned.region }, 'the destination of a failed copy request never answered its cancellation; giving up')
      await forget()
      return
    }
    const response = await this.c.runtime.regionClient.fetch(abandoned.region, { method: 'POST', path: copyCancelPath(requestId) })
    if (response.status !== 200) throw new Error(`${abandoned.region} answered ${response.status} to the cancellation of copy request ${requestId}`)
    this.c.log.info({ requestId, region: abandoned.region, answer: response.body.toString('utf8') }, 'failed copy request cancelled in its destination')
    await forget()
  }
}
