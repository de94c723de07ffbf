/**
 * Making HSMs: the secrets of a new cluster, the per-installation manufacturer key, and the data
 * directory of one HSM as the factory (and cluster initialisation) leave it. The lab calls these
 * in process, then starts `hsmlab-hsm` on the directory.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import {
  SECRET_KEY_BYTES, generateSecretKey, generateSigningKeyPair, hashPassword, issueCertificate, randomBytes,
  sign, utf8, verifySignature
} from '@hsmlab/crypto'
import type { HsmCertificate, SigningKeyPair } from '@hsmlab/crypto'
import type { PeerAddress } from '@hsmlab/protocol'
import type { HsmIdentity, UserRecord } from './context.js'
import { META_IDENTITY, hasStorageKey, openDataStores, storeFilesIn, writeStorageKey } from './data-dir.js'
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

/** Fresh secrets for a new cluster; `clusterId` defaults to a random `cluster-xxxxxxxxxxx`. */
export function createClusterSecrets (opts: { clusterId?: string } = {}): ClusterSecrets {
  const clusterId = opts.clusterId ?? randomResourceId('cluster')
  if (!isResourceId('cluster', clusterId)) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `'${clusterId}' is not a cluster id (cluster- followed by 11 to 16 characters of [2-7a-zA-Z])`)
  }
  return { clusterId, lineage: `lineage-${randomBase32(16)}`, maskingKey: generateSecretKey(), anchor: generateSigningKeyPair() }
}

/** A fresh manufacturer key (one per installation; it seals every HSM's storage key and backups). */
export function createManufacturerKey (): Uint8Array {
  return generateSecretKey()
}

const MANUFACTURER_BEGIN = '-----BEGIN HSMLAB MANUFACTURER KEY-----'
const MANUFACTURER_END = '-----END HSMLAB MANUFACTURER KEY-----'

/** Writes a manufacturer key file (mode 0600), the file `hsmlab-hsm --manufacturer-key-file` reads. */
export async function writeManufacturerKey (file: string, key: Uint8Array): Promise<void> {
  if (key.length !== SECRET_KEY_BYTES) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `a manufacturer key is ${SECRET_KEY_BYTES} bytes, this one has ${key.length}`)
  }
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
  return [
    { userId: 1, userType: 'PRECO', userName: DEFAULT_ADMIN_NAME, password: await hashPassword(DEFAULT_ADMIN_PASSWORD, passwordHashCost), ...base },
    { userId: 2, userType: 'AU', userName: APPLIANCE_USER_NAME, password: await hashPassword(unknownPassword, passwordHashCost), ...base }
  ]
}

/**
 * Creates the data directory of one HSM: a fresh storage key sealed under the manufacturer key,
 * the HSM's identity (a fresh Ed25519 key pair with a certificate from the cluster's trust anchor),
 * and the users of a new cluster. Throws `HSM_ERR_ALREADY_PROVISIONED` if the directory holds an
 * HSM, or part of one.
 */
export async function provisionHsm (opts: ProvisionOptions): Promise<ProvisionedHsm> {
  const { manufacturerKey, cluster } = opts
  const dataDir = resolve(opts.dataDir)
  const hsmId = opts.hsmId ?? randomResourceId('hsm')
  if (!isResourceId('hsm', hsmId)) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `'${hsmId}' is not an HSM id (hsm- followed by 11 to 16 characters of [2-7a-zA-Z])`)
  }
  if (!Number.isSafeInteger(opts.slot) || opts.slot < 0 || opts.slot >= hsmDefaults.slotsMax) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `slot ${opts.slot} is out of range: a slot is an integer from 0 to ${hsmDefaults.slotsMax - 1}`)
  }
  if (manufacturerKey.length !== SECRET_KEY_BYTES) {
    throw new HsmError(HSM_ERR_INVALID_ARGUMENT, `a manufacturer key is ${SECRET_KEY_BYTES} bytes, this one has ${manufacturerKey.length}`)
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  if (await hasStorageKey(dataDir)) {
    throw new HsmError(HSM_ERR_ALREADY_PROVISIONED, `${dataDir} already holds a provisioned HSM; use another directory, or remove this one to start over`)
  }
  const leftovers = await storeFilesIn(dataDir)
  if (leftovers.length > 0) {
    throw new HsmError(HSM_ERR_ALREADY_PROVISIONED, `${dataDir} holds store files (${leftovers.join(', ')}) but no storage key: an earlier provisioning did not finish; remove the directory and provision again`)
  }

  const identityKeys = generateSigningKeyPair()
  const certificate = issueCertificate(cluster.anchor.secretKey, { hsmId, clusterId: cluster.clusterId, publicKey: identityKeys.publicKey })
  const identity: HsmIdentity = {
    hsmId,
    clusterId: cluster.clusterId,
    lineage: cluster.lineage,
    slot: opts.slot,
    maskingKey: cluster.maskingKey,
    identity: identityKeys,
    certificate,
    anchorPublicKey: cluster.anchor.publicKey,
    label: opts.label ?? HSM_LABEL,
    serialNumber: `${SERIAL_PREFIX}${String(randomBytes(4).reduce((n, b) => n * 256 + b, 0) % 1_000_000).padStart(6, '0')}`
  }
  const users = await newClusterUsers(opts.passwordHashCost)

  // The storage key file goes last: its presence is what "provisioned" means.
  const storageKey = generateSecretKey()
  const stores = await openDataStores(dataDir, storageKey, { syncWrites: opts.syncWrites })
  try {
    await stores.meta.apply([{ op: 'put', id: META_IDENTITY, value: { kind: 'identity', identity } }])
    await stores.users.apply(users.map(value => ({ op: 'put' as const, id: String(value.userId), value })))
  } finally {
    await Promise.allSettled([stores.meta.close(), stores.users.close(), stores.keys.close()])
  }
  await writeStorageKey(dataDir, manufacturerKey, storageKey)
  return { hsmId, clusterId: cluster.clusterId, slot: opts.slot, dataDir, certificate }
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
