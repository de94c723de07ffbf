/**
 * The few file operations the on-disk store needs, behind an interface so that tests can make
 * any one of them fail (a full disk, a failing fsync) without mocking `node:fs`.
 */
import { constants } from 'node:fs'
import { open, readFile, rename, unlink } from 'node:fs/promises'

/** An open write-ahead log file. */
export interface WalFile {
  /** Writes all of `bytes` at `position`; durable on return when opened with `sync`. */
  write: (bytes: Uint8Array, position: number) => Promise<void>
  /** Cuts the file to `lengthBytes` and makes the new length durable. */
  truncate: (lengthBytes: number) => Promise<void>
  close: () => Promise<void>
}

/** File operations of the on-disk store. */
export interface StoreFileSystem {
  /** The file's bytes, or `undefined` when it does not exist. */
  readFile: (path: string) => Promise<Uint8Array | undefined>
  /**
   * Opens (creating if needed) a WAL for reading and writing. With `sync`, every write is
   * durable before it returns (O_DSYNC: one system call per group commit instead of write +
   * fdatasync, measurably faster than two trips through the libuv thread pool).
   */
  openWal: (path: string, sync: boolean) => Promise<WalFile>
  /** Creates or replaces `path` with `bytes`, and with `sync` fsyncs it before returning. */
  writeFile: (path: string, bytes: Uint8Array, sync: boolean) => Promise<void>
  rename: (from: string, to: string) => Promise<void>
  /** Removes `path`; a file that does not exist is not an error. */
  remove: (path: string) => Promise<void>
  /** Makes the directory's entries (created, renamed files) durable. */
  syncDirectory: (dir: string) => Promise<void>
}

/** The real file system. */
export const nodeFileSystem: StoreFileSystem = {
  async readFile (path) {
    try {
      return await readFile(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  },

  async openWal (path, sync) {
    // Where there is no O_DSYNC (Windows), each write is followed by an fdatasync instead.
    const dsync = sync && constants.O_DSYNC !== undefined
    const flags = constants.O_RDWR | constants.O_CREAT | (dsync ? constants.O_DSYNC : 0)
    const handle = await open(path, flags, 0o600)
    return {
      async write (bytes, position) {
        // A write may be short (a signal, a nearly full disk); loop until every byte is out.
        let done = 0
        while (done < bytes.length) {
          const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done)
          done += bytesWritten
        }
        if (sync && !dsync) await handle.datasync()
      },
      async truncate (lengthBytes) {
        await handle.truncate(lengthBytes)
        if (sync) await handle.sync()
      },
      async close () {
        await handle.close()
      }
    }
  },

  async writeFile (path, bytes, sync) {
    const handle = await open(path, 'w', 0o600)
    try {
      await handle.writeFile(bytes)
      if (sync) await handle.sync()
    } finally {
      await handle.close()
    }
  },

  async rename (from, to) {
    await rename(from, to)
  },

  async remove (path) {
    try {
      await unlink(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  },

  async syncDirectory (dir) {
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  }
}
