/**
 * A directory served by one process at a time: a lock file created exclusively, holding the pid
 * of the process that holds it. A lock left by a process that is gone (killed with SIGKILL, say)
 * is taken over, and so is one naming this very process that this process did not take: in a
 * container restarted from the same volume, a new process can well get its predecessor's pid.
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { isProcessAlive } from './process-alive.js'

/** Taken (with the function that releases it), or held by another live process (its pid, when the file names one). */
export type PidLock = { release: () => Promise<void> } | { heldBy: number | undefined }

/** How many times a stale lock is removed and the file created again before giving up. */
const ATTEMPTS = 3

/** The lock files this process holds: one naming this pid but not in here was left by a predecessor. */
const held = new Set<string>()

/**
 * Takes the lock `file` for this process. Errors other than the file existing (a missing
 * directory, no permission) are thrown as they are.
 */
export async function takePidLock (file: string, mode = 0o644): Promise<PidLock> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx', mode })
      held.add(file)
      return {
        release: async () => {
          held.delete(file)
          await rm(file, { force: true })
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (held.has(file)) return { heldBy: process.pid }
    const pid = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10)
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isProcessAlive(pid)) return { heldBy: pid }
    await rm(file, { force: true })
  }
  // Another process keeps making the file as fast as it is removed.
  return { heldBy: undefined }
}
