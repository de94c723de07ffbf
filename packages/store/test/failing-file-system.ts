/**
 * A file system that behaves like the real one until a test tells one operation to fail, for
 * testing what the store does on a full disk or a failing fsync; it also counts WAL writes and
 * checks that they never overlap.
 */
import { nodeFileSystem } from '../src/file-system.js'
import type { StoreFileSystem } from '../src/file-system.js'

/** Operations a test can make fail. */
export type FailingOperation = 'write' | 'truncate' | 'writeFile' | 'rename' | 'syncDirectory'

export interface FailingFileSystem extends StoreFileSystem {
  /**
   * Makes `operation` throw an error with errno `code` (EIO unless given; ENOSPC for a full disk)
   * from now on, or with `undefined`, stop. A failing WAL write or `writeFile` first writes half
   * of its bytes, as a write that runs out of space part way does.
   */
  failOn: (operation: FailingOperation | undefined, code?: string) => void
  /** WAL writes so far. */
  readonly writes: number
  /** Most WAL writes ever in flight at once. */
  readonly writesInFlightMax: number
}

export function failingFileSystem (): FailingFileSystem {
  let failing: FailingOperation | undefined
  let failingCode = 'EIO'
  let writes = 0
  let inFlight = 0
  let inFlightMax = 0
  const check = (operation: FailingOperation): void => {
    if (failing === operation) throw Object.assign(new Error(`${failingCode}: simulated failure of ${operation}`), { code: failingCode })
  }
  return {
    failOn (operation, code = 'EIO') {
      failing = operation
      failingCode = code
    },
    get writes () { return writes },
    get writesInFlightMax () { return inFlightMax },
    readFile: nodeFileSystem.readFile,
    remove: nodeFileSystem.remove,
    async openWal (path, sync) {
      const file = await nodeFileSystem.openWal(path, sync)
      return {
        async write (bytes, position) {
          writes++
          inFlight++
          inFlightMax = Math.max(inFlightMax, inFlight)
          try {
            if (failing === 'write') await file.write(bytes.subarray(0, bytes.length >> 1), position)
            check('write')
            await file.write(bytes, position)
          } finally {
            inFlight--
          }
        },
        async truncate (lengthBytes) {
          check('truncate')
          await file.truncate(lengthBytes)
        },
        close: file.close
      }
    },
    async writeFile (path, bytes, sync) {
      // Like a WAL write, a failing one leaves half of its bytes behind.
      if (failing === 'writeFile') await nodeFileSystem.writeFile(path, bytes.subarray(0, bytes.length >> 1), sync)
      check('writeFile')
      await nodeFileSystem.writeFile(path, bytes, sync)
    },
    async rename (from, to) {
      check('rename')
      await nodeFileSystem.rename(from, to)
    },
    async syncDirectory (dir) {
      check('syncDirectory')
      await nodeFileSystem.syncDirectory(dir)
    }
  }
}
