/**
 * ExtractMaskedObject / InsertMaskedObject (reference G.2): one key or one user sealed under the
 * cluster masking key, so that it can move to another HSM of this cluster or of a clone (CMU
 * syncKey / syncUser, KMU extractMaskedObject / insertMaskedObject, and in-cluster replication).
 *
 * Payloads (MessagePack, inside the masked object, never in clear):
 * - a key: `{ format: 'hsmlab/masked-key/v1', record: KeyRecord, users: [{ userId, userName }] }`
 *   — the whole record (material, attributes, owner, shares, quorum value) and the names of its
 *   owner and shared users on the source HSM, so the destination can check that they are the
 *   same people ("both clusters must have consistent CO and CU credentials");
 * - a user: `{ format: 'hsmlab/masked-user/v1', user: UserRecord }` — with the password verifier
 *   (salted scrypt), never a clear password.
 *
 * Who may:
 * - extract a key: its owner (CU; anyone else who can see it: RET_KEY_ACCESS_DENIED), any CO or
 *   PCO, the AU. It works for non-extractable keys. Only token keys: a session key exists on one
 *   HSM only (RET_INVALID_INPUT; make it a token key first).
 * - extract a user: CO, PCO, AU.
 * - insert a key: CO, PCO, AU, or a CU that owns it (decision: a CU may not plant keys in another
 *   user's name, RET_KEY_ACCESS_DENIED). Insert a user: CO, PCO, AU.
 *
 * Insert rules (decisions where the reference is silent):
 * - another lineage: RET_MASKED_OBJECT_LINEAGE; a changed byte: RET_MASKED_OBJECT_INVALID;
 * - the key's owner and every shared user the source named must exist here with the same id and
 *   name (case-insensitive), else RET_CREDENTIALS_INCONSISTENT naming the user. A shared user the
 *   source itself did not know (deleted there) is carried as it is.
 * - `sameHandle` (syncKey): the key keeps its handle when that is free here or held by the same
 *   key (same class, type and material) — then the stored copy is replaced, owner, shares and
 *   attributes taken from the source: that is how syncKey repairs a desynchronised key. When the
 *   handle is held by another key, or was deleted here (a tombstone: handles are never reused,
 *   and the peers would delete it again), the key gets a new handle, returned in the result —
 *   unless an earlier such insert already gave it one: a live key of the same owner, class, type
 *   and material under another handle is that copy, updated in place like the same handle would
 *   be, so a repeated syncKey makes no second copy.
 *   Without `sameHandle` (KMU insertMaskedObject) the key always gets a new handle, as the
 *   reference says; inserting the same object twice then makes two copies, as on CloudHSM.
 * - a user is matched by id: same id and name → replaced (type, password, counters); the id held
 *   by another name, or the name by another id → RET_CREDENTIALS_INCONSISTENT; neither → added
 *   (RET_USER_LIMIT when full).
 * - every check happens before the single `apply` that writes; repeating an insert with
 *   `sameHandle`, or of a user, changes nothing the second time.
 * - an inserted token key is then replicated to the peers like a new key (a key replaced in
 *   place is not: peers never overwrite a key they hold).
 */
import { CryptoError, CRYPTO_ERR_LINEAGE, maskObject, unmaskObject } from '@hsmlab/crypto'
import type { MaskedObjectHeader } from '@hsmlab/crypto'
import { Attribute, KeyClass, ReturnCode, USER_TYPES, WireError, decode, encode } from '@hsmlab/protocol'
import type { AttributeValue, UserType } from '@hsmlab/protocol'
import type { Handler, HandlerTable, HsmContext, KeyRecord, UserRecord } from '../context.js'
import { isTombstone } from '../context.js'
import { keyDigest } from '../key-digest.js'
import { requireUser } from '../permissions.js'
import {
  KEY_SYNC_TIMEOUT_MS, allocateKeyHandle, findUserById, handleInUse, handleLock, liveTokenKey, releaseHandles, reserveKeySlots, withKeyLocks
} from './key-handlers.js'

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
    sharedWith: [...(v.sharedWith as number[])],
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

/** A user record from decoded MessagePack, shape checked (masked users and backups carry them). */
export function readUserRecord (value: unknown, fault: RecordFault = maskedFault('user')): UserRecord {
  const v = value as Record<string, unknown> | null | undefined
  if (typeof v !== 'object' || v === null) throw fault('holds no user record')
  const password = v.password as Record<string, unknown> | null | undefined
  const salt = bytes(password?.salt)
  const hash = bytes(password?.hash)
  if (!isInt(v.userId) || v.userId < 0 || typeof v.userName !== 'string' || !USER_TYPES.includes(v.userType as UserType) ||
      !isInt(v.loginFailureCount) || typeof v.mofnPubKey !== 'boolean' || typeof v.twoFactor !== 'boolean' ||
      password === null || password === undefined || password.algorithm !== 'scrypt' || !isInt(password.cost) ||
      salt === undefined || hash === undefined) {
    throw fault('holds a malformed user record')
  }
  return {
    userId: v.userId,
    userType: v.userType as UserType,
    userName: v.userName,
    password: { algorithm: 'scrypt', salt, hash, cost: password.cost },
    loginFailureCount: v.loginFailureCount,
    mofnPubKey: v.mofnPubKey,
    twoFactor: v.twoFactor
  }
}

function sameName (a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase()
}

/** Throws RET_CREDENTIALS_INCONSISTENT unless the key's owner and named shared users are the same people here. */
function checkCredentials (ctx: HsmContext, { record, users }: MaskedKey): void {
  const names = new Map(users.map(u => [u.userId, u.userName]))
  const check = (userId: number, role: string): void => {
    const named = names.get(userId)
    if (named === undefined) {
      if (role === 'owner') {
        throw new WireError(ReturnCode.CREDENTIALS_INCONSISTENT, `the masked key ${record.handle} does not name its owner (user ${userId}): the owner is missing on the source HSM`)
      }
      return
    }
    const local = findUserById(ctx, userId)
    if (local === undefined) {
      throw new WireError(ReturnCode.CREDENTIALS_INCONSISTENT, `the ${role} of key ${record.handle}, ${named} (user ${userId}), does not exist on this HSM; sync the user first (syncUser)`)
    }
    if (!sameName(local.userName, named)) {
      throw new WireError(ReturnCode.CREDENTIALS_INCONSISTENT, `the ${role} of key ${record.handle} is ${named} (user ${userId}) on the source, but user ${userId} is ${local.userName} on this HSM`)
    }
  }
  check(record.owner, 'owner')
  for (const userId of record.sharedWith) check(userId, 'shared user')
}

function sameKey (a: KeyRecord, b: KeyRecord): boolean {
  // Buffer.compare reads both arrays in place (Buffer.from would copy them first).
  return a.keyClass === b.keyClass && a.keyType === b.keyType && Buffer.compare(a.material, b.material) === 0
}

/**
 * The source's record (from `readMaskedKey`, this insert's own) as stored under `handle` here:
 * the record itself under its own handle; else a copy that shares its attributes and material
 * (nothing writes to them).
 */
function relocated (source: KeyRecord, handle: number): KeyRecord {
  if (handle === source.handle) return source
  const record: KeyRecord = { ...source, handle }
  // The link to the other half of a pair holds only while the key keeps its handle.
  delete record.pairHandle
  return record
}

/**
 * The copy an earlier `sameHandle` insert made of this key because its own handle was taken
 * here: a live key of the same owner, class, type and material under another handle (the
 * lowest, if there are several). A scan of every key: ask only when the handle is taken.
 */
function earlierCopyOf (ctx: HsmContext, source: KeyRecord): KeyRecord | undefined {
  let found: KeyRecord | undefined
  for (const record of ctx.keys.values()) {
    if (isTombstone(record) || record.handle === source.handle || record.owner !== source.owner || !sameKey(record, source)) continue
    if (found === undefined || record.handle < found.handle) found = record
  }
  return found
}

/** What one pass of an insert under its locks came to: the key's handle here, or a lock it lacks. */
type InsertPass = { handle: number } | { lockAlso: number }

async function insertKey (ctx: HsmContext, masked: MaskedKey, sameHandle: boolean): Promise<number> {
  const source = masked.record
  if (source.attributes[Attribute.TOKEN] !== 1) throw invalid('the masked key is not a token key')
  checkCredentials(ctx, masked)
  let created: KeyRecord | undefined
  // The handle of an earlier copy is locked too, but it is looked for only once the key's own
  // handle turns out to be taken (rare, and a scan of every key): then the pass starts again
  // holding both locks, and looks again.
  let copyAt: number | undefined
  for (;;) {
    const locks = [handleLock(source.handle), ...(copyAt === undefined ? [] : [handleLock(copyAt)])]
    const pass = await withKeyLocks(ctx, locks, async (): Promise<InsertPass> => {
      let handle: number | undefined
      let replacing = false
      if (sameHandle) {
        const existing = ctx.keys.get(String(source.handle))
        if (existing !== undefined && !isTombstone(existing) && sameKey(existing, source)) {
          handle = source.handle
          replacing = true
          // The same key with the same owner, shares and attributes: nothing to write (a repeat).
          if (keyDigest(existing) === keyDigest(source)) return { handle }
        } else if (existing === undefined && !handleInUse(ctx, source.handle, true)) {
          handle = source.handle
        } else {
          const copy = earlierCopyOf(ctx, source)
          if (copy !== undefined) {
            if (copy.handle !== copyAt) return { lockAlso: copy.handle }
            // Its handle is taken here, and an earlier insert gave it this one: update that copy.
            handle = copy.handle
            replacing = true
            if (keyDigest(copy) === keyDigest(relocated(source, handle))) return { handle }
          }
        }
      }
      const release = replacing ? () => {} : reserveKeySlots(ctx, 1)
      try {
        handle ??= allocateKeyHandle(ctx)
        const record = relocated(source, handle)
        await ctx.keys.apply([{ op: 'put', id: String(handle), value: record }])
        if (!replacing) created = record
        return { handle }
      } finally {
        release()
        if (handle !== undefined) releaseHandles(ctx, [handle])
      }
    })
    if ('lockAlso' in pass) {
      copyAt = pass.lockAlso
      continue
    }
    if (created !== undefined) ctx.replicator.keyCreated(created, 1, KEY_SYNC_TIMEOUT_MS).catch(() => { /* the replicator logs */ })
    return pass.handle
  }
}

async function insertUser (ctx: HsmContext, user: UserRecord): Promise<number> {
  return await ctx.runExclusive(async () => {
    const byId = findUserById(ctx, user.userId)
    if (byId !== undefined && !sameName(byId.userName, user.userName)) {
      throw new WireError(ReturnCode.CREDENTIALS_INCONSISTENT, `user id ${user.userId} is ${byId.userName} on this HSM, but the masked user is ${user.userName}`)
    }
    for (const other of ctx.users.values()) {
      if (other.userId !== user.userId && sameName(other.userName, user.userName)) {
        throw new WireError(ReturnCode.CREDENTIALS_INCONSISTENT, `${user.userName} is user ${other.userId} on this HSM, but user ${user.userId} in the masked object`)
      }
    }
    if (byId === undefined && ctx.users.size >= ctx.limits.usersMax) {
      throw new WireError(ReturnCode.USER_LIMIT, `this HSM holds ${ctx.users.size} users, the limit is ${ctx.limits.usersMax}`)
    }
    await ctx.users.apply([{ op: 'put', id: String(user.userId), value: user }])
    return user.userId
  })
}

const extractMaskedObject: Handler<'extractMaskedObject'> = async (ctx, session, args) => {
  const caller = requireUser(session, 'CU', 'CO', 'AU')
  if (args.kind === 'user') {
    requireUser(session, 'CO', 'AU')
    if (args.userId === undefined) throw new WireError(ReturnCode.INVALID_INPUT, 'extracting a user needs its user id')
    const user = findUserById(ctx, args.userId)
    if (user === undefined) throw new WireError(ReturnCode.USER_DOES_NOT_EXIST, `there is no user with id ${args.userId}`)
    return { blob: maskUser(ctx, user) }
  }
  const handle = args.handle
  if (handle === undefined) throw new WireError(ReturnCode.INVALID_INPUT, 'extracting a key needs its handle')
  if (session.sessionKeys.has(handle)) {
    throw new WireError(ReturnCode.INVALID_INPUT, `key ${handle} is a session key: it exists on this HSM only; make it a token key first`)
  }
  const record = liveTokenKey(ctx, handle)
  if (caller.userType === 'CU') {
    const visible = record !== undefined &&
      (record.owner === caller.userId || record.keyClass === KeyClass.PUBLIC || record.sharedWith.includes(caller.userId))
    if (!visible) throw new WireError(ReturnCode.INVALID_HANDLE, `no key with handle ${handle} is visible to ${caller.userName}`)
    if (record.owner !== caller.userId) {
      throw new WireError(ReturnCode.KEY_ACCESS_DENIED, `key ${handle} is owned by user ${record.owner}; only its owner (or a CO) may extract it`)
    }
  }
  if (record === undefined) throw new WireError(ReturnCode.INVALID_HANDLE, `there is no key with handle ${handle}`)
  return { blob: maskKey(ctx, record) }
}

const insertMaskedObject: Handler<'insertMaskedObject'> = async (ctx, session, args) => {
  const caller = requireUser(session, 'CU', 'CO', 'AU')
  const { kind, payload } = openMasked(ctx, args.blob)
  if (kind === 'user') {
    requireUser(session, 'CO', 'AU')
    const userId = await insertUser(ctx, readUserRecord(payload.user))
    return { kind, userId }
  }
  const masked = readMaskedKey(payload)
  if (caller.userType === 'CU' && masked.record.owner !== caller.userId) {
    throw new WireError(ReturnCode.KEY_ACCESS_DENIED, `the masked key is owned by user ${masked.record.owner}; a crypto user may insert only its own keys`)
  }
  const handle = await insertKey(ctx, masked, args.sameHandle === true)
  return { kind, handle }
}

/** The masked-object handlers. */
export const maskedObjectHandlers: HandlerTable = {
  extractMaskedObject,
  insertMaskedObject
}
