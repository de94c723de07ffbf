/**
 * `FileWatch`: waits for the next change of one file, so that a process's ready line is read the
 * moment the process writes it rather than at the next tick of a poll. Used by the HSM supervisor
 * (an HSM's stdout file) and by the lab's launcher (a control plane's or the fault proxy's).
 */
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'

/**
 * The changes of one file (`fs.watch`: inotify on Linux, FSEvents on macOS). A change that comes
 * while nobody waits is kept for the next `next()`. Where the file system reports no changes (some
 * network and container mounts), `next()` still returns after its `fallbackMs`, so that the caller
 * reads the file again.
 */
export class FileWatch {
  private readonly watcher: FSWatcher | undefined
  private changed = false
  private wake: (() => void) | undefined

  constructor (file: string) {
    let watcher: FSWatcher | undefined
    try {
      watcher = watch(file, { persistent: false }, () => { this.notify() })
      watcher.on('error', () => {})
    } catch {
      // No change events here: the fallback reads alone.
      watcher = undefined
    }
    this.watcher = watcher
  }

  /** Wakes the waiter as a change would (the process exited, a spawn failed: read once more). */
  notify (): void {
    this.changed = true
    this.wake?.()
  }

  /** Resolves at the next change (at once if one came since the last call), or after `fallbackMs`. One waiter at a time. */
  async next (fallbackMs: number): Promise<void> {
    if (!this.changed) {
      await new Promise<void>(resolve => {
        const done = (): void => {
          clearTimeout(timer)
          if (this.wake === done) this.wake = undefined
          resolve()
        }
        const timer = setTimeout(done, fallbackMs)
        this.wake = done
      })
    }
    this.changed = false
  }

  /** Stops watching. Safe to call twice. */
  close (): void {
    this.watcher?.close()
    this.wake?.()
  }
}
