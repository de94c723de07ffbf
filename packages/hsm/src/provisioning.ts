/**
 * Making HSMs: the secrets of a new cluster, the per-installation manufacturer key, and the data
 * directory of one HSM as the factory (and cluster initialisation) leave it. The lab calls these
 * in process, then starts `hsmlab-hsm` on the directory; the control plane instead hands the HSM
 * process a provision file (provision-file.ts), which ends in the same `installDataDir`.
 */
import { chmod, mkdir, mkdtemp, open as fsOpen, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import {
  SECRET_KEY_BYTES, generateSecretKey, generateSigningKeyPair, hashPassword, issueCertificate, randomBytes,
  sign, utf8, verifySignature
} from '@hsmlab/crypto'
import type { HsmCertificate, SigningKeyPair } from '@hsmlab/crypto'
import type { PeerAddress, SyncRole } from '@hsmlab/protocol'
import type { HsmIdentity, KeyRecord, KeyTombstone, UserRecord } from './context.js'
import { META_CLUSTER_CERTIFICATES, META_IDENTITY, META_QUORUM, STORAGE_KEY_FILE, hasStorageKey, openDataStores, storeFilesIn, writeStorageKey } from './data-dir.js'
import type { ClusterCertificates, DataStoreOptions } from './data-dir.js'
import { hsmDefaults } from './defaults.js'
import { HsmError, HSM_ERR_ALREADY_PROVISIONED, HSM_ERR_INVALID_ARGUMENT, HSM_ERR_MANUFACTURER_KEY } from './errors.js'
import { isResourceId, randomBase32, randomResourceId } from './ids.js'

/** The secrets made when a cluster is initialised; a clone inherits all but the id. */
export interface ClusterSecrets {
  clusterId: string
  /** Names the masking key; clones share it, so masked objects move only within one lineage. */
  lineage: string
  /** Seals masked objects (users and keys moving between HSMs). */
  maskingKey: Uint8Array
  /** The cluster's trust anchor (customer CA): signs HSM certificates and peer lists. */
  anchor: SigningKeyPair
}

/** The user name and password of the PRECO of a new cluster (reference B.1: `loginHSM PRECO admin password`). */
export const DEFAULT_ADMIN_NAME = 'admin'
export const DEFAULT_ADMIN_PASSWORD = 'password'
/** The appliance user every HSM has (id 2). */
export const APPLIANCE_USER_NAME = 'app_user'

/** Label, model and serial-number prefix getHSMInfo prints (reference A.9). */
export const HSM_LABEL = 'cavium'
export const HSM_MODEL = 'NITROX-III CNN35XX-NFBE'
const SERIAL_PREFIX = '3.0A0101-ICM'

/** Throws `HSM_ERR_INVALID_ARGUMENT` unless `id` is a `kind-xxxxxxxxxxx` resource id. */
export function checkResourceId (kind: 'hsm' | 'cluster', id: unknown): string {
  if (typeof id !== 'string' || !isResourceId(kind, id)) {
    const what = kind === 'hsm' ? 'an HSM id' : 'a cluster id'
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `'${String(id)}' is not ${what} (${kind}- followed by 11 to 16 characters of [2-7a-zA-Z])`)
  }
  return id
}

/** Throws `HSM_ERR_INVALID_ARGUMENT` unless `slot` is a handle slot (0 to `slotsMax - 1`). */
export function checkSlot (slot: unknown): number {
  if (typeof slot !== 'number' || !Number.isSafeInteger(slot) || slot < 0 || slot >= hsmDefaults.slotsMax) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `slot ${String(slot)} is out of range: a slot is an integer from 0 to ${hsmDefaults.slotsMax - 1}`)
  }
  return slot
}

function checkManufacturerKey (key: Uint8Array): void {
  if (key.length !== SECRET_KEY_BYTES) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `a manufacturer key is ${SECRET_KEY_BYTES} bytes, this one has ${key.length}`)
  }
}

/** A fresh lineage name: a new cluster's, which its clones inherit. */
export function newLineage (): string {
  return `lineage-${randomBase32(16)}`
}

/** Fresh secrets for a new cluster; `clusterId` defaults to a random `cluster-xxxxxxxxxxx`. */
export function createClusterSecrets (opts: { clusterId?: string } = {}): ClusterSecrets {
  const clusterId = checkResourceId('cluster', opts.clusterId ?? randomResourceId('cluster'))
  return { clusterId, lineage: newLineage(), maskingKey: generateSecretKey(), anchor: generateSigningKeyPair() }
}

/** An HSM's identity key pair and its certificate from the cluster's trust anchor. */
export interface IssuedHsmIdentity {
  /** The HSM's Ed25519 key pair (`secretKey` is 64 bytes). */
  identity: SigningKeyPair
  /** Signed by the trust anchor: this public key is HSM `hsmId` of cluster `clusterId`. */
  certificate: HsmCertificate
}

/**
 * A fresh identity for one HSM, certified by the cluster's trust anchor (the holder of the
 * anchor's secret: the lab, or the control plane, standing in for the customer's CA).
 */
export function issueHsmIdentity (anchorSecretKey: Uint8Array, subject: { hsmId: string, clusterId: string }): IssuedHsmIdentity {
  const hsmId = checkResourceId('hsm', subject.hsmId)
  const clusterId = checkResourceId('cluster', subject.clusterId)
  const identity = generateSigningKeyPair()
  return { identity, certificate: issueCertificate(anchorSecretKey, { hsmId, clusterId, publicKey: identity.publicKey }) }
}

/** A fresh manufacturer key (one per installation; it seals every HSM's storage key and backups). */
export function createManufacturerKey (): Uint8Array {
  return generateSecretKey()
}

const MANUFACTURER_BEGIN = '-----BEGIN HSMLAB MANUFACTURER KEY-----'
const MANUFACTURER_END = '-----END HSMLAB MANUFACTURER KEY-----'

/** Writes a manufacturer key file (mode 0600), the file `hsmlab-hsm --manufacturer-key-file` reads. */
export async function writeManufacturerKey (file: string, key: Uint8Array): Promise<void> {
  checkManufacturerKey(key)
  await writeFile(file, `${MANUFACTURER_BEGIN}\n${Buffer.from(key).toString('base64')}\n${MANUFACTURER_END}\n`, { mode: 0o600 })
  // writeFile applies the mode only when it creates the file.
  await chmod(file, 0o600)
}

/** Reads what `writeManufacturerKey` wrote; throws `HSM_ERR_MANUFACTURER_KEY` naming the file otherwise. */
export async function readManufacturerKey (file: string): Promise<Uint8Array> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new HsmError(HSM_ERR_MANUFACTURER_KEY, `cannot read the manufacturer key file ${file}: ${(err as Error).message}`, { cause: err })
  }
  const body = text.trim()
  if (!body.startsWith(MANUFACTURER_BEGIN) || !body.endsWith(MANUFACTURER_END)) {
    throw new HsmError(HSM_ERR_MANUFACTURER_KEY, `${file} is not a manufacturer key file (expected a '${MANUFACTURER_BEGIN}' block)`)
  }
  const key = new Uint8Array(Buffer.from(body.slice(MANUFACTURER_BEGIN.length, -MANUFACTURER_END.length).trim(), 'base64'))
  if (key.length !== SECRET_KEY_BYTES) {
    throw new HsmError(HSM_ERR_MANUFACTURER_KEY, `${file} holds a ${key.length}-byte key; a manufacturer key is ${SECRET_KEY_BYTES} bytes`)
  }
  return key
}

/** Options of `provisionHsm`. */
export interface ProvisionOptions {
  /** Created if missing; must not hold an HSM already. */
  dataDir: string
  manufacturerKey: Uint8Array
  /** @default a random `hsm-xxxxxxxxxxx` */
  hsmId?: string
  /** This HSM's handle slot in its cluster: handles it makes are `slot * 262144 + n`. Unique per cluster. */
  slot: number
  cluster: ClusterSecrets
  /** getHSMInfo's label. @default 'cavium' */
  label?: string
  /** scrypt cost of the initial users' verifiers. @default hsmDefaults.passwordHashCost */
  passwordHashCost?: number
  /** Make store writes durable (tests may turn it off). @default true */
  syncWrites?: boolean
}

/** What `provisionHsm` made (no secrets). */
export interface ProvisionedHsm {
  hsmId: string
  clusterId: string
  slot: number
  dataDir: string
  certificate: HsmCertificate
}

/**
 * The users of an HSM of a new cluster (reference A.7, B.1): `1 PRECO admin` with the default
 * password, and `2 AU app_user` with a random password nobody knows.
 */
export async function newClusterUsers (passwordHashCost: number = hsmDefaults.passwordHashCost): Promise<UserRecord[]> {
  const unknownPassword = Buffer.from(randomBytes(24)).toString('base64')
  const base = { loginFailureCount: 0, mofnPubKey: false, twoFactor: false }
  // Both verifiers at once: scrypt runs on the thread pool, so two take the time of one.
  const [precoPassword, auPassword] = await Promise.all([hashPassword(DEFAULT_ADMIN_PASSWORD, passwordHashCost), hashPassword(unknownPassword, passwordHashCost)])
  return [
    { userId: 1, userType: 'PRECO', userName: DEFAULT_ADMIN_NAME, password: precoPassword, ...base },
    { userId: 2, userType: 'AU', userName: APPLIANCE_USER_NAME, password: auPassword, ...base }
  ]
}

/** What a new data directory holds: the HSM's identity, its users, its token keys (and tombstones). */
export interface DataDirContent {
  identity: HsmIdentity
  users: readonly UserRecord[]
  keys: ReadonlyArray<KeyRecord | KeyTombstone>
  /** Quorum M values by service, from a backup. @default none (all 1) */
  quorumMValues?: Record<number, number>
  /** The cluster certificate and customer CA, from a backup of an initialized cluster. @default none */
  clusterCertificates?: ClusterCertificates
}

/** A serial number as getHSMInfo prints it (reference A.9). */
export function newSerialNumber (): string {
  return `${SERIAL_PREFIX}${String(randomBytes(4).reduce((n, b) => n * 256 + b, 0) % 1_000_000).padStart(6, '0')}`
}

/**
 * Throws `HSM_ERR_ALREADY_PROVISIONED` when `dataDir` holds an HSM, or the store files of a
 * provisioning that did not finish. A missing directory, or one holding other files, is fine.
 */
export async function checkUnprovisioned (dataDir: string): Promise<void> {
  if (await hasStorageKey(dataDir)) {
    throw new HsmError(HSM_ERR_ALREADY_PROVISIONED, `${dataDir} already holds a provisioned HSM; use another directory, or remove this one to start over`)
  }
  const leftovers = await storeFilesIn(dataDir)
  if (leftovers.length > 0) {
    throw new HsmError(HSM_ERR_ALREADY_PROVISIONED, `${dataDir} holds store files (${leftovers.join(', ')}) but no storage key: an earlier provisioning did not finish; remove the directory and provision again`)
  }
}

async function syncDirectory (dir: string): Promise<void> {
  const handle = await fsOpen(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Moves a finished data directory into place. A missing (or empty) `dataDir` is replaced by one
 * rename, so the directory is whole or absent; into an existing directory that holds other files
 * the files move one by one, `storage.key` last, so that it is provisioned only once whole.
 */
async function moveIntoPlace (staging: string, dataDir: string): Promise<void> {
  try {
    await rename(staging, dataDir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
    // Someone may have provisioned it since we looked.
    await checkUnprovisioned(dataDir)
    const names = (await readdir(staging)).filter(name => name !== STORAGE_KEY_FILE)
    for (const name of [...names, STORAGE_KEY_FILE]) await rename(join(staging, name), join(dataDir, name))
    await syncDirectory(dataDir)
  }
  await syncDirectory(dirname(dataDir))
}

/**
 * Writes the data directory of one HSM, the one implementation behind `provisionHsm` and the
 * provision file: a fresh storage key sealed under the manufacturer key, the identity in `meta`,
 * the users and keys in their stores. It is built in a temporary directory beside `dataDir` and
 * moved into place when whole, so a failure leaves nothing half-provisioned. Throws
 * `HSM_ERR_ALREADY_PROVISIONED` if `dataDir` holds an HSM, or part of one.
 */
export async function installDataDir (dir: string, manufacturerKey: Uint8Array, content: DataDirContent, options: DataStoreOptions = {}): Promise<void> {
  const dataDir = resolve(dir)
  checkManufacturerKey(manufacturerKey)
  await checkUnprovisioned(dataDir)
  const parent = dirname(dataDir)
  await mkdir(parent, { recursive: true, mode: 0o700 })
  // mkdtemp makes the directory with mode 0700.
  const staging = await mkdtemp(join(parent, `.${basename(dataDir)}.provisioning-`))
  try {
    const storageKey = generateSecretKey()
    const stores = await openDataStores(staging, storageKey, options)
    try {
      await stores.meta.apply([{ op: 'put', id: META_IDENTITY, value: { kind: 'identity', identity: content.identity } }])
      if (content.quorumMValues !== undefined && Object.keys(content.quorumMValues).length > 0) {
        await stores.meta.apply([{ op: 'put', id: META_QUORUM, value: { kind: 'quorum', mValues: content.quorumMValues } }])
      }
      if (content.clusterCertificates !== undefined) {
        const { clusterCertificate, trustAnchor } = content.clusterCertificates
        await stores.meta.apply([{ op: 'put', id: META_CLUSTER_CERTIFICATES, value: { kind: 'cluster-certificates', clusterCertificate, trustAnchor } }])
      }
      await stores.users.apply(content.users.map(value => ({ op: 'put' as const, id: String(value.userId), value })))
      if (content.keys.length > 0) {
        await stores.keys.apply(content.keys.map(value => ({ op: 'put' as const, id: String(value.handle), value })))
      }
    } finally {
      await Promise.allSettled([stores.meta.close(), stores.users.close(), stores.keys.close()])
    }
    // The storage key file goes last: its presence is what "provisioned" means.
    await writeStorageKey(staging, manufacturerKey, storageKey)
    await moveIntoPlace(staging, dataDir)
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
}

/**
 * Creates the data directory of one HSM of `cluster`: a fresh identity (an Ed25519 key pair with
 * a certificate from the cluster's trust anchor) and the users of a new cluster, written by
 * `installDataDir`. Throws `HSM_ERR_ALREADY_PROVISIONED` if the directory holds an HSM, or part
 * of one.
 */
export async function provisionHsm (opts: ProvisionOptions): Promise<ProvisionedHsm> {
  const { manufacturerKey, cluster } = opts
  const dataDir = resolve(opts.dataDir)
  const hsmId = checkResourceId('hsm', opts.hsmId ?? randomResourceId('hsm'))
  const slot = checkSlot(opts.slot)
  checkManufacturerKey(manufacturerKey)
  await checkUnprovisioned(dataDir)

  const { identity: identityKeys, certificate } = issueHsmIdentity(cluster.anchor.secretKey, { hsmId, clusterId: cluster.clusterId })
  const identity: HsmIdentity = {
    hsmId,
    clusterId: cluster.clusterId,
    lineage: cluster.lineage,
    slot,
    maskingKey: cluster.maskingKey,
    identity: identityKeys,
    certificate,
    anchorPublicKey: cluster.anchor.publicKey,
    label: opts.label ?? HSM_LABEL,
    serialNumber: newSerialNumber()
  }
  const users = await newClusterUsers(opts.passwordHashCost)
  await installDataDir(dataDir, manufacturerKey, { identity, users, keys: [] }, { syncWrites: opts.syncWrites })
  return { hsmId, clusterId: cluster.clusterId, slot, dataDir, certificate }
}

function peerListBytes (hsmId: string, peers: readonly PeerAddress[], version: number): Uint8Array {
  const list = peers.map(p => [p.hsmId, p.endpoint])
  return utf8(`hsmlab/peers/v1\0${hsmId}\0${version}\0${JSON.stringify(list)}`)
}

/**
 * The trust anchor's signature over the peer list of one HSM (`setPeers`). It names the HSM and
 * the version, so a list cannot be replayed to another HSM or to roll an HSM back.
 */
export function signPeers (anchorSecretKey: Uint8Array, hsmId: string, peers: readonly PeerAddress[], version: number): Uint8Array {
  return sign(anchorSecretKey, peerListBytes(hsmId, peers, version))
}

/** True when `signature` is the trust anchor's `signPeers` signature over exactly these arguments. */
export function verifyPeers (anchorPublicKey: Uint8Array, hsmId: string, peers: readonly PeerAddress[], version: number, signature: Uint8Array): boolean {
  return verifySignature(anchorPublicKey, peerListBytes(hsmId, peers, version), signature)
}

function backupRequestBytes (hsmId: string, requestedAtMs: number): Uint8Array {
  return utf8(`hsmlab/backup-request/v1\0${hsmId}\0${requestedAtMs}`)
}

/**
 * The trust anchor's signature that lets the holder ask HSM `hsmId` for a backup
 * (`exportBackup`) at `requestedAtMs` (milliseconds since the epoch, the signer's clock). It
 * names the HSM and the time, so it cannot be used on another HSM, nor later than
 * `hsmDefaults.backupRequestSkewMsMax` after that time.
 */
export function signBackupRequest (anchorSecretKey: Uint8Array, hsmId: string, requestedAtMs: number): Uint8Array {
  return sign(anchorSecretKey, backupRequestBytes(hsmId, requestedAtMs))
}

/** True when `signature` is the trust anchor's `signBackupRequest` signature over exactly these arguments. */
export function verifyBackupRequest (anchorPublicKey: Uint8Array, hsmId: string, requestedAtMs: number, signature: Uint8Array): boolean {
  return verifySignature(anchorPublicKey, backupRequestBytes(hsmId, requestedAtMs), signature)
}

function syncHelloBytes (hsmId: string, requestedAtMs: number): Uint8Array {
  return utf8(`hsmlab/sync-hello/v1\0${hsmId}\0${requestedAtMs}`)
}

/**
 * The trust anchor's signature that elevates a session of HSM `hsmId` to the synchronisation
 * operations (`syncHello`) at `requestedAtMs` (milliseconds since the epoch, the signer's clock).
 * Its own domain string keeps it apart from a backup request over the same HSM and time; like
 * that one it is refused more than `hsmDefaults.backupRequestSkewMsMax` from the HSM's clock.
 */
export function signSyncHello (anchorSecretKey: Uint8Array, hsmId: string, requestedAtMs: number): Uint8Array {
  return sign(anchorSecretKey, syncHelloBytes(hsmId, requestedAtMs))
}

/** True when `signature` is the trust anchor's `signSyncHello` signature over exactly these arguments. */
export function verifySyncHello (anchorPublicKey: Uint8Array, hsmId: string, requestedAtMs: number, signature: Uint8Array): boolean {
  return verifySignature(anchorPublicKey, syncHelloBytes(hsmId, requestedAtMs), signature)
}

function syncRoleBytes (hsmId: string, role: SyncRole, primaryClusterId: string | undefined, version: number): Uint8Array {
  return utf8(`hsmlab/sync-role/v1\0${hsmId}\0${role}\0${primaryClusterId ?? ''}\0${version}`)
}

/**
 * The trust anchor's signature over the synchronisation role of HSM `hsmId` (`setSyncRole`). It
 * names the HSM and the version, so a role cannot be replayed to another HSM or to roll one back.
 */
export function signSyncRole (anchorSecretKey: Uint8Array, hsmId: string, role: SyncRole, primaryClusterId: string | undefined, version: number): Uint8Array {
  return sign(anchorSecretKey, syncRoleBytes(hsmId, role, primaryClusterId, version))
}

/** True when `signature` is the trust anchor's `signSyncRole` signature over exactly these arguments. */
export function verifySyncRole (anchorPublicKey: Uint8Array, hsmId: string, role: SyncRole, primaryClusterId: string | undefined, version: number, signature: Uint8Array): boolean {
  return verifySignature(anchorPublicKey, syncRoleBytes(hsmId, role, primaryClusterId, version), signature)
}

function clusterCertificatesBytes (hsmId: string, certificates: ClusterCertificates): Uint8Array {
  return utf8(`hsmlab/cluster-certificates/v1\0${hsmId}\0${certificates.clusterCertificate}\0${certificates.trustAnchor}`)
}

/**
 * The trust anchor's signature over the cluster certificate and customer CA that HSM `hsmId`
 * is to hold (`setClusterCertificates`). It names the HSM, so it cannot be replayed to another.
 */
export function signClusterCertificates (anchorSecretKey: Uint8Array, hsmId: string, certificates: ClusterCertificates): Uint8Array {
  return sign(anchorSecretKey, clusterCertificatesBytes(hsmId, certificates))
}

/** True when `signature` is the trust anchor's `signClusterCertificates` signature over exactly these arguments. */
export function verifyClusterCertificates (anchorPublicKey: Uint8Array, hsmId: string, certificates: ClusterCertificates, signature: Uint8Array): boolean {
  return verifySignature(anchorPublicKey, clusterCertificatesBytes(hsmId, certificates), signature)
}
