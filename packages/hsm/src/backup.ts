/**
 * Backups of one HSM, after AWS's scheme (reference G.1): the content is sealed under a fresh
 * ephemeral backup key (EBK), and the EBK under a persistent backup key (PBK) derived from the
 * manufacturer key, so that only HSMs of the same installation (the same "manufacturer") can
 * restore it. Whoever stores and copies backups (the control plane) handles them as opaque bytes;
 * it may read the clear header (`readBackupHeader`), which needs no secret.
 *
 * Layout (integers big-endian):
 *
 * ```
 * "HSMLABBK"  8 bytes   magic
 * version     1 byte    1
 * headerLen   4 bytes   length of the header
 * header      JSON      { format: 'hsmlab/backup/v1', clusterId, lineage, sourceHsmId, createdAtMs,
 *                         keyCount, deletedKeyCount, userCount, backupKeyId }
 * ebkLen      4 bytes   length of the sealed EBK
 * sealed EBK            seal(PBK, EBK)
 * sealed content        seal(H("hsmlab/backup/v1" ‖ EBK ‖ header), MessagePack(content))
 * ```
 *
 * The content key is bound to the header bytes (as masked objects bind theirs), so a changed
 * byte anywhere fails: in the header or content, authentication of the content; in the sealed
 * EBK, its own. `backupKeyId` names the PBK (a hash of it, not the key) so that a backup of
 * another installation is told apart from a tampered one.
 *
 * Content (MessagePack, never in clear): `{ format: 'hsmlab/backup-content/v1', clusterId,
 * lineage, sourceHsmId, maskingKey, users: UserRecord[], keys: (KeyRecord | KeyTombstone)[],
 * quorumMValues, clusterCertificates? }` —
 * every user with its password verifier, every token key, and the tombstones of deleted keys so
 * that a restore does not bring a deleted key back to life through replication; the quorum M
 * values and the cluster certificate and customer CA (getCert 8 and 4), as the service's backups
 * carry an HSM's settings and certificates.
 */
import { CryptoError, concatBytes, deriveKey, generateSecretKey, open, seal, sha512, toHex, utf8 } from '@hsmlab/crypto'
import { decode, encode } from '@hsmlab/protocol'
import type { HsmIdentity, KeyRecord, KeyTombstone, UserRecord } from './context.js'
import { isTombstone } from './context.js'
import type { ClusterCertificates } from './data-dir.js'
import { HsmError, HSM_ERR_BACKUP_FOREIGN, HSM_ERR_BACKUP_FORMAT, HSM_ERR_BACKUP_TAMPERED } from './errors.js'
import { readKeyRecord, readUserRecord } from './masked-objects.js'
import type { RecordFault } from './masked-objects.js'

const MAGIC = utf8('HSMLABBK')
const VERSION = 1
const HEADER_FORMAT = 'hsmlab/backup/v1'
const CONTENT_FORMAT = 'hsmlab/backup-content/v1'
const FIXED_BYTES = MAGIC.length + 1 + 4
/** A header is a few hundred bytes; anything much larger is not one of ours. */
const HEADER_BYTES_MAX = 64 * 1024
/** The largest backup `openBackup` decodes, in bytes. */
const BACKUP_BYTES_MAX = 256 * 1024 * 1024

/** What a backup tells about itself in clear (`readBackupHeader`); no secret is needed to read it. */
export interface BackupHeader {
  /** The format version: 1. */
  version: number
  /** The cluster of the HSM that made it. */
  clusterId: string
  /** The lineage of that cluster: a cluster restored from the backup has it too. */
  lineage: string
  /** The HSM that made it. */
  sourceHsmId: string
  /** When it was made, by the source HSM's clock, in milliseconds since the epoch. */
  createdAtMs: number
  /** Token keys it holds. */
  keyCount: number
  /** Tombstones of deleted keys it holds. */
  deletedKeyCount: number
  /** Users it holds. */
  userCount: number
  /**
   * Names the persistent backup key it is sealed under (16 hex digits of a hash of it): backups
   * with the same id can be restored by the same installation.
   */
  backupKeyId: string
}

/** What a backup holds, once opened. */
export interface BackupContent {
  header: BackupHeader
  maskingKey: Uint8Array
  users: UserRecord[]
  keys: Array<KeyRecord | KeyTombstone>
  /** The quorum M values by service (setMValue), as the service's backups carry quorum settings. */
  quorumMValues: Record<number, number>
  /** The cluster certificate and customer CA the HSM held (its cluster was initialized), if any. */
  clusterCertificates?: ClusterCertificates
}

/** What a backup is made of. */
export interface BackupSource {
  identity: Pick<HsmIdentity, 'hsmId' | 'clusterId' | 'lineage' | 'maskingKey'>
  users: Iterable<UserRecord>
  keys: Iterable<KeyRecord | KeyTombstone>
  createdAtMs: number
  /** The quorum M values by service that were set. @default {} */
  quorumMValues?: Record<number, number>
  /** The cluster certificate and customer CA the HSM holds. @default none */
  clusterCertificates?: ClusterCertificates
}

/** The persistent backup key (PBK) of an installation, derived from its manufacturer key. */
export function deriveBackupKey (manufacturerKey: Uint8Array): Uint8Array {
  return deriveKey(manufacturerKey, 'backup/v1')
}

function backupKeyIdOf (backupKey: Uint8Array): string {
  return toHex(sha512(concatBytes(utf8('hsmlab/backup-key-id/v1\0'), backupKey)).subarray(0, 8))
}

function contentKey (ebk: Uint8Array, headerBytes: Uint8Array): Uint8Array {
  return sha512(concatBytes(utf8(`${HEADER_FORMAT}\0`), ebk, headerBytes)).slice(0, 32)
}

function u32 (value: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, value)
  return out
}

/**
 * Makes the backup of one HSM. Reads `users` and `keys` in one synchronous pass, so that given
 * the stores' iterators it is a consistent snapshot (a store changes only between turns of the
 * event loop).
 */
export function createBackup (source: BackupSource, backupKey: Uint8Array): { bytes: Uint8Array, header: BackupHeader } {
  const users = [...source.users]
  const keys = [...source.keys]
  const deletedKeyCount = keys.filter(isTombstone).length
  const { identity } = source
  const header: BackupHeader = {
    version: VERSION,
    clusterId: identity.clusterId,
    lineage: identity.lineage,
    sourceHsmId: identity.hsmId,
    createdAtMs: source.createdAtMs,
    keyCount: keys.length - deletedKeyCount,
    deletedKeyCount,
    userCount: users.length,
    backupKeyId: backupKeyIdOf(backupKey)
  }
  const headerBytes = utf8(JSON.stringify({
    format: HEADER_FORMAT,
    clusterId: header.clusterId,
    lineage: header.lineage,
    sourceHsmId: header.sourceHsmId,
    createdAtMs: header.createdAtMs,
    keyCount: header.keyCount,
    deletedKeyCount: header.deletedKeyCount,
    userCount: header.userCount,
    backupKeyId: header.backupKeyId
  }))
  const ebk = generateSecretKey()
  const content = encode({
    format: CONTENT_FORMAT,
    clusterId: identity.clusterId,
    lineage: identity.lineage,
    sourceHsmId: identity.hsmId,
    maskingKey: identity.maskingKey,
    users,
    keys,
    quorumMValues: source.quorumMValues ?? {},
    ...(source.clusterCertificates === undefined ? {} : { clusterCertificates: source.clusterCertificates })
  })
  const sealedEbk = seal(backupKey, ebk)
  const prefix = concatBytes(MAGIC, Uint8Array.of(VERSION), u32(headerBytes.length))
  const bytes = concatBytes(prefix, headerBytes, u32(sealedEbk.length), sealedEbk, seal(contentKey(ebk, headerBytes), content))
  return { bytes, header }
}

function formatError (detail: string): HsmError {
  return new HsmError(HSM_ERR_BACKUP_FORMAT, `not an hsmlab backup: ${detail}`)
}

function isCount (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

interface ParsedBackup {
  header: BackupHeader
  headerBytes: Uint8Array
  sealedEbk: Uint8Array
  sealedContent: Uint8Array
}

function parse (bytes: Uint8Array): ParsedBackup {
  if (bytes.length < FIXED_BYTES || !MAGIC.every((b, i) => bytes[i] === b)) throw formatError('bad magic bytes')
  if (bytes[MAGIC.length] !== VERSION) throw formatError(`version ${String(bytes[MAGIC.length])} is not supported (this HSM reads version ${VERSION})`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = view.getUint32(MAGIC.length + 1)
  if (headerLength > HEADER_BYTES_MAX || FIXED_BYTES + headerLength + 4 > bytes.length) throw formatError('it is truncated (header)')
  const headerBytes = bytes.subarray(FIXED_BYTES, FIXED_BYTES + headerLength)
  const ebkAt = FIXED_BYTES + headerLength
  const ebkLength = view.getUint32(ebkAt)
  if (ebkAt + 4 + ebkLength > bytes.length) throw formatError('it is truncated (backup key)')
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes))
  } catch (err) {
    throw new HsmError(HSM_ERR_BACKUP_FORMAT, 'the backup header is not readable JSON: it was changed', { cause: err })
  }
  const v = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>
  if (v.format !== HEADER_FORMAT || typeof v.clusterId !== 'string' || typeof v.lineage !== 'string' || typeof v.sourceHsmId !== 'string' ||
      !isCount(v.createdAtMs) || !isCount(v.keyCount) || !isCount(v.deletedKeyCount) || !isCount(v.userCount) ||
      typeof v.backupKeyId !== 'string' || !/^[0-9a-f]{16}$/.test(v.backupKeyId)) {
    throw formatError('the header is malformed')
  }
  const header: BackupHeader = {
    version: VERSION,
    clusterId: v.clusterId,
    lineage: v.lineage,
    sourceHsmId: v.sourceHsmId,
    createdAtMs: v.createdAtMs,
    keyCount: v.keyCount,
    deletedKeyCount: v.deletedKeyCount,
    userCount: v.userCount,
    backupKeyId: v.backupKeyId
  }
  return {
    header,
    headerBytes,
    sealedEbk: bytes.subarray(ebkAt + 4, ebkAt + 4 + ebkLength),
    sealedContent: bytes.subarray(ebkAt + 4 + ebkLength)
  }
}

/**
 * The clear header of a backup, read without any secret (the control plane describes backups
 * with it). Throws `HSM_ERR_BACKUP_FORMAT` for bytes that are not a backup. The header is
 * authenticated only when the backup is restored: do not trust it for more than a description.
 */
export function readBackupHeader (bytes: Uint8Array): BackupHeader {
  return parse(bytes).header
}

function tampered (detail: string, cause?: unknown): HsmError {
  return new HsmError(HSM_ERR_BACKUP_TAMPERED, `the backup failed authentication: ${detail}`, cause === undefined ? undefined : { cause })
}

/**
 * Opens a backup with the persistent backup key of this installation. Throws
 * `HSM_ERR_BACKUP_FORMAT` (not a backup), `HSM_ERR_BACKUP_FOREIGN` (sealed under another
 * manufacturer key) or `HSM_ERR_BACKUP_TAMPERED` (a byte was changed); nothing is returned
 * unless every byte is as the source HSM wrote it.
 */
export function openBackup (bytes: Uint8Array, backupKey: Uint8Array): BackupContent {
  if (bytes.length > BACKUP_BYTES_MAX) throw formatError(`it is ${bytes.length} bytes, more than the ${BACKUP_BYTES_MAX} a backup can be`)
  const { header, headerBytes, sealedEbk, sealedContent } = parse(bytes)
  let ebk: Uint8Array
  try {
    ebk = open(backupKey, sealedEbk)
  } catch (err) {
    if (!(err instanceof CryptoError)) throw err
    if (header.backupKeyId !== backupKeyIdOf(backupKey)) {
      throw new HsmError(HSM_ERR_BACKUP_FOREIGN, `the backup was made by an HSM of another manufacturer key (backup key ${header.backupKeyId}, this HSM's is ${backupKeyIdOf(backupKey)}): only HSMs of the installation that made it can restore it`, { cause: err })
    }
    throw tampered('its sealed backup key was changed', err)
  }
  if (header.backupKeyId !== backupKeyIdOf(backupKey)) throw tampered('its header was changed (backup key id)')
  let plain: Uint8Array
  try {
    plain = open(contentKey(ebk, headerBytes), sealedContent)
  } catch (err) {
    if (!(err instanceof CryptoError)) throw err
    throw tampered('its header or content was changed after it was made', err)
  }
  return { header, ...readContent(plain, header) }
}

function readContent (plain: Uint8Array, header: BackupHeader): Omit<BackupContent, 'header'> {
  const malformed = (detail: string, cause?: unknown): HsmError =>
    new HsmError(HSM_ERR_BACKUP_FORMAT, `the backup content ${detail}`, cause === undefined ? undefined : { cause })
  let value: unknown
  try {
    value = decode(plain, BACKUP_BYTES_MAX)
  } catch (err) {
    throw malformed('is not readable MessagePack', err)
  }
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  if (v.format !== CONTENT_FORMAT) throw malformed(`is not in format ${CONTENT_FORMAT}`)
  if (v.clusterId !== header.clusterId || v.lineage !== header.lineage || v.sourceHsmId !== header.sourceHsmId) {
    throw malformed('names another cluster, lineage or source HSM than its header')
  }
  if (!(v.maskingKey instanceof Uint8Array) || v.maskingKey.length !== 32) throw malformed('holds no masking key')
  if (!Array.isArray(v.users) || !Array.isArray(v.keys)) throw malformed('holds no user or key list')
  const fault: RecordFault = detail => malformed(detail)
  // readUserRecord keeps a user's quorum/2FA public key too.
  const users = (v.users as unknown[]).map(u => readUserRecord(u, fault))
  const quorumMValues: Record<number, number> = {}
  // Backups made before quorum settings existed hold none: every M value is then 1.
  if (v.quorumMValues !== undefined) {
    const m = v.quorumMValues as Record<string, unknown> | null
    if (typeof m !== 'object' || m === null) throw malformed('holds malformed quorum settings')
    for (const [service, value] of Object.entries(m)) {
      if (!/^\d+$/.test(service) || typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > 8) throw malformed('holds malformed quorum settings')
      quorumMValues[Number(service)] = value
    }
  }
  // Backups of HSMs whose cluster was not initialized (or made before HSMs held them) hold none.
  let clusterCertificates: ClusterCertificates | undefined
  if (v.clusterCertificates !== undefined) {
    const c = v.clusterCertificates as Record<string, unknown> | null
    if (typeof c !== 'object' || c === null || typeof c.clusterCertificate !== 'string' || typeof c.trustAnchor !== 'string') throw malformed('holds malformed cluster certificates')
    clusterCertificates = { clusterCertificate: c.clusterCertificate, trustAnchor: c.trustAnchor }
  }
  const keys = (v.keys as unknown[]).map((k): KeyRecord | KeyTombstone => {
    const t = k as Record<string, unknown> | null
    if (t !== null && typeof t === 'object' && t.deleted === true) {
      if (typeof t.handle !== 'number' || !Number.isSafeInteger(t.handle) || t.handle < 0) throw malformed('holds a malformed tombstone')
      return { handle: t.handle, deleted: true }
    }
    return readKeyRecord(k, fault)
  })
  const deleted = keys.filter(isTombstone).length
  if (users.length !== header.userCount || keys.length - deleted !== header.keyCount || deleted !== header.deletedKeyCount) {
    throw malformed('holds other counts than its header says')
  }
  if (new Set(users.map(u => u.userId)).size !== users.length || new Set(keys.map(k => k.handle)).size !== keys.length) {
    throw malformed('holds a user id or key handle twice')
  }
  return { maskingKey: new Uint8Array(v.maskingKey), users, keys, quorumMValues, ...(clusterCertificates === undefined ? {} : { clusterCertificates }) }
}
