/**
 * The peer secret of an installation (issue 12): what its control planes sign their
 * region-to-region requests with (the internal `/_hsmlab/sync/*` and copy paths), so that no
 * other local process can disassociate a replica (which locks it for good), push resources into
 * it, or take a backup's bytes. The public cloudhsmv2 API is left as it is (the AWS CLI signs it
 * with whatever credentials it has, and without `--credentials` any signature is accepted there).
 *
 * The secret is a file readable by its owner only (mode 0600: group or others may not read it),
 * given to each control plane by path (`--peer-secret-file`), never on a command line or in a
 * log: `hsmlab up` makes one per lab directory, the Docker lab's one-shot `peer-secret` service
 * one in a volume. Requests are signed with SigV4 (sigv4.ts), access key id `PEER_ACCESS_KEY_ID`
 * and the secret as secret key, and checked with the same clock skew rule as the API.
 */
import { randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { writeFileAtomic } from '@hsmlab/process'
import { ControlPlaneError, CP_ERR_PEER_SECRET } from './errors.js'
import type { Credentials } from './sigv4.js'

/** The access key id of region-to-region requests signed with a peer secret. */
export const PEER_ACCESS_KEY_ID = 'hsmlab-peer'
/** The fewest characters a peer secret has (a made one has 64: 32 random bytes in hex). */
export const PEER_SECRET_CHARS_MIN = 32

/** A new peer secret: 32 random bytes, hex. */
export function createPeerSecret (): string {
  return randomBytes(32).toString('hex')
}

/**
 * Writes a new peer secret to `file` (mode 0600, atomically and durably: never half written, and
 * still there after a crash) unless the file exists; resolves whether it made one.
 */
export async function ensurePeerSecretFile (file: string): Promise<boolean> {
  try {
    await stat(file)
    return false
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await writeFileAtomic(file, `${createPeerSecret()}\n`, { mode: 0o600 })
  return true
}

/**
 * Reads a peer secret file: a regular file that group and others cannot read, holding one line
 * of at least `PEER_SECRET_CHARS_MIN` printable characters. Throws CP_ERR_PEER_SECRET (naming the
 * file, never its content) otherwise.
 */
export async function readPeerSecretFile (file: string): Promise<Credentials> {
  const fail = (why: string, cause?: unknown): never => {
    throw new ControlPlaneError(CP_ERR_PEER_SECRET, `the peer secret file ${file} ${why}`, cause === undefined ? undefined : { cause })
  }
  let text = ''
  try {
    const info = await stat(file)
    if (!info.isFile()) fail('is not a regular file')
    if ((info.mode & 0o077) !== 0) fail(`can be read by others (mode ${(info.mode & 0o777).toString(8)}): make it 0600 (chmod 600)`)
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (err instanceof ControlPlaneError) throw err
    fail(`cannot be read: ${(err as Error).message}`, err)
  }
  const secret = text.trim()
  if (secret.length < PEER_SECRET_CHARS_MIN || !/^[\x21-\x7e]+$/.test(secret)) {
    fail(`does not hold a secret of at least ${PEER_SECRET_CHARS_MIN} printable characters on one line`)
  }
  return { accessKeyId: PEER_ACCESS_KEY_ID, secretAccessKey: secret }
}
