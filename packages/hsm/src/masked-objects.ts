/**
 * Masked objects (reference G.2): one key or one user sealed under the cluster masking key, so
 * that it can move to another HSM of this cluster or of a clone. The masked-object handlers
 * (extract / insert), the peer handlers and replication seal and open them here; backups read
 * the same key and user records (`readKeyRecord`, `readUserRecord`).
 *
 * Payloads (MessagePack, inside the masked object, never in clear):
 * - a key: `{ format: 'hsmlab/masked-key/v1', record: KeyRecord, users: [{ userId, userName }] }`
 *   — the whole record (material, attributes, owner, shares, quorum value) and the names of its
 *   owner and shared users on the source HSM, so the destination can check that they are the
 *   same people ("both clusters must have consistent CO and CU credentials");
 * - a user: `{ format: 'hsmlab/masked-user/v1', user: UserRecord }` — with the password verifier
 *   (salted scrypt), never a clear password, and the user's quorum/2FA public key when it has one
 *   (syncUser must carry it: without it the destination shows `MofnPubKey YES` but can check
 *   neither approvals nor a second factor of that user).
 */
import { CryptoError, CRYPTO_ERR_LINEAGE, maskObject, unmaskObject } from '@hsmlab/crypto'
import type { MaskedObjectHeader } from '@hsmlab/crypto'
import { KeyClass, ReturnCode, USER_TYPES, WireError, decode, encode } from '@hsmlab/protocol'
import type { AttributeValue, UserType } from '@hsmlab/protocol'
import type { HsmContext, KeyRecord, UserRecord } from './context.js'
import { findUserById } from './context.js'

const KEY_FORMAT = 'hsmlab/masked-key/v1'
const USER_FORMAT = 'hsmlab/masked-user/v1'

/** A user as a masked key names it. */
export interface NamedUser {
  userId: number
  userName: string
}

/** What a masked key holds. */
export interface MaskedKey {
  record: KeyRecord
  users: NamedUser[]
}

function invalid (detail: string, cause?: unknown): WireError {
  return new WireError(ReturnCode.MASKED_OBJECT_INVALID, detail, cause === undefined ? undefined : { cause })
}

function plainRecord (record: KeyRecord): KeyRecord {
  // A fresh object without undefined fields: MessagePack would write them as nil. The attributes
  // map is the record's own, not a copy: encoding only reads it, and copying a map whose ids are
  // sparse indexes (0 to 528) costs about 6 KiB a key.
  const plain: KeyRecord = {
    handle: record.handle,
    keyClass: record.keyClass,
    keyType: record.keyType,
    owner: record.owner,
    sharedWith: record.sharedWith,
    mValue: record.mValue,
    attributes: record.attributes,
    material: record.material
  }
  if (record.pairHandle !== undefined) plain.pairHandle = record.pairHandle
  return plain
}

/**
 * Seals a key, with the names of its owner and shared users as this HSM knows them, under the
 * cluster masking key.
 */
export function maskKey (ctx: HsmContext, record: KeyRecord): Uint8Array {
  const users: NamedUser[] = []
  for (const userId of [record.owner, ...record.sharedWith]) {
    const user = findUserById(ctx, userId)
    if (user !== undefined) users.push({ userId, userName: user.userName })
  }
  const header: MaskedObjectHeader = { kind: 'key', name: `key ${record.handle}`, lineage: ctx.identity.lineage }
  return maskObject(ctx.identity.maskingKey, header, encode({ format: KEY_FORMAT, record: plainRecord(record), users }))
}

/** Seals a user (with its password verifier) under the cluster masking key. */
export function maskUser (ctx: HsmContext, user: UserRecord): Uint8Array {
  const header: MaskedObjectHeader = { kind: 'user', name: `user ${user.userName}`, lineage: ctx.identity.lineage }
  const plain: UserRecord = {
    userId: user.userId,
    userType: user.userType,
    userName: user.userName,
    password: { algorithm: user.password.algorithm, salt: user.password.salt, hash: user.password.hash, cost: user.password.cost },
    loginFailureCount: user.loginFailureCount,
    mofnPubKey: user.mofnPubKey,
    twoFactor: user.twoFactor
  }
  if (user.publicKeyPem !== undefined) plain.publicKeyPem = user.publicKeyPem
  return maskObject(ctx.identity.maskingKey, header, encode({ format: USER_FORMAT, user: plain }))
}

/**
 * Opens a masked object of this HSM's lineage: RET_MASKED_OBJECT_LINEAGE for another lineage,
 * RET_MASKED_OBJECT_INVALID when it was changed or is not a masked object.
 */
export function openMasked (ctx: HsmContext, blob: Uint8Array): { kind: 'key' | 'user', payload: Record<string, unknown> } {
  let opened: { header: MaskedObjectHeader, payload: Uint8Array }
  try {
    opened = unmaskObject(ctx.identity.maskingKey, ctx.identity.lineage, blob)
  } catch (err) {
    if (err instanceof CryptoError && err.code === CRYPTO_ERR_LINEAGE) {
      throw new WireError(ReturnCode.MASKED_OBJECT_LINEAGE, err.message, { cause: err })
    }
    throw invalid((err as Error).message, err)
  }
  let payload: unknown
  try {
    payload = decode(opened.payload)
  } catch (err) {
    throw invalid('the masked object holds no readable payload', err)
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw invalid('the masked object payload is not a map')
  const map = payload as Record<string, unknown>
  const format = opened.header.kind === 'key' ? KEY_FORMAT : USER_FORMAT
  if (map.format !== format) throw invalid(`the masked object payload is not in format ${format}`)
  return { kind: opened.header.kind, payload: map }
}

function isInt (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v)
}

function bytes (v: unknown): Uint8Array | undefined {
  return v instanceof Uint8Array ? new Uint8Array(v) : undefined
}

/** Makes the error a malformed record fails with, from a sentence saying what is wrong. */
export type RecordFault = (detail: string) => Error

const maskedFault = (what: string): RecordFault => detail => invalid(`the masked ${what} ${detail}`)

/**
 * A key record from freshly decoded MessagePack (masked objects and backups both carry records),
 * shape checked, byte arrays copied to plain Uint8Arrays. The decoded attributes map becomes the
 * record's, its byte values replaced by their copies: a second map would cost about 6 KiB a key
 * (attribute ids are sparse indexes, 0 to 528), and decoding left it to no one else.
 */
export function readKeyRecord (value: unknown, fault: RecordFault = maskedFault('key')): KeyRecord {
  if (typeof value !== 'object' || value === null) throw fault('holds no key record')
  const v = value as Record<string, unknown>
  const material = bytes(v.material)
  if (!isInt(v.handle) || v.handle < 0 || !isInt(v.keyClass) || !isInt(v.keyType) || !isInt(v.owner) || !isInt(v.mValue) ||
      !Array.isArray(v.sharedWith) || !v.sharedWith.every(isInt) || material === undefined ||
      typeof v.attributes !== 'object' || v.attributes === null || Array.isArray(v.attributes) || v.attributes instanceof Uint8Array ||
      (v.pairHandle !== undefined && v.pairHandle !== null && !isInt(v.pairHandle))) {
    throw fault('holds a malformed key record')
  }
  if (v.keyClass !== KeyClass.PUBLIC && v.keyClass !== KeyClass.PRIVATE && v.keyClass !== KeyClass.SECRET) {
    throw fault(`has a key of an unknown class ${v.keyClass}`)
  }
  const attributes = v.attributes as Record<string, unknown>
  for (const id of Object.keys(attributes)) {
    if (!Number.isSafeInteger(Number(id))) throw fault(`has a key with a malformed attribute id ${id}`)
    const raw = attributes[id]
    if (raw instanceof Uint8Array) attributes[id] = new Uint8Array(raw)
    else if (typeof raw !== 'number' && typeof raw !== 'string') throw fault(`has a key whose attribute ${id} has a malformed value`)
  }
  const record: KeyRecord = {
    handle: v.handle,
    keyClass: v.keyClass,
    keyType: v.keyType,
    owner: v.owner,
    sharedWith: [...v.sharedWith],
    mValue: v.mValue,
    attributes: attributes as Record<number, AttributeValue>,
    material
  }
  if (isInt(v.pairHandle)) record.pairHandle = v.pairHandle
  return record
}

/** The key of a masked key payload (from `openMasked`), checked. */
export function readMaskedKey (payload: Record<string, unknown>): MaskedKey {
  const record = readKeyRecord(payload.record)
  const users: NamedUser[] = []
  if (!Array.isArray(payload.users)) throw invalid('the masked key names no users')
  for (const u of payload.users as unknown[]) {
    const named = u as Partial<NamedUser> | null
    if (named === null || typeof named !== 'object' || !isInt(named.userId) || typeof named.userName !== 'string') {
      throw invalid('the masked key names a user in a malformed way')
    }
    users.push({ userId: named.userId, userName: named.userName })
  }
  return { record, users }
}

/** A user record from decoded MessagePack, shape checked, with its public key (masked users and backups carry them). */
export function readUserRecord (value: unknown, fault: RecordFault = maskedFault('user')): UserRecord {
  const v = value as Record<string, unknown> | null | undefined
  if (typeof v !== 'object' || v === null) throw fault('holds no user record')
  const password = v.password as Record<string, unknown> | null | undefined
  const salt = bytes(password?.salt)
  const hash = bytes(password?.hash)
  if (!isInt(v.userId) || v.userId < 0 || typeof v.userName !== 'string' || !USER_TYPES.includes(v.userType as UserType) ||
      !isInt(v.loginFailureCount) || typeof v.mofnPubKey !== 'boolean' || typeof v.twoFactor !== 'boolean' ||
      password === null || password === undefined || password.algorithm !== 'scrypt' || !isInt(password.cost) ||
      salt === undefined || hash === undefined || (v.publicKeyPem !== undefined && v.publicKeyPem !== null && typeof v.publicKeyPem !== 'string')) {
    throw fault('holds a malformed user record')
  }
  const user: UserRecord = {
    userId: v.userId,
    userType: v.userType as UserType,
    userName: v.userName,
    password: { algorithm: 'scrypt', salt, hash, cost: password.cost },
    loginFailureCount: v.loginFailureCount,
    mofnPubKey: v.mofnPubKey,
    twoFactor: v.twoFactor
  }
  if (typeof v.publicKeyPem === 'string') user.publicKeyPem = v.publicKeyPem
  return user
}
