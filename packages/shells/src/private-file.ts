/**
 * Output files of both shells that may hold key material or secrets (KMU's exportPrivateKey,
 * wrapKey, exportSymKey-like dumps, extractMaskedObject, signatures and attribute dumps; CMU's
 * getAttribute, findAllKeys, getKeyInfo and getCert files): created readable by their owner only
 * (0600), as careful tools write a private key.
 *
 * The bytes go to a new temporary file beside the target, created exclusively with mode 0600,
 * which is then renamed over the target. So an existing file with wider permissions never holds
 * them, not even for a moment (truncating it and changing its mode afterwards would leave a window,
 * and a reader that had it open would still read through its descriptor), and a file left by a
 * failed write is never half of one.
 */
import { randomBytes } from 'node:crypto'
import { open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** The mode of every file the shells write: its owner reads and writes it, nobody else. */
export const PRIVATE_FILE_MODE = 0o600

/** Writes `data` to `path` with mode 0600, replacing what was there (see the module comment). */
export async function writePrivateFile (path: string, data: Uint8Array | string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, 'wx', PRIVATE_FILE_MODE)
  try {
    try {
      // The mode given to open is reduced by the umask only, never widened; chmod makes it exact.
      await handle.chmod(PRIVATE_FILE_MODE)
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw err
  }
}
