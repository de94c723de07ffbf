import { SYNC_BATCH_KEYS_MAX, SYNC_BATCH_USERS_MAX, SYNC_WAIT_MS_MAX } from './defaults.js'
import type { ObjectSpec } from './schema.js'

/**
 * Every operation an HSM answers, with its argument shape (checked at run time) and its result
 * type. This file is the wire contract between the HSM, the client library and the shells.
 *
 * Users, keys and handles are the HSM's: user ids are small integers assigned per HSM in
 * creation order (admin 1, app_user 2, then 3, 4, ...); key handles are integers that are the same
 * on every HSM of a cluster.
 */

/** User types as CMU prints them. */
export type UserType = 'CO' | 'CU' | 'AU' | 'PCO' | 'PRECO'
export const USER_TYPES: readonly UserType[] = ['CO', 'CU', 'AU', 'PCO', 'PRECO']

/** One row of listUsers. */
export interface UserInfo {
  userId: number
  userType: UserType
  userName: string
  mofnPubKey: boolean
  loginFailureCount: number
  twoFactor: boolean
}

/** What getKeyInfo tells. */
export interface KeyInfo {
  handle: number
  /** Token (persistent, synchronised) or session key. */
  token: boolean
  owner: number
  /** Users the key is shared with (never for public keys). */
  sharedWith: number[]
  /** Users that must approve use of the key (quorum); 0 for none. */
  mValue: number
  /** OBJ_ATTR_CLASS: 2 public, 3 private, 4 secret. */
  keyClass: number
}

/** One attribute value: integers and booleans as numbers, labels and ids as strings, others as bytes. */
export type AttributeValue = number | string | Uint8Array

/** One attribute of a key. */
export interface KeyAttribute {
  id: number
  name: string
  value: AttributeValue
}

/** A key as findAllKeys lists it for one user. */
export interface KeyListing {
  handle: number
  relation: 'owned' | 'shared' | 'public'
}

/** A peer HSM of the same cluster. */
export interface PeerAddress {
  hsmId: string
  endpoint: string
}

/** The HSM's description of itself (getHSMInfo, info server). */
export interface HsmInfo {
  hsmId: string
  clusterId: string
  lineage: string
  label: string
  model: string
  serialNumber: string
  firmwareVersion: string
  fipsState: number
  totalTokenObjects: number
  freeTokenObjects: number
  userCount: number
  keyCount: number
  /** Who is logged in on this connection, if anyone. */
  loggedInAs?: { userName: string, userType: UserType }
  /** The HSM's synchronisation role (setSyncRole); absent while it is 'none'. */
  syncRole?: { role: SyncRole, primaryClusterId?: string }
}

/** Common key-creation options (KMU's -id, -sess, -nex, -u, -m_value, -min_srv, -timeout). */
export interface KeyCreationOptions {
  label: string
  id?: string
  /** A session key lives on this HSM only and dies with the session. */
  session?: boolean
  /** OBJ_ATTR_EXTRACTABLE; default 1. */
  extractable?: boolean
  /** Users to share the key with. */
  shareWith?: number[]
  mValue?: number
  /** HSMs (this one included) the key must reach before the call returns. @default 1 */
  minServers?: number
  /** How long to wait for minServers, in milliseconds. */
  timeoutMs?: number
  /** Usage attributes (OBJ_ATTR_ENCRYPT ... DERIVE, TRUSTED, DESTROYABLE) to set to 1 / 0 instead of the defaults (PKCS#11 templates); of a pair, the private half's. */
  usageOn?: number[]
  usageOff?: number[]
}

/** A quorum service (setMValue, getToken): 3 USER_MGMT (user management), 4 MISC_CO (setMValue itself). */
export type QuorumService = 3 | 4
export const QUORUM_SERVICES: readonly QuorumService[] = [3, 4]

/** A quorum token as getToken and listTokens tell it (reference: quorum-authentication-crypto-officers.md). */
export interface QuorumTokenInfo {
  /** Per HSM, from 1. */
  id: number
  service: number
  /** The HSM's node number (its slot in the cluster). */
  node: number
  /** 0: the token is not for a key. */
  keyHandle: number
  userName: string
  /** Seconds the token is still guaranteed to exist (0 once expired). */
  validitySec: number
  /** The M value of the service when the token was made. */
  required: number
  /** Names of the users whose signatures were accepted. */
  approvers: string[]
}

/** One approval of approveToken: the approver and its signature over the token file. */
export interface QuorumApproval {
  /** 2 for CO, 1 for CU (the approval file's `Approver Type`). */
  approverType: number
  approverName: string
  signature: Uint8Array
}

/** The second factor of loginHSM, createUser and changePswd `-2fa`: a signature over this HSM's challenge (getChallenge). */
export interface TwoFactorResponse {
  /** RSA PKCS#1 v1.5 SHA-256 signature of the challenge digest's bytes. */
  signature: Uint8Array
  /** The PEM public key to register (createUser, changePswd); absent at login. */
  publicKeyPem?: string
}

/**
 * The synchronisation role of an HSM (setSyncRole): 'replica' while its cluster is a replica of a
 * primary cluster's synchronisation task, 'disassociated' for good once it was removed from the
 * task. In both it refuses every client change to keys and users.
 */
export type SyncRole = 'none' | 'replica' | 'disassociated'
export const SYNC_ROLES: readonly SyncRole[] = ['none', 'replica', 'disassociated']

/**
 * One resource as syncChanges tells it. `digest` is hex SHA-256 over a canonical encoding of the
 * resource (equal on two HSMs exactly when the resource is the same there); null: deleted. Keys
 * carry their owner's user *name*, since user ids differ between clusters.
 */
export type SyncResource =
  | { kind: 'key', handle: number, owner: string, digest: string | null }
  | { kind: 'user', name: string, userType: UserType, digest: string | null }

/** One resource as syncExtract gives it: a masked object (ExtractMaskedObject blob) and its digest. */
export interface SyncExtractedObject {
  kind: 'key' | 'user'
  handle?: number
  name?: string
  digest: string
  blob: Uint8Array
}

/**
 * What syncApply did with one object or deletion. `code` (when `ok` is false) is one of
 * HANDLE_TAKEN, OWNER_MISSING, LINEAGE_REFUSED, STORAGE_REFUSED, NOT_A_REPLICA (and INVALID for
 * a blob that is not a masked object of a key or user); `digest` is the resource's digest on this
 * HSM after an applied insert.
 */
export interface SyncOutcome {
  kind: 'key' | 'user'
  handle?: number
  name?: string
  ok: boolean
  digest?: string
  code?: string
  message?: string
}
/** Parameters of a PKCS#11 mechanism (CK_GCM_PARAMS, CK_RSA_PKCS_OAEP_PARAMS, CK_RSA_PKCS_PSS_PARAMS, an IV). */
export interface MechanismParams {
  /** CBC, CTR (the counter block) and GCM IV. */
  iv?: Uint8Array
  /** GCM additional authenticated data. */
  aad?: Uint8Array
  /** GCM tag length in bits. @default 128 */
  tagBits?: number
  /** OAEP and PSS: the CKM_SHA* of the hash (MGF1 uses the same). */
  hashMechanism?: number
  /** PSS salt length in bytes. */
  saltBytes?: number
  /** OAEP label (CKZ_DATA_SPECIFIED source data). */
  label?: Uint8Array
}

/** One PKCS#11 mechanism applied with a key to data. */
export type MechanismCall = MechanismParams & { handle: number, mechanism: number, data: Uint8Array }

/** Argument and result types of each operation. */
export interface OperationMap {
  login: { args: { userType: UserType, userName: string, password: string, twoFactor?: TwoFactorResponse }, result: { userId: number, userType: UserType } }
  logout: { args: Record<string, never>, result: Record<string, never> }
  listUsers: { args: Record<string, never>, result: { users: UserInfo[] } }
  createUser: { args: { userType: UserType, userName: string, password: string, twoFactor?: TwoFactorResponse }, result: { userId: number } }
  deleteUser: { args: { userType: UserType, userName: string }, result: Record<string, never> }
  changePassword: { args: { userType: UserType, userName: string, password: string, twoFactor?: TwoFactorResponse }, result: { userType: UserType } }
  /** A fresh 32-byte digest for this session to sign (-2fa); the next login, createUser or changePassword with `twoFactor` uses it up. */
  getChallenge: { args: Record<string, never>, result: { digest: Uint8Array } }

  /** Quorum (M of N): a CO registers its own RSA-2048 public key, proving it holds the private key by `signature` over `token`. */
  registerQuorumPubKey: { args: { userType: UserType, userName: string, token: Uint8Array, signature: Uint8Array, publicKeyPem: string }, result: Record<string, never> }
  getQuorumToken: { args: { service: number, userName: string }, result: { token: QuorumTokenInfo, line: string } }
  /** `tokenFile`: the whole file getToken wrote (every HSM's token), which the approvers signed. */
  approveQuorumToken: { args: { tokenFile: Uint8Array, approvals: QuorumApproval[] }, result: { token: QuorumTokenInfo } }
  listQuorumTokens: { args: Record<string, never>, result: { tokens: QuorumTokenInfo[] } }
  getMValue: { args: { service: number }, result: { mValue: number } }
  setMValue: { args: { service: number, mValue: number }, result: Record<string, never> }
  getHsmInfo: { args: Record<string, never>, result: HsmInfo }
  getCertificate: { args: { certType: number }, result: { pem: string } }

  findAllKeys: { args: { userId: number, withHash: boolean }, result: { keys: KeyListing[], hash?: string } }
  getKeyInfo: { args: { handle: number }, result: KeyInfo }
  getAttribute: { args: { handle: number, attribute: number }, result: { attributes: KeyAttribute[] } }
  setAttribute: { args: { handle: number, attribute: number, value: number | string }, result: Record<string, never> }
  shareKey: { args: { handle: number, userId: number, share: boolean }, result: Record<string, never> }
  generateSymmetricKey: { args: KeyCreationOptions & { keyType: number, sizeBytes: number }, result: { handle: number } }
  generateKeyPair: {
    args: KeyCreationOptions & { algorithm: 'RSA' | 'EC', modulusBits?: number, publicExponent?: number, curveId?: number, publicUsageOn?: number[], publicUsageOff?: number[] },
    result: { publicHandle: number, privateHandle: number }
  }
  findKey: {
    args: { keyClass?: number, keyType?: number, label?: string, id?: string, session?: boolean, kcv?: string },
    result: { handles: number[], total: number }
  }
  deleteKey: { args: { handle: number }, result: Record<string, never> }
  /**
   * `noHeader`: the wrapped bytes alone (KMU exSymKey unwraps them again, on the HSM or on the host
   * with -wk), not wrapKey's file with its attribute header; `keyClass`: wrap only a key of this
   * class (exSymKey exports secret keys only), RET_INVALID_INPUT otherwise.
   */
  wrapKey: { args: { handle: number, wrappingHandle: number, mechanism: number, noHeader?: boolean, keyClass?: number }, result: { wrapped: Uint8Array } }
  unwrapKey: {
    args: {
      wrapped: Uint8Array, wrappingHandle: number, mechanism: number, label?: string, session?: boolean, extractable?: boolean, shareWith?: number[], keyClass?: number, keyType?: number,
      /** KMU unWrapKey's -id, -m_value, -min_srv and -timeout, as in KeyCreationOptions. */
      id?: string, mValue?: number, minServers?: number, timeoutMs?: number,
      /** Usage attributes as in KeyCreationOptions, over the defaults and the header's (PKCS#11 C_CreateObject's template). */
      usageOn?: number[], usageOff?: number[]
    },
    result: { handle: number }
  }
  exportPrivateKey: { args: { handle: number, wrappingHandle: number }, result: { pem: string } }
  /** KMU exportPubKey: the SPKI PEM of a public key. */
  exportPublicKey: { args: { handle: number }, result: { pem: string } }
  /** KMU aesWrapUnwrap: RFC 3394 AES key wrap (or unwrap) of host data under an HSM AES key; `iv` 8 bytes, default A6A6A6A6A6A6A6A6. */
  aesWrapData: {
    args: {
      wrappingHandle: number, unwrap: boolean, data: Uint8Array, iv?: Uint8Array,
      /**
       * The key-wrap form of wrapKey -m 4 instead (RFC 3394, or RFC 5649 for data that is not a
       * multiple of 8 bytes, as a private key's DER): KMU's Cfm3WrapHostKey / Cfm3UnWrapHostKey of
       * exSymKey, imSymKey and importPrivateKey, whose results unwrapKey -m 4 takes. No `iv` with it.
       */
      keyWrap?: boolean
    },
    result: { data: Uint8Array }
  }
  /** KMU importPubKey (Cfm3CreatePublicKey): a public key from its SPKI DER (RSA or EC), owned by the caller. */
  importPublicKey: { args: KeyCreationOptions & { spki: Uint8Array }, result: { handle: number } }
  /**
   * KMU findSingleKey: the digest of a key this CU may use on this HSM (the hash findAllKeys
   * shows a CO), so that the client can compare it across the cluster's HSMs.
   */
  keyDigest: { args: { handle: number }, result: { hash: string } }
  sign: { args: { handle: number, mechanism: number, data: Uint8Array }, result: { signature: Uint8Array } }
  verify: { args: { handle: number, mechanism: number, data: Uint8Array, signature: Uint8Array }, result: Record<string, never> }
  /**
   * PKCS#11 crypto (the client daemon's, issue 16): `mechanism` is a CKM_* number, its parameters
   * in `MechanismParams`. Sign and verify take secret keys for HMAC, private / public keys otherwise.
   */
  p11Encrypt: { args: MechanismCall, result: { data: Uint8Array } }
  p11Decrypt: { args: MechanismCall, result: { data: Uint8Array } }
  p11Sign: { args: MechanismCall, result: { signature: Uint8Array } }
  p11Verify: { args: MechanismCall & { signature: Uint8Array }, result: Record<string, never> }
  /** Random bytes from the HSM; needs no login (PKCS#11 C_GenerateRandom works in a public session). */
  generateRandom: { args: { bytes: number }, result: { data: Uint8Array } }

  extractMaskedObject: { args: { kind: 'key' | 'user', handle?: number, userId?: number }, result: { blob: Uint8Array } }
  /** `sameHandle`: keep the key's handle (syncKey); otherwise a new handle (KMU insertMaskedObject). */
  insertMaskedObject: { args: { blob: Uint8Array, sameHandle?: boolean, minServers?: number, timeoutMs?: number }, result: { kind: 'key' | 'user', handle?: number, userId?: number } }

  /** Peer (HSM↔HSM) operations: only after `peerHello` proved the caller is an HSM of the cluster. */
  peerHello: { args: { certificate: Record<string, unknown>, signature: Uint8Array }, result: { hsmId: string } }
  /**
   * What the HSM holds. With `unlessSummary` equal to its own inventory summary (the peer holds
   * the same handles, live and deleted), it answers `same: true` and empty lists instead.
   */
  peerInventory: { args: { unlessSummary?: string }, result: { keys: Array<[number, string]>, deleted: number[], same?: boolean } }
  peerFetch: { args: { handle: number }, result: { blob: Uint8Array } }
  peerPush: { args: { blob: Uint8Array }, result: Record<string, never> }
  peerDelete: { args: { handle: number }, result: Record<string, never> }
  /**
   * What syncApply applied on a replica HSM, passed on to the other HSMs of its cluster: users and
   * changed keys (masked objects, inserted or replaced the way syncApply does) and deleted users,
   * which the key replication of peerPush and peerDelete does not carry.
   */
  peerSyncApply: { args: { objects: Uint8Array[], deleteUsers: string[] }, result: Record<string, never> }

  /** Admin: the lab (holder of the cluster's trust anchor) tells an HSM who its peers are. */
  setPeers: { args: { peers: PeerAddress[], version: number, signature: Uint8Array }, result: Record<string, never> }
  /**
   * Admin: the control plane (holder of the cluster's trust anchor) gives an HSM the cluster
   * certificate and customer CA of InitializeCluster (SignedCert, TrustAnchor, PEM), which getCert
   * 8 and 4 then answer; `signature` is the anchor's over this HSM's id and both certificates.
   */
  setClusterCertificates: { args: { clusterCertificate: string, trustAnchor: string, signature: Uint8Array }, result: Record<string, never> }
  /**
   * Admin: the control plane (holder of the cluster's trust anchor) asks for a backup of this
   * HSM. `signature` is the anchor's signature over this HSM's id and `requestedAtMs` (the
   * requester's clock, in milliseconds since the epoch), which must be within 5 minutes of the
   * HSM's clock. The backup is opaque: sealed under a key only HSMs of the same manufacturer key
   * hold; its clear header tells the cluster, lineage, source HSM, time and counts.
   */
  exportBackup: {
    args: { requestedAtMs: number, signature: Uint8Array },
    result: { backup: Uint8Array, createdAtMs: number, keyCount: number, userCount: number }
  }

  /**
   * Synchronisation (the control plane's cross-region tasks). Every sync* operation but
   * syncHello needs a session elevated by syncHello: the trust anchor's signature over this HSM's
   * id and `requestedAtMs`, checked like exportBackup's (`signSyncHello`).
   */
  syncHello: { args: { requestedAtMs: number, signature: Uint8Array }, result: { hsmId: string, clusterId: string, lineage: string } }
  /**
   * Resources changed after `sinceSeq` of change sequence `epoch` (`full: false`), or every live
   * token key and every user (`full: true`) when `epoch` is absent or unknown or `sinceSeq` fell
   * out of the window. With nothing changed it waits up to `waitMs` for a change. A full answer
   * also lists `deletedKeys`, the handles this HSM holds tombstones of: a key absent from a full
   * answer and not deleted there is one this HSM has not heard of (yet), not one the cluster
   * deleted. In a partial answer a key with digest null was deleted (tombstoned) here. Likewise
   * `deletedUsers`: the names of users deleteUser deleted on this HSM (and not made again); users
   * are not replicated inside a cluster, so a user absent from a full answer and not listed there
   * may be one this HSM never received. In a partial answer a user with digest null was deleted here.
   */
  syncChanges: { args: { epoch?: string, sinceSeq?: number, waitMs?: number }, result: { epoch: string, seq: number, full: boolean, resources: SyncResource[], deletedKeys?: number[], deletedUsers?: string[] } }
  /** Masked objects of these keys (by handle) and users (by name); absent ones are left out. */
  syncExtract: { args: { keys: number[], users: string[] }, result: { objects: SyncExtractedObject[] } }
  /** Inserts or replaces each object and applies each deletion, one outcome each (only for role 'replica'). */
  syncApply: { args: { objects: Uint8Array[], deleteKeys: number[], deleteUsers: string[] }, result: { outcomes: SyncOutcome[] } }
  /** Admin: the trust anchor sets the HSM's durable synchronisation role (`signSyncRole`); versions only grow. */
  setSyncRole: { args: { role: SyncRole, primaryClusterId?: string, version: number, signature: Uint8Array }, result: Record<string, never> }
}

/** The name of an operation. */
export type OperationName = keyof OperationMap
export type OperationArgs<O extends OperationName> = OperationMap[O]['args']
export type OperationResult<O extends OperationName> = OperationMap[O]['result']

const userType = { type: 'string', oneOf: USER_TYPES } as const
const userName = { type: 'string', min: 1, max: 64 } as const
const password = { type: 'string', min: 0, max: 256 } as const
const handle = { type: 'int', min: 0 } as const
const twoFactor = { type: 'object', optional: true } as const
const quorumService = { type: 'int', oneOf: QUORUM_SERVICES } as const
const creation = {
  label: { type: 'string', max: 127 },
  id: { type: 'string', optional: true, max: 127 },
  session: { type: 'bool', optional: true },
  extractable: { type: 'bool', optional: true },
  shareWith: { type: 'int[]', optional: true, max: 1024 },
  mValue: { type: 'int', optional: true, min: 0, max: 8 },
  minServers: { type: 'int', optional: true, min: 1, max: 28 },
  timeoutMs: { type: 'int', optional: true, min: 0, max: 600_000 },
  usageOn: { type: 'int[]', optional: true, max: 16 },
  usageOff: { type: 'int[]', optional: true, max: 16 }
} as const

const mechanismCall = {
  handle,
  mechanism: { type: 'int', min: 0 },
  data: { type: 'bytes', max: 16 * 1024 * 1024 },
  iv: { type: 'bytes', optional: true, max: 256 },
  aad: { type: 'bytes', optional: true, max: 1024 * 1024 },
  tagBits: { type: 'int', optional: true, oneOf: [32, 64, 96, 104, 112, 120, 128] },
  hashMechanism: { type: 'int', optional: true, min: 0 },
  saltBytes: { type: 'int', optional: true, min: 0, max: 512 },
  label: { type: 'bytes', optional: true, max: 1024 }
} as const

/** The argument shape of every operation. */
export const OPERATION_SPECS: { readonly [O in OperationName]: ObjectSpec } = {
  login: { userType, userName, password, twoFactor },
  logout: {},
  listUsers: {},
  createUser: { userType, userName, password, twoFactor },
  deleteUser: { userType, userName },
  changePassword: { userType, userName, password, twoFactor },
  getChallenge: {},
  registerQuorumPubKey: { userType, userName, token: { type: 'bytes', min: 1, max: 245 }, signature: { type: 'bytes', max: 1024 }, publicKeyPem: { type: 'string', max: 4096 } },
  getQuorumToken: { service: quorumService, userName },
  approveQuorumToken: { tokenFile: { type: 'bytes', max: 64 * 1024 }, approvals: { type: 'object[]', min: 1, max: 8 } },
  listQuorumTokens: {},
  getMValue: { service: quorumService },
  setMValue: { service: quorumService, mValue: { type: 'int', min: 1, max: 8 } },
  getHsmInfo: {},
  getCertificate: { certType: { type: 'int', oneOf: [1, 2, 4, 8, 16, 32, 64] } },

  findAllKeys: { userId: { type: 'int', min: 0 }, withHash: { type: 'bool' } },
  getKeyInfo: { handle },
  getAttribute: { handle, attribute: { type: 'int', min: 0 } },
  setAttribute: { handle, attribute: { type: 'int', min: 0 }, value: { type: 'int|string' } },
  shareKey: { handle, userId: { type: 'int', min: 0 }, share: { type: 'bool' } },
  generateSymmetricKey: { ...creation, keyType: { type: 'int' }, sizeBytes: { type: 'int', min: 1, max: 3584 } },
  generateKeyPair: {
    ...creation,
    algorithm: { type: 'string', oneOf: ['RSA', 'EC'] },
    modulusBits: { type: 'int', optional: true },
    publicExponent: { type: 'int', optional: true },
    curveId: { type: 'int', optional: true },
    publicUsageOn: creation.usageOn,
    publicUsageOff: creation.usageOff
  },
  findKey: {
    keyClass: { type: 'int', optional: true },
    keyType: { type: 'int', optional: true },
    label: { type: 'string', optional: true },
    id: { type: 'string', optional: true },
    session: { type: 'bool', optional: true },
    kcv: { type: 'string', optional: true }
  },
  deleteKey: { handle },
  wrapKey: { handle, wrappingHandle: handle, mechanism: { type: 'int' }, noHeader: { type: 'bool', optional: true }, keyClass: { type: 'int', optional: true } },
  unwrapKey: {
    wrapped: { type: 'bytes', max: 65536 },
    wrappingHandle: handle,
    mechanism: { type: 'int' },
    label: { type: 'string', optional: true, max: 127 },
    session: { type: 'bool', optional: true },
    extractable: { type: 'bool', optional: true },
    shareWith: { type: 'int[]', optional: true, max: 1024 },
    keyClass: { type: 'int', optional: true },
    keyType: { type: 'int', optional: true },
    id: creation.id,
    mValue: creation.mValue,
    minServers: creation.minServers,
    timeoutMs: creation.timeoutMs,
    usageOn: creation.usageOn,
    usageOff: creation.usageOff
  },
  exportPrivateKey: { handle, wrappingHandle: handle },
  exportPublicKey: { handle },
  aesWrapData: { wrappingHandle: handle, unwrap: { type: 'bool' }, data: { type: 'bytes', max: 1024 * 1024 }, iv: { type: 'bytes', optional: true, max: 8 }, keyWrap: { type: 'bool', optional: true } },
  importPublicKey: { ...creation, spki: { type: 'bytes', max: 16384 } },
  keyDigest: { handle },
  sign: { handle, mechanism: { type: 'int' }, data: { type: 'bytes', max: 16 * 1024 * 1024 } },
  verify: { handle, mechanism: { type: 'int' }, data: { type: 'bytes', max: 16 * 1024 * 1024 }, signature: { type: 'bytes', max: 8192 } },
  p11Encrypt: mechanismCall,
  p11Decrypt: mechanismCall,
  p11Sign: mechanismCall,
  p11Verify: { ...mechanismCall, signature: { type: 'bytes', max: 8192 } },
  generateRandom: { bytes: { type: 'int', min: 0, max: 1024 * 1024 } },

  extractMaskedObject: { kind: { type: 'string', oneOf: ['key', 'user'] }, handle: { ...handle, optional: true }, userId: { type: 'int', optional: true, min: 0 } },
  insertMaskedObject: {
    blob: { type: 'bytes', max: 1024 * 1024 },
    sameHandle: { type: 'bool', optional: true },
    minServers: creation.minServers,
    timeoutMs: creation.timeoutMs
  },

  peerHello: { certificate: { type: 'object' }, signature: { type: 'bytes' } },
  peerInventory: { unlessSummary: { type: 'string', optional: true, max: 64 } },
  peerFetch: { handle },
  peerPush: { blob: { type: 'bytes', max: 1024 * 1024 } },
  peerDelete: { handle },
  peerSyncApply: { objects: { type: 'bytes[]', max: SYNC_BATCH_KEYS_MAX + SYNC_BATCH_USERS_MAX }, deleteUsers: { type: 'string[]', max: SYNC_BATCH_USERS_MAX } },

  setPeers: { peers: { type: 'object[]', max: 28 }, version: { type: 'int', min: 0 }, signature: { type: 'bytes' } },
  // 20000 characters: the most cloudhsmv2's Cert shape allows.
  setClusterCertificates: { clusterCertificate: { type: 'string', min: 1, max: 20_000 }, trustAnchor: { type: 'string', min: 1, max: 20_000 }, signature: { type: 'bytes', max: 1024 } },
  exportBackup: { requestedAtMs: { type: 'int', min: 0 }, signature: { type: 'bytes', max: 1024 } },

  syncHello: { requestedAtMs: { type: 'int', min: 0 }, signature: { type: 'bytes', max: 1024 } },
  syncChanges: {
    epoch: { type: 'string', optional: true, max: 64 },
    sinceSeq: { type: 'int', optional: true, min: 0 },
    waitMs: { type: 'int', optional: true, min: 0, max: SYNC_WAIT_MS_MAX }
  },
  syncExtract: { keys: { type: 'int[]', max: SYNC_BATCH_KEYS_MAX }, users: { type: 'string[]', max: SYNC_BATCH_USERS_MAX } },
  syncApply: {
    objects: { type: 'bytes[]', max: SYNC_BATCH_KEYS_MAX + SYNC_BATCH_USERS_MAX },
    deleteKeys: { type: 'int[]', max: SYNC_BATCH_KEYS_MAX },
    deleteUsers: { type: 'string[]', max: SYNC_BATCH_USERS_MAX }
  },
  setSyncRole: {
    role: { type: 'string', oneOf: SYNC_ROLES },
    primaryClusterId: { type: 'string', optional: true, min: 1, max: 64 },
    version: { type: 'int', min: 0 },
    signature: { type: 'bytes', max: 1024 }
  }
}

/** True when `name` is an operation the protocol knows. */
export function isOperationName (name: unknown): name is OperationName {
  return typeof name === 'string' && Object.hasOwn(OPERATION_SPECS, name)
}
