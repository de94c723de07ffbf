/**
 * Files that a process keeps its state in, written so that a crash at any moment leaves either
 * the old content or the new one: a temporary file beside it, fsync, rename, fsync of the
 * directory (without the last, a crash right after the rename can bring back the old name's
 * content). The control plane's state and the lab's `lab.json` are written this way.
 */
import { open, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'

/** fsync of a directory, so that a rename or a new name in it is durable. */
export async function fsyncDir (dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r')
    try { await handle.sync() } finally { await handle.close() }
  } catch {
    // Some file systems do not let a directory be fsynced; the rename is still atomic there.
  }
}

/** Options of `writeFileAtomic`. */
export interface AtomicWriteOptions {
  /** Permissions of a new file. @default 0o600 */
  mode?: number
  /**
   * A write the new content refers to, made meanwhile: the rename waits for it, and if it
   * rejects, the file keeps its old content and that error is passed on.
   */
  renameAfter?: Promise<unknown>
}

/** Writes `data` to `file` atomically and durably (temporary file + fsync + rename + fsync of the directory). */
export async function writeFileAtomic (file: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  // Awaited only after the write: a rejection meanwhile must not count as unhandled.
  options.renameAfter?.catch(() => {})
  const tmp = `${file}.tmp-${process.pid}`
  const handle = await open(tmp, 'w', options.mode ?? 0o600)
  try {
    try {
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await options.renameAfter
  } catch (err) {
    // Not left behind: on a full disk the half-written file holds space others need.
    await rm(tmp, { force: true }).catch(() => {})
    throw err
  }
  await rename(tmp, file)
  await fsyncDir(dirname(file))
}
