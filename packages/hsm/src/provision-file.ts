/**
 * Provision files: how the control plane makes an HSM without ever holding its secrets at rest
 * nor the manufacturer or masking keys. It writes one JSON file (mode 0600) and starts
 * `hsmlab-hsm --provision FILE`; the HSM, finding its data directory unprovisioned, makes it from
 * the file, deletes the file and starts as usual. A restart with the directory provisioned
 * ignores the flag, so restarts are idempotent.
 *
 * The control plane holds the cluster's trust anchor secret: it stands in both for the
 * customer's CA (which signs the cluster certificate in AWS) and for the AWS service (which
 * creates HSMs). So it, not the HSM, makes the HSM's identity key pair and certificate
 * (`issueHsmIdentity`), and the file carries them.
 *
 * ```json
 * { "version": 1, "hsmId": "hsm-…", "clusterId": "cluster-…", "slot": 0, "label": "…",
 *   "anchorPublicKey": "<base64, 32 bytes>", "identitySecretKey": "<base64, Ed25519, 64 bytes>",
 *   "certificate": { "hsmId": "hsm-…", "clusterId": "cluster-…", "publicKey": "<base64>", "signature": "<base64>" },
 *   "backupFile": "/abs/path/to/backup" }
 * ```
 *
 * Without `backupFile` the HSM is the first of a brand-new cluster: it makes a masking key and a
 * lineage of its own and the users of a new cluster (PRECO admin, AU app_user), as
 * `provisionHsm` does. With `backupFile` it restores the backup (users, token keys and
 * tombstones with their handles, masking key, lineage) under the cluster id and slot of the
 * file: a clone has a new cluster id and the source's lineage. A backup that is not one, was
 * changed, or comes from another installation fails, naming the backup file, and leaves no data
 * directory (the file is kept, so the failure can be looked into).
 */
import { readFile, rm } from 'node:fs/promises'
import { basename, dirname, isAbsolute, resolve } from 'node:path'
import { bytesEqual, generateSecretKey, signingKeyPairFromSecretKey, verifyCertificate } from '@hsmlab/crypto'
import type { HsmCertificate } from '@hsmlab/crypto'
import { deriveBackupKey, openBackup } from './backup.js'
import type { BackupHeader } from './backup.js'
import type { HsmIdentity, KeyRecord, KeyTombstone, UserRecord } from './context.js'
import { hasStorageKey, writeFileDurably } from './data-dir.js'
import type { ClusterCertificates } from './data-dir.js'
import { HsmError, HSM_ERR_INVALID_ARGUMENT, HSM_ERR_PROVISION_FILE } from './errors.js'
import {
  HSM_LABEL, checkResourceId, checkSlot, checkUnprovisioned, installDataDir, newClusterUsers, newLineage, newSerialNumber
} from './provisioning.js'
import type { ProvisionedHsm } from './provisioning.js'

/** The provision file as it is on disk (JSON; byte strings in base64). */
export interface ProvisionFile {
  version: 1
  hsmId: string
  clusterId: string
  /** This HSM's handle slot in its cluster (0 to 8191), unique per cluster. */
  slot: number
  /** getHSMInfo's label. @default 'cavium' */
  label?: string
  /** The cluster's trust anchor public key (Ed25519, 32 bytes), base64. */
  anchorPublicKey: string
  /** The HSM's identity secret key (Ed25519, 64 bytes), base64. */
  identitySecretKey: string
  /** The HSM's certificate from the trust anchor; byte strings in base64. */
  certificate: { hsmId: string, clusterId: string, publicKey: string, signature: string }
  /** Absolute path of a backup to restore; absent for the first HSM of a new cluster. */
  backupFile?: string
}

/** What `writeProvisionFile` writes, byte strings as bytes. */
export interface ProvisionFileOptions {
  hsmId: string
  clusterId: string
  slot: number
  /** @default 'cavium' */
  label?: string
  /** The cluster's trust anchor public key (32 bytes). */
  anchorPublicKey: Uint8Array
  /** The HSM's identity secret key (Ed25519, 64 bytes), e.g. `issueHsmIdentity(...).identity.secretKey`. */
  identitySecretKey: Uint8Array
  /** Its certificate, e.g. `issueHsmIdentity(...).certificate`. */
  certificate: HsmCertificate
  /** Absolute path of a backup to restore (its bytes as `exportBackup` returned them). */
  backupFile?: string
}

/** Options of `provisionFromFile`. */
export interface ProvisionFromFileOptions {
  /** The data directory to make; it must not hold an HSM. */
  dataDir: string
  /** The provision file to make it from. */
  provisionFile: string
  manufacturerKey: Uint8Array
  /** scrypt cost of a new cluster's users' verifiers. @default hsmDefaults.passwordHashCost */
  passwordHashCost?: number
  /** Make store writes durable (tests may turn it off). @default true */
  syncWrites?: boolean
}

/** What `provisionFromFile` made (no secrets). */
export interface ProvisionedFromFile extends ProvisionedHsm {
  lineage: string
  /** The header of the backup restored, if one was. */
  restoredFrom?: BackupHeader
}

const LABEL_CHARS_MAX = 128

function checkOptions (o: ProvisionFileOptions, fail: (detail: string) => HsmError): void {
  const check = <T>(f: () => T): T => {
    try {
      return f()
    } catch (err) {
      throw fail((err as Error).message)
    }
  }
  check(() => checkResourceId('hsm', o.hsmId))
  check(() => checkResourceId('cluster', o.clusterId))
  check(() => checkSlot(o.slot))
  if (o.label !== undefined && (typeof o.label !== 'string' || o.label.length === 0 || o.label.length > LABEL_CHARS_MAX)) {
    throw fail(`the label must be 1 to ${LABEL_CHARS_MAX} characters`)
  }
  if (o.anchorPublicKey.length !== 32) throw fail(`the trust anchor public key is 32 bytes, not ${o.anchorPublicKey.length}`)
  if (o.identitySecretKey.length !== 64) throw fail(`the identity secret key is an Ed25519 secret key of 64 bytes, not ${o.identitySecretKey.length}`)
  const cert = o.certificate
  if (cert.hsmId !== o.hsmId || cert.clusterId !== o.clusterId) {
    throw fail(`the certificate is for ${cert.hsmId} of ${cert.clusterId}, not ${o.hsmId} of ${o.clusterId}`)
  }
  if (!bytesEqual(signingKeyPairFromSecretKey(o.identitySecretKey).publicKey, cert.publicKey)) {
    throw fail('the certificate does not certify the public key of the identity secret key')
  }
  check(() => { verifyCertificate(o.anchorPublicKey, cert) })
  if (o.backupFile !== undefined && (typeof o.backupFile !== 'string' || !isAbsolute(o.backupFile))) {
    throw fail(`backupFile must be an absolute path, not '${String(o.backupFile)}'`)
  }
}

function base64 (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/**
 * Writes a provision file (mode 0600, atomically) for `hsmlab-hsm --provision FILE`. Checks that
 * it is usable first: ids, slot, key sizes, and a certificate from `anchorPublicKey` for the
 * identity key of this HSM of this cluster; throws `HSM_ERR_INVALID_ARGUMENT` otherwise.
 */
export async function writeProvisionFile (path: string, options: ProvisionFileOptions): Promise<void> {
  checkOptions(options, detail => new HsmError(HSM_ERR_INVALID_ARGUMENT, `cannot write the provision file ${path}: ${detail}`))
  const file: ProvisionFile = {
    version: 1,
    hsmId: options.hsmId,
    clusterId: options.clusterId,
    slot: options.slot,
    ...(options.label === undefined ? {} : { label: options.label }),
    anchorPublicKey: base64(options.anchorPublicKey),
    identitySecretKey: base64(options.identitySecretKey),
    certificate: {
      hsmId: options.certificate.hsmId,
      clusterId: options.certificate.clusterId,
      publicKey: base64(options.certificate.publicKey),
      signature: base64(options.certificate.signature)
    },
    ...(options.backupFile === undefined ? {} : { backupFile: options.backupFile })
  }
  const absolute = resolve(path)
  await writeFileDurably(dirname(absolute), basename(absolute), `${JSON.stringify(file, null, 2)}\n`, 0o600)
}

/** Reads and checks a provision file; throws `HSM_ERR_PROVISION_FILE` naming the file and what is wrong. */
export async function readProvisionFile (path: string): Promise<ProvisionFileOptions> {
  const fail = (detail: string, cause?: unknown): HsmError =>
    new HsmError(HSM_ERR_PROVISION_FILE, `the provision file ${path} ${detail}`, cause === undefined ? undefined : { cause })
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw fail(`cannot be read: ${(err as Error).message}`, err)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw fail('is not JSON', err)
  }
  const v = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>
  if (v.version !== 1) throw fail(`has version ${JSON.stringify(v.version)}; this HSM reads version 1`)
  const bytesOf = (value: unknown, name: string): Uint8Array => {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw fail(`has no base64 ${name}`)
    return new Uint8Array(Buffer.from(value, 'base64'))
  }
  const cert = (typeof v.certificate === 'object' && v.certificate !== null ? v.certificate : {}) as Record<string, unknown>
  if (typeof cert.hsmId !== 'string' || typeof cert.clusterId !== 'string') throw fail('has no certificate { hsmId, clusterId, publicKey, signature }')
  if (typeof v.hsmId !== 'string' || typeof v.clusterId !== 'string' || typeof v.slot !== 'number') throw fail('needs hsmId, clusterId and slot')
  if (v.label !== undefined && typeof v.label !== 'string') throw fail('has a label that is not a string')
  if (v.backupFile !== undefined && typeof v.backupFile !== 'string') throw fail('has a backupFile that is not a string')
  const options: ProvisionFileOptions = {
    hsmId: v.hsmId,
    clusterId: v.clusterId,
    slot: v.slot,
    anchorPublicKey: bytesOf(v.anchorPublicKey, 'anchorPublicKey'),
    identitySecretKey: bytesOf(v.identitySecretKey, 'identitySecretKey'),
    certificate: {
      hsmId: cert.hsmId,
      clusterId: cert.clusterId,
      publicKey: bytesOf(cert.publicKey, 'certificate.publicKey'),
      signature: bytesOf(cert.signature, 'certificate.signature')
    }
  }
  if (v.label !== undefined) options.label = v.label
  if (v.backupFile !== undefined) options.backupFile = v.backupFile
  checkOptions(options, detail => fail(`is not usable: ${detail}`))
  return options
}

/** The new cluster's secrets the HSM makes itself, or the ones a backup holds. */
async function clusterContent (file: ProvisionFileOptions, manufacturerKey: Uint8Array, passwordHashCost: number | undefined): Promise<{
  lineage: string
  maskingKey: Uint8Array
  users: UserRecord[]
  keys: Array<KeyRecord | KeyTombstone>
  restoredFrom?: BackupHeader
  quorumMValues?: Record<number, number>
  clusterCertificates?: ClusterCertificates
}> {
  const backupFile = file.backupFile
  if (backupFile === undefined) {
    return { lineage: newLineage(), maskingKey: generateSecretKey(), users: await newClusterUsers(passwordHashCost), keys: [] }
  }
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await readFile(backupFile))
  } catch (err) {
    throw new HsmError(HSM_ERR_PROVISION_FILE, `cannot read the backup file ${backupFile}: ${(err as Error).message}`, { cause: err })
  }
  try {
    const content = openBackup(bytes, deriveBackupKey(manufacturerKey))
    return { lineage: content.header.lineage, maskingKey: content.maskingKey, users: content.users, keys: content.keys, restoredFrom: content.header, quorumMValues: content.quorumMValues, clusterCertificates: content.clusterCertificates }
  } catch (err) {
    if (err instanceof HsmError) throw new HsmError(err.code, `cannot restore the backup file ${backupFile}: ${err.message}`, { cause: err })
    throw err
  }
}

/**
 * Makes a data directory from a provision file (with `installDataDir`, so that a failure leaves
 * no directory). Throws `HSM_ERR_PROVISION_FILE`, `HSM_ERR_BACKUP_FORMAT`,
 * `HSM_ERR_BACKUP_TAMPERED`, `HSM_ERR_BACKUP_FOREIGN` (naming the backup file) or
 * `HSM_ERR_ALREADY_PROVISIONED`. Does not delete the file (`provisionIfNeeded` does).
 */
export async function provisionFromFile (opts: ProvisionFromFileOptions): Promise<ProvisionedFromFile> {
  const dataDir = resolve(opts.dataDir)
  const file = await readProvisionFile(opts.provisionFile)
  await checkUnprovisioned(dataDir)
  const { lineage, maskingKey, users, keys, restoredFrom, quorumMValues, clusterCertificates } = await clusterContent(file, opts.manufacturerKey, opts.passwordHashCost)
  const identity: HsmIdentity = {
    hsmId: file.hsmId,
    clusterId: file.clusterId,
    lineage,
    slot: file.slot,
    maskingKey,
    identity: signingKeyPairFromSecretKey(file.identitySecretKey),
    certificate: file.certificate,
    anchorPublicKey: file.anchorPublicKey,
    label: file.label ?? HSM_LABEL,
    serialNumber: newSerialNumber()
  }
  await installDataDir(dataDir, opts.manufacturerKey, { identity, users, keys, quorumMValues, clusterCertificates }, { syncWrites: opts.syncWrites })
  const made: ProvisionedFromFile = { hsmId: file.hsmId, clusterId: file.clusterId, slot: file.slot, dataDir, certificate: file.certificate, lineage }
  if (restoredFrom !== undefined) made.restoredFrom = restoredFrom
  return made
}

/**
 * What `hsmlab-hsm --provision FILE` does before it starts: when `dataDir` is not provisioned,
 * provisions it from the file and then deletes the file (it holds the HSM's identity secret);
 * when it is, does nothing and leaves the file alone. Resolves with what it made, if anything.
 */
export async function provisionIfNeeded (opts: ProvisionFromFileOptions): Promise<ProvisionedFromFile | undefined> {
  if (await hasStorageKey(resolve(opts.dataDir))) return undefined
  const made = await provisionFromFile(opts)
  await rm(opts.provisionFile, { force: true })
  return made
}
