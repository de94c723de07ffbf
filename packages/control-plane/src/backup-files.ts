/**
 * The backup files of a data directory (`backups/<id>.backup`): the one module that writes,
 * reads, copies and removes them. A backup made here (an export from an HSM) or copied from
 * another region is stored durably before the state records it READY; a backup served to another
 * region is read back and checked against the SHA-256 recorded when it was made; a backup that is
 * deleted, or a copy that fails, loses its file.
 *
 * Files whose bytes were found to match their SHA-256 (read and hashed, or written from bytes
 * just hashed) are remembered with their stat at that moment: a file whose stat has not changed
 * since is served without hashing it whole again.
 */
import { createHash } from 'node:crypto'
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs'
import { copyFile, mkdir, open, rm } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fsyncDir } from '@hsmlab/process'

/** A backup's file, opened (created, or emptied) for its bytes, and the durability of its name. */
export interface OpenedBackupFile {
  handle: Promise<FileHandle>
  /** Resolves once the file's name is durable (the directory fsynced). */
  named: Promise<void>
}

/** What a backup file was when its bytes were last found to match their SHA-256. */
interface VerifiedFile {
  sha256: string
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
}

/** The stat fields that tell a changed file. */
interface FileStat { size: number, mtimeMs: number, ctimeMs: number, ino: number }

/** The most files remembered as verified; the oldest is forgotten first. */
const VERIFIED_FILES_MAX = 4096

/** Relative path of a backup's bytes inside the data directory. */
export function backupFileOf (backupId: string): string {
  return join('backups', `${backupId}.backup`)
}

/** Backup bytes read back for another region: their SHA-256 checked (`damaged` when they no longer match it). */
export type ReadBackup = { bytes: Buffer, damaged?: undefined } | { damaged: true }

/** The backup files of one data directory. */
export class BackupFiles {
  readonly dataDir: string
  /** Verified files by absolute path, the newest last. */
  private readonly verified = new Map<string, VerifiedFile>()

  constructor (dataDir: string) {
    this.dataDir = dataDir
  }

  /** The absolute path of a file recorded relative to the data directory. */
  pathOf (file: string): string {
    return resolve(this.dataDir, file)
  }

  /**
   * Stores backup bytes durably at `backups/<id>.backup`; resolves with that relative path and their
   * SHA-256 (hex), which a caller that already computed it passes in. The file is written in place,
   * not renamed into place: nothing reads it before the state records the backup READY, which is
   * made durable only after this resolves, and a copy or export interrupted midway writes it again.
   */
  async store (backupId: string, bytes: Uint8Array, sha256 = createHash('sha256').update(bytes).digest('hex')): Promise<{ file: string, sha256: string }> {
    return await this.startStoring(backupId, bytes, sha256).done
  }

  /** Opens `backups/<id>.backup` for writing (created, or emptied) and makes its name durable meanwhile. */
  open (backupId: string): OpenedBackupFile {
    const path = join(this.dataDir, backupFileOf(backupId))
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

  /** Closes a file opened with `open` that no bytes were written to (it stays, empty, until written or its backup goes). */
  async closeUnwritten (opened: OpenedBackupFile): Promise<void> {
    await opened.named.catch(() => {})
    await opened.handle.then(async h => { await h.close() }, () => {})
  }

  /**
   * `store` in two steps: `writing` resolves once the bytes are on their way to the file (opened,
   * and the write of all of them handed to the thread pool; or the store failed), `done` as
   * `store`. A caller that has other work for the event loop (the state that records the bytes)
   * starts it after `writing`, so that the write runs meanwhile rather than after it. `opened`:
   * the file, when the caller opened it already (while it waited for the bytes).
   */
  startStoring (backupId: string, bytes: Uint8Array, sha256: string, opened = this.open(backupId)): { writing: Promise<void>, done: Promise<{ file: string, sha256: string }> } {
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
        this.remember(this.pathOf(file), stat, sha256)
      } finally {
        await handle.close()
      }
      return { file, sha256 }
    })()
    done.then(issued, issued)
    return { writing, done }
  }

  /**
   * The bytes of a backup's file, for another region. They are hashed whole only when the file
   * changed (size, mtime, ctime or inode) since they were last found to match `sha256`; a change
   * that leaves all of these as they were is still caught by the destination, which checks the
   * bytes it gets against that SHA-256 (sent along, `x-hsmlab-sha256`).
   */
  read (file: string, sha256: string | undefined): ReadBackup {
    const path = this.pathOf(file)
    // Read synchronously: a backup is read from the page cache in well under a millisecond per
    // megabyte (less than hashing it takes, which every request did before), while a read through
    // the thread pool (open, stat, reads, close) waits for a turn of the event loop at each step.
    let bytes: Buffer
    let stat: FileStat
    const fd = openSync(path, 'r')
    try {
      // The stat before the bytes: a change made while they are read shows in the next stat.
      stat = fstatSync(fd)
      bytes = readFileSync(fd)
    } finally {
      closeSync(fd)
    }
    if (sha256 !== undefined && !this.unchanged(path, stat, sha256)) {
      if (createHash('sha256').update(bytes).digest('hex') !== sha256) {
        this.verified.delete(path)
        return { damaged: true }
      }
      this.remember(path, stat, sha256)
    }
    return { bytes }
  }

  /** Copies a backup's file to `to` (the file an HSM restores from). */
  async copyTo (file: string, to: string): Promise<void> {
    await copyFile(join(this.dataDir, file), to)
  }

  /** Removes a file recorded relative to the data directory; a missing one is no error. */
  async remove (file: string): Promise<void> {
    await rm(join(this.dataDir, file), { force: true })
  }

  /** Removes the file of a backup by its id (`backups/<id>.backup`). */
  async removeOf (backupId: string): Promise<void> {
    await this.remove(backupFileOf(backupId))
  }

  /** Remembers that the file at `path` (absolute), as `stat` describes it, holds bytes of SHA-256 `sha256`. */
  private remember (path: string, stat: FileStat, sha256: string): void {
    this.verified.delete(path)
    this.verified.set(path, { sha256, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino })
    if (this.verified.size > VERIFIED_FILES_MAX) {
      const oldest = this.verified.keys().next()
      if (oldest.done !== true) this.verified.delete(oldest.value)
    }
  }

  private unchanged (path: string, stat: FileStat, sha256: string): boolean {
    const v = this.verified.get(path)
    return v !== undefined && v.sha256 === sha256 && v.size === stat.size && v.mtimeMs === stat.mtimeMs && v.ctimeMs === stat.ctimeMs && v.ino === stat.ino
  }
}

/** Writes all of `bytes` at the start of the file, in one write (FileHandle.writeFile writes 512 KiB at a time, each after a turn of the event loop). */
async function writeAll (handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let at = 0
  while (at < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, at, bytes.length - at, at)
    at += bytesWritten
  }
}
