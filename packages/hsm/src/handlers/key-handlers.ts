/**
 * The key commands of one HSM (reference A.6, C, D): findAllKeys, getKeyInfo, getAttribute,
 * setAttribute, shareKey, genSymKey, genRSAKeyPair / genECCKeyPair, findKey, deleteKey, wrapKey,
 * unWrapKey, exportPrivateKey, sign, verify; and what KMU's exSymKey, imSymKey, importPrivateKey
 * (wrapKey without header, aesWrapData's key-wrap form, unwrapKey), importPubKey
 * (importPublicKey) and findSingleKey (keyDigest) need.
 *
 * Who may do what:
 * - Key management and crypto operations are for crypto users (CU): others get
 *   RET_PERMISSION_DENIED, nobody logged in RET_NOT_LOGGED_IN. findAllKeys is for CO, PCO and AU
 *   (and a PRECO, which may read); getKeyInfo also answers them (about any token key).
 * - A CU sees the keys it owns, the keys shared with it, and every public key. A handle that does
 *   not exist, was deleted, or is not visible to the caller: RET_INVALID_HANDLE (0xa8).
 * - Only the owner may delete, wrap or export a key, change its attributes or share it; anyone
 *   else who can see it gets RET_KEY_ACCESS_DENIED (0xc6), as KMU deleteKey by a non-owner does.
 *   Users it is shared with may use it (sign, verify, as wrapping or unwrapping key). Public keys
 *   can be used by every CU and cannot be shared (RET_INVALID_INPUT).
 *
 * Decisions where the reference is silent:
 * - A key whose usage attribute forbids the operation (OBJ_ATTR_SIGN 0 for sign, OBJ_ATTR_WRAP 0
 *   on the wrapping key, OBJ_ATTR_EXTRACTABLE 0 on the key to wrap, OBJ_ATTR_DESTROYABLE 0 on
 *   delete) fails with RET_KEY_ACCESS_DENIED and a detail naming the attribute. A key of the
 *   wrong class or type for a mechanism fails with RET_INVALID_INPUT.
 * - A non-empty OBJ_ATTR_ID must be unique among this HSM's token keys and the caller's session
 *   keys (the two halves of a pair share it); a duplicate is RET_INVALID_INPUT. Keys that arrive by
 *   replication or masked objects are copies and are not checked.
 * - `ctx.limits.keysMax` bounds the token keys of the HSM (RET_KEY_LIMIT); each session may hold
 *   as many session keys again.
 * - minServers > 1 waits (at most `timeoutMs`, default `hsmDefaults.keySyncTimeoutMs`) until the new key
 *   is on that many HSMs; if not, the key is deleted again (tombstone, delete sent to the peers)
 *   and the call fails with RET_MIN_SERVERS_NOT_MET: "the key is not created". A session key
 *   never leaves this HSM, so minServers does not apply to it.
 * - setAttribute and shareKey change this HSM's copy only; CMU sends them to every HSM itself,
 *   and in-cluster replication never overwrites an existing key (reference G.3: the key hash of
 *   findAllKeys is how a person sees a divergence, syncKey repairs it).
 * - On a replica of a synchronisation task (sync-role.ts), making, changing or deleting a token
 *   key fails with RET_SYNC_REPLICA_READ_ONLY; session keys and crypto with existing keys work.
 * - unwrapKey makes a key the caller owns with OBJ_ATTR_LOCAL 0, NEVER_EXTRACTABLE 0 and
 *   ALWAYS_SENSITIVE 0; it keeps the usage attributes and label of the wrapped key's header but not
 *   its OBJ_ATTR_ID (the original usually still exists in the cluster, and IDs are unique); the
 *   caller's `id`, `mValue`, `minServers`, `timeoutMs` and usage (`usageOn`/`usageOff`, over the
 *   header's: the client daemon's C_CreateObject) apply as to a generated key.
 * - The plaintext of a key crosses the encrypted channel only where KMU's flow puts it on the host:
 *   exSymKey's Cfm3UnWrapHostKey (aesWrapData unwrap of what wrapKey made), imSymKey's and
 *   importPrivateKey's Cfm3WrapHostKey (aesWrapData wrap), exportPrivateKey. A wrapping key's
 *   material never leaves the HSM.
 * - exportPrivateKey wraps the private key with the AES key and unwraps it again, both inside the
 *   HSM (the real KMU does the unwrap on the host), and returns PKCS#8 PEM over the encrypted
 *   channel.
 * - Wrapping a public key is refused (RET_INVALID_INPUT): it is not secret, and wrapKey's file
 *   format is for secret and private keys.
 *
 * Concurrency: every read-modify-write of a stored key runs under its handle's lock in the key
 * table (`ctx.keys.withLocks`), because a store read sees a write only once it is durable; key
 * counts, IDs and handles of creations in flight are reserved there synchronously (key-table.ts).
 */
import {
  Attribute, CMU_ATTRIBUTE_ORDER, CMU_SETTABLE_ATTRIBUTES, KeyClass, KeyType, ReturnCode, WireError, attributeName
} from '@hsmlab/protocol'
import type { AttributeValue, KeyAttribute, KeyCreationOptions, KeyListing } from '@hsmlab/protocol'
import type { Handler, HandlerTable, HsmContext, KeyRecord, Session } from '../context.js'
import { findUserById, isTombstone } from '../context.js'
import { hsmDefaults } from '../defaults.js'
import { keyDigest, keysHash } from '../key-digest.js'
import {
  WrapMechanism, aesKeyUnwrap, aesKeyWrap, aesUnwrapWithIv, aesWrapWithIv, checkSecretKeySpec, checkSecretMaterial, decodeWrappedKey, describePrivateKey, describePublicKey,
  encodeWrappedKey, generateEcKeyPair, generateRsaKeyPair, generateSecretKey, privateKeyPem, publicKeyPem, publicKeyKcv, rsaAesUnwrap,
  rsaAesWrap, rsaOaepDecrypt, rsaOaepEncrypt, secretKeyKcv, signData, verifyData
} from '../key-material.js'
import type { AsymmetricMaterial } from '../key-material.js'
import { requireUser } from '../permissions.js'
import { refuseClientChange } from '../sync-role.js'

/** The user logged in on a session. */
type SessionUser = NonNullable<Session['user']>

/** Default RSA modulus when genRSAKeyPair gives none, in bits. @default 2048 */
export const RSA_MODULUS_BITS_DEFAULT = 2048

/** Default RSA public exponent. @default 65537 */
export const RSA_PUBLIC_EXPONENT_DEFAULT = 65537

// ---------------------------------------------------------------------------------------------
// Helpers

/** A mutable copy of a record (store values are frozen). Material is shared: nothing writes to it. */
function copyRecord (record: KeyRecord): KeyRecord {
  const copy: KeyRecord = {
    handle: record.handle,
    keyClass: record.keyClass,
    keyType: record.keyType,
    owner: record.owner,
    sharedWith: [...record.sharedWith],
    mValue: record.mValue,
    attributes: { ...record.attributes },
    material: record.material
  }
  if (record.pairHandle !== undefined) copy.pairHandle = record.pairHandle
  return copy
}

function attrName (id: number): string {
  return attributeName(id) ?? `attribute ${id}`
}

// ---------------------------------------------------------------------------------------------
// Finding keys and checking access

interface FoundKey {
  record: KeyRecord
  /** True for a session key of this session. */
  session: boolean
}

function lookup (ctx: HsmContext, session: Session, handle: number): FoundKey | undefined {
  const sessionKey = session.sessionKeys.get(handle)
  if (sessionKey !== undefined) return { record: sessionKey, session: true }
  const record = ctx.keys.live(handle)
  return record === undefined ? undefined : { record, session: false }
}

type Relation = 'owned' | 'shared' | 'public'

function relationOf (record: KeyRecord, userId: number): Relation | undefined {
  if (record.owner === userId) return record.keyClass === KeyClass.PUBLIC ? 'public' : 'owned'
  if (record.keyClass === KeyClass.PUBLIC) return 'public'
  if (record.sharedWith.includes(userId)) return 'shared'
  return undefined
}

function invalidHandle (handle: number, user: SessionUser): WireError {
  return new WireError(ReturnCode.INVALID_HANDLE, `no key with handle ${handle} is visible to ${user.userName}`)
}

/** A key the CU may use: owned, shared with it, or public. */
export function keyForUse (ctx: HsmContext, session: Session, user: SessionUser, handle: number): FoundKey {
  const found = lookup(ctx, session, handle)
  if (found === undefined || relationOf(found.record, user.userId) === undefined) throw invalidHandle(handle, user)
  if (found.session && found.record.owner !== user.userId) throw invalidHandle(handle, user)
  return found
}

/** A key the CU owns; visible but not owned: RET_KEY_ACCESS_DENIED. */
function keyForOwner (ctx: HsmContext, session: Session, user: SessionUser, handle: number): FoundKey {
  const found = keyForUse(ctx, session, user, handle)
  if (found.record.owner !== user.userId) {
    throw new WireError(ReturnCode.KEY_ACCESS_DENIED, `key ${handle} is owned by user ${found.record.owner}; only its owner may do this`)
  }
  return found
}

export function requireFlag (record: KeyRecord, attribute: number, what: string): void {
  if (record.attributes[attribute] !== 1) {
    throw new WireError(ReturnCode.KEY_ACCESS_DENIED, `key ${record.handle} may not be used to ${what} (${attrName(attribute)} is 0)`)
  }
}

export function requireKind (record: KeyRecord, keyClass: number, keyType: number | undefined, what: string): void {
  if (record.keyClass !== keyClass || (keyType !== undefined && record.keyType !== keyType)) {
    throw new WireError(ReturnCode.INVALID_INPUT, `key ${record.handle} (class ${record.keyClass}, type ${record.keyType}) cannot ${what}`)
  }
}

/** Checks the users a new key is shared with: existing CUs other than the owner. */
function checkShareTargets (ctx: HsmContext, ownerId: number, ids: number[] | undefined): number[] {
  const out: number[] = []
  for (const id of ids ?? []) {
    if (id === ownerId || out.includes(id)) continue
    const target = findUserById(ctx, id)
    if (target === undefined) throw new WireError(ReturnCode.USER_DOES_NOT_EXIST, `there is no user with id ${id} to share the key with`)
    if (target.userType !== 'CU') {
      throw new WireError(ReturnCode.INVALID_USER_TYPE, `keys are shared with crypto users; ${target.userName} (user ${id}) is a ${target.userType}`)
    }
    out.push(id)
  }
  return out.sort((a, b) => a - b)
}

function findKeyWithId (ctx: HsmContext, session: Session, id: string): KeyRecord | undefined {
  for (const record of ctx.keys.values()) {
    if (!isTombstone(record) && record.attributes[Attribute.ID] === id) return record
  }
  for (const record of session.sessionKeys.values()) if (record.attributes[Attribute.ID] === id) return record
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Attributes

/** What a key's attributes are built from. */
export interface AttributeSpec {
  keyClass: number
  keyType: number
  token: boolean
  label: string
  id: string
  extractable: boolean
  /** Generated on this HSM (1) or imported / unwrapped (0). */
  local: boolean
  /** Secret keys: length in bytes; RSA and EC keys: see `asymmetricAttributes`. */
  valueLen?: number
  kcv?: Uint8Array
  rsa?: { modulus: Uint8Array, modulusBits: number, publicExponent: number }
  /** EC keys: OBJ_ATTR_MODULUS is the public point, OBJ_ATTR_MODULUS_BITS the curve's OpenSSL NID. */
  ec?: { point: Uint8Array, curveNid: number }
}

/** The usage attributes a new key gets, by class and type (PKCS#11 conventions). */
function usageDefaults (keyClass: number, keyType: number): Record<number, 0 | 1> {
  const rsa = keyType === KeyType.RSA
  if (keyClass === KeyClass.PUBLIC) {
    return {
      [Attribute.ENCRYPT]: rsa ? 1 : 0, [Attribute.DECRYPT]: 0, [Attribute.WRAP]: rsa ? 1 : 0, [Attribute.UNWRAP]: 0,
      [Attribute.SIGN]: 0, [Attribute.VERIFY]: 1, [Attribute.DERIVE]: 0
    }
  }
  if (keyClass === KeyClass.PRIVATE) {
    return {
      [Attribute.ENCRYPT]: 0, [Attribute.DECRYPT]: rsa ? 1 : 0, [Attribute.WRAP]: 0, [Attribute.UNWRAP]: rsa ? 1 : 0,
      [Attribute.SIGN]: 1, [Attribute.VERIFY]: 0, [Attribute.DERIVE]: rsa ? 0 : 1
    }
  }
  // A generic secret is an HMAC / derivation key. AES and 3DES keys encrypt and decrypt but do not
  // sign (the AWS getAttribute dumps show OBJ_ATTR_SIGN/VERIFY 0; HMAC needs them set with CMU);
  // AES keys wrap and unwrap, 3DES keys do not (the genSymKey page's 3DES dump shows WRAP/UNWRAP 0).
  if (keyType === KeyType.GENERIC_SECRET) {
    return {
      [Attribute.ENCRYPT]: 0, [Attribute.DECRYPT]: 0, [Attribute.WRAP]: 0, [Attribute.UNWRAP]: 0,
      [Attribute.SIGN]: 1, [Attribute.VERIFY]: 1, [Attribute.DERIVE]: 1
    }
  }
  const wraps = keyType === KeyType.DES3 ? 0 : 1
  return {
    [Attribute.ENCRYPT]: 1, [Attribute.DECRYPT]: 1, [Attribute.WRAP]: wraps, [Attribute.UNWRAP]: wraps,
    [Attribute.SIGN]: 0, [Attribute.VERIFY]: 0, [Attribute.DERIVE]: 1
  }
}

/** Every attribute of a new key (reference C.1). */
export function buildAttributes (spec: AttributeSpec): Record<number, AttributeValue> {
  const isPublic = spec.keyClass === KeyClass.PUBLIC
  const extractable = isPublic || spec.extractable
  const attributes: Record<number, AttributeValue> = {
    [Attribute.CLASS]: spec.keyClass,
    [Attribute.TOKEN]: spec.token ? 1 : 0,
    [Attribute.PRIVATE]: 1,
    [Attribute.LABEL]: spec.label,
    [Attribute.TRUSTED]: 0,
    [Attribute.KEY_TYPE]: spec.keyType,
    [Attribute.ID]: spec.id,
    [Attribute.SENSITIVE]: isPublic ? 0 : 1,
    ...usageDefaults(spec.keyClass, spec.keyType),
    [Attribute.EXTRACTABLE]: extractable ? 1 : 0,
    [Attribute.LOCAL]: spec.local ? 1 : 0,
    [Attribute.NEVER_EXTRACTABLE]: spec.local && !extractable ? 1 : 0,
    [Attribute.ALWAYS_SENSITIVE]: spec.local && !isPublic ? 1 : 0,
    [Attribute.DESTROYABLE]: 1,
    [Attribute.WRAP_WITH_TRUSTED]: 0
  }
  if (spec.valueLen !== undefined) attributes[Attribute.VALUE_LEN] = spec.valueLen
  if (spec.kcv !== undefined) attributes[Attribute.KCV] = spec.kcv
  if (spec.rsa !== undefined) {
    attributes[Attribute.MODULUS] = spec.rsa.modulus
    attributes[Attribute.MODULUS_BITS] = spec.rsa.modulusBits
    attributes[Attribute.PUBLIC_EXPONENT] = spec.rsa.publicExponent
  }
  if (spec.ec !== undefined) {
    attributes[Attribute.MODULUS] = spec.ec.point
    attributes[Attribute.MODULUS_BITS] = spec.ec.curveNid
  }
  return attributes
}

const BOOLEAN_SETTABLE: ReadonlySet<number> = new Set([
  Attribute.TRUSTED, Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN,
  Attribute.VERIFY, Attribute.DERIVE, Attribute.DESTROYABLE, Attribute.WRAP_WITH_TRUSTED
])

/** Usage attributes an unwrapped key takes over from the wrapped key's header. */
const CARRIED_ON_UNWRAP: readonly number[] = [
  Attribute.TRUSTED, Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN,
  Attribute.VERIFY, Attribute.DERIVE, Attribute.DESTROYABLE, Attribute.WRAP_WITH_TRUSTED
]

/** A new key's usage attributes as a PKCS#11 template asks (`usageOn` / `usageOff`), over the defaults. */
function applyUsage (attributes: Record<number, AttributeValue>, on: number[] | undefined, off: number[] | undefined): Record<number, AttributeValue> {
  for (const [ids, value] of [[on, 1], [off, 0]] as const) {
    for (const id of ids ?? []) {
      if (!BOOLEAN_SETTABLE.has(id)) throw new WireError(ReturnCode.INVALID_ATTRIBUTE, `${attrName(id)} is not a usage attribute a new key can set`)
      attributes[id] = value
    }
  }
  return attributes
}

function asBoolean (attribute: number, value: number | string): 0 | 1 {
  if (value === 0 || value === '0') return 0
  if (value === 1 || value === '1') return 1
  throw new WireError(ReturnCode.INVALID_INPUT, `${attrName(attribute)} is a boolean attribute: 0 or 1, not ${String(value)}`)
}

// ---------------------------------------------------------------------------------------------
// Creating and deleting

interface CreateOptions {
  token: boolean
  id: string
  minServers: number
  timeoutMs: number
}

function creationOptions (args: KeyCreationOptions): CreateOptions {
  return {
    token: args.session !== true,
    id: args.id ?? '',
    minServers: args.minServers ?? 1,
    timeoutMs: args.timeoutMs ?? hsmDefaults.keySyncTimeoutMs
  }
}

/**
 * Stores new keys (one, or the two halves of a pair) durably or in the session, then has them
 * replicated. With minServers > 1 a failed replication deletes them again and rethrows.
 */
async function storeNewKeys (ctx: HsmContext, session: Session, records: KeyRecord[], options: CreateOptions): Promise<void> {
  try {
    if (options.token) refuseClientChange(ctx, 'creating a token key')
    // Checks and reservations happen synchronously, so concurrent creations cannot both pass them.
    if (options.id !== '') {
      const other = findKeyWithId(ctx, session, options.id)
      if (other !== undefined || ctx.keys.isIdReserved(options.id)) {
        throw new WireError(ReturnCode.INVALID_INPUT, `a key with ID '${options.id}' already exists${other === undefined ? '' : ` (handle ${other.handle})`}; IDs are unique in the cluster`)
      }
    }
    if (!options.token) {
      if (session.sessionKeys.size + records.length > ctx.limits.keysMax) {
        throw new WireError(ReturnCode.KEY_LIMIT, `this session holds ${session.sessionKeys.size} session keys, the limit is ${ctx.limits.keysMax}`)
      }
      for (const record of records) session.sessionKeys.set(record.handle, record)
      return
    }
    const release = ctx.keys.reserveSlots(records.length)
    const releaseId = options.id !== '' ? ctx.keys.reserveId(options.id) : undefined
    try {
      await ctx.keys.put(records)
    } finally {
      release()
      releaseId?.()
    }
  } finally {
    ctx.keys.release(records.map(r => r.handle))
  }
  await replicateNew(ctx, records, options.minServers, options.timeoutMs)
}

/** Hands new token keys to the replicator; with minServers > 1, undoes them when that fails. */
async function replicateNew (ctx: HsmContext, records: KeyRecord[], minServers: number, timeoutMs: number): Promise<void> {
  if (minServers <= 1) {
    for (const record of records) ctx.replicator.keyCreated(record, 1, timeoutMs).catch(() => { /* the replicator logs; anti-entropy retries */ })
    return
  }
  try {
    await Promise.all(records.map(async record => { await ctx.replicator.keyCreated(record, minServers, timeoutMs) }))
  } catch (err) {
    await deleteTokenKeys(ctx, records.map(r => r.handle))
    if (err instanceof WireError) throw err
    throw new WireError(ReturnCode.MIN_SERVERS_NOT_MET, `the key did not reach ${minServers} HSMs: ${(err as Error).message}`, { cause: err })
  }
}

/** Tombstones token keys and tells the peers. */
async function deleteTokenKeys (ctx: HsmContext, handles: number[]): Promise<void> {
  await ctx.keys.withLocks(handles, async () => {
    await ctx.keys.tombstone(handles)
  })
  for (const handle of handles) ctx.replicator.keyDeleted(handle)
}

/** Writes a changed copy of a key back where it lives (store or session). */
async function saveKey (ctx: HsmContext, session: Session, found: FoundKey, record: KeyRecord): Promise<void> {
  if (found.session) {
    session.sessionKeys.set(record.handle, record)
    return
  }
  refuseClientChange(ctx, `changing key ${record.handle}`)
  await ctx.keys.put([record])
}

/**
 * Runs a read-modify-write of one key under its lock, with a fresh read inside it; `change`
 * returns the new record, or undefined to leave the key as it is.
 */
async function modifyKey (
  ctx: HsmContext, session: Session, user: SessionUser, handle: number,
  change: (found: FoundKey) => KeyRecord | undefined
): Promise<void> {
  await ctx.keys.withLocks([handle], async () => {
    const found = keyForOwner(ctx, session, user, handle)
    const updated = change(found)
    if (updated !== undefined) await saveKey(ctx, session, found, updated)
  })
}

// ---------------------------------------------------------------------------------------------
// Handlers

const findAllKeys: Handler<'findAllKeys'> = async (ctx, session, { userId, withHash }) => {
  // CO, PCO and AU (reference A.6); a PRECO may do read-only operations (B.1).
  requireUser(session, 'CO', 'AU', 'PRECO')
  const keys: KeyListing[] = []
  const all: KeyRecord[] = []
  for (const record of ctx.keys.values()) {
    if (isTombstone(record)) continue
    all.push(record)
    // Public keys are listed only for their owner (reference A.6).
    if (record.owner === userId) keys.push({ handle: record.handle, relation: record.keyClass === KeyClass.PUBLIC ? 'public' : 'owned' })
    else if (record.keyClass !== KeyClass.PUBLIC && record.sharedWith.includes(userId)) keys.push({ handle: record.handle, relation: 'shared' })
  }
  keys.sort((a, b) => a.handle - b.handle)
  // "Not populated for users without keys."
  if (withHash && keys.length > 0) return { keys, hash: keysHash(all) }
  return { keys }
}

const getKeyInfo: Handler<'getKeyInfo'> = async (ctx, session, { handle }) => {
  const user = requireUser(session, 'CU', 'CO', 'AU', 'PRECO')
  let found: FoundKey
  if (user.userType === 'CU') {
    found = keyForUse(ctx, session, user, handle)
  } else {
    const record = ctx.keys.live(handle)
    if (record === undefined) throw new WireError(ReturnCode.INVALID_HANDLE, `there is no key with handle ${handle}`)
    found = { record, session: false }
  }
  const { record } = found
  return {
    handle: record.handle,
    token: !found.session,
    owner: record.owner,
    // "Public keys show only the owner."
    sharedWith: record.keyClass === KeyClass.PUBLIC ? [] : [...record.sharedWith].sort((a, b) => a - b),
    mValue: record.mValue,
    keyClass: record.keyClass
  }
}

function attributeList (record: KeyRecord): KeyAttribute[] {
  const ids = Object.keys(record.attributes).map(Number)
  const order = CMU_ATTRIBUTE_ORDER.filter(id => ids.includes(id))
  const rest = ids.filter(id => !CMU_ATTRIBUTE_ORDER.includes(id)).sort((a, b) => a - b)
  return [...order, ...rest].map(id => ({ id, name: attributeName(id) ?? `OBJ_ATTR_${id}`, value: record.attributes[id]! }))
}

const getAttribute: Handler<'getAttribute'> = async (ctx, session, { handle, attribute }) => {
  const user = requireUser(session, 'CU')
  const { record } = keyForUse(ctx, session, user, handle)
  if (attribute === Attribute.ALL) return { attributes: attributeList(record) }
  const value = record.attributes[attribute]
  if (value === undefined) {
    throw new WireError(ReturnCode.INVALID_ATTRIBUTE, `key ${handle} has no ${attrName(attribute)}`)
  }
  return { attributes: [{ id: attribute, name: attributeName(attribute) ?? `OBJ_ATTR_${attribute}`, value }] }
}

/** KMU's setAttribute -a 1: a session key becomes a token key, keeps its handle, and is replicated. */
async function makeTokenKey (ctx: HsmContext, session: Session, user: SessionUser, handle: number): Promise<void> {
  let created: KeyRecord | undefined
  await ctx.keys.withLocks([handle], async () => {
    const found = keyForOwner(ctx, session, user, handle)
    if (!found.session) return // already a token key
    refuseClientChange(ctx, `making key ${handle} a token key`)
    const release = ctx.keys.reserveSlots(1)
    const record = copyRecord(found.record)
    record.attributes[Attribute.TOKEN] = 1
    try {
      await ctx.keys.put([record])
    } finally {
      release()
    }
    session.sessionKeys.delete(handle)
    created = record
  })
  if (created !== undefined) await replicateNew(ctx, [created], 1, hsmDefaults.keySyncTimeoutMs)
}

const setAttribute: Handler<'setAttribute'> = async (ctx, session, { handle, attribute, value }) => {
  const user = requireUser(session, 'CU')
  if (attribute === Attribute.TOKEN) {
    const token = asBoolean(attribute, value)
    keyForOwner(ctx, session, user, handle)
    if (token === 1) {
      await makeTokenKey(ctx, session, user, handle)
    } else if (!session.sessionKeys.has(handle)) {
      throw new WireError(ReturnCode.INVALID_ATTRIBUTE, `key ${handle} is a token key; a token key cannot become a session key`)
    }
    return {}
  }
  if (!CMU_SETTABLE_ATTRIBUTES.includes(attribute)) {
    throw new WireError(ReturnCode.INVALID_ATTRIBUTE, `${attrName(attribute)} cannot be changed after the key is created`)
  }
  let newValue: AttributeValue
  if (attribute === Attribute.LABEL) {
    newValue = String(value)
    if (newValue.length > 127) throw new WireError(ReturnCode.INVALID_INPUT, 'a label has at most 127 characters')
  } else if (BOOLEAN_SETTABLE.has(attribute)) {
    newValue = asBoolean(attribute, value)
  } else {
    newValue = value // WRAP_TEMPLATE / UNWRAP_TEMPLATE: kept as given.
  }
  await modifyKey(ctx, session, user, handle, found => {
    if (found.record.attributes[attribute] === newValue) return undefined
    const record = copyRecord(found.record)
    record.attributes[attribute] = newValue
    return record
  })
  return {}
}

const shareKey: Handler<'shareKey'> = async (ctx, session, { handle, userId, share }) => {
  const user = requireUser(session, 'CU')
  const { record } = keyForOwner(ctx, session, user, handle)
  if (record.keyClass === KeyClass.PUBLIC) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'public keys are available to all users of the HSM, so they cannot be shared or unshared')
  }
  if (userId === user.userId) throw new WireError(ReturnCode.INVALID_INPUT, `key ${handle} is owned by ${user.userName} already`)
  if (share) checkShareTargets(ctx, user.userId, [userId])
  await modifyKey(ctx, session, user, handle, found => {
    const has = found.record.sharedWith.includes(userId)
    if (has === share) return undefined // sharing twice or unsharing a user it was never shared with changes nothing
    const updated = copyRecord(found.record)
    updated.sharedWith = share ? [...updated.sharedWith, userId].sort((a, b) => a - b) : updated.sharedWith.filter(id => id !== userId)
    return updated
  })
  return {}
}

const generateSymmetricKey: Handler<'generateSymmetricKey'> = async (ctx, session, args) => {
  const user = requireUser(session, 'CU')
  checkSecretKeySpec(args.keyType, args.sizeBytes)
  const options = creationOptions(args)
  const sharedWith = checkShareTargets(ctx, user.userId, args.shareWith)
  const material = generateSecretKey(args.keyType, args.sizeBytes)
  const handle = ctx.keys.allocate()
  const attributes = buildAttributes({
    keyClass: KeyClass.SECRET,
    keyType: args.keyType,
    token: options.token,
    label: args.label,
    id: options.id,
    extractable: args.extractable ?? true,
    local: true,
    valueLen: args.sizeBytes,
    kcv: secretKeyKcv(args.keyType, material)
  })
  applyUsage(attributes, args.usageOn, args.usageOff)
  const record: KeyRecord = { handle, keyClass: KeyClass.SECRET, keyType: args.keyType, owner: user.userId, sharedWith, mValue: args.mValue ?? 0, attributes, material }
  await storeNewKeys(ctx, session, [record], options)
  return { handle }
}

/**
 * OpenSSL's NID of each curve hsmlab makes keys on: the HSM stores it as an EC key's
 * OBJ_ATTR_MODULUS_BITS (the guide's genECCKeyPair page dumps a P-256 private key with
 * `0x0000019f`, 415, NID_X9_62_prime256v1).
 */
const EC_CURVE_NIDS: Readonly<Record<string, number>> = { prime256v1: 415, secp224r1: 713, secp256k1: 714, secp384r1: 715, secp521r1: 716 }

/**
 * The attributes of an RSA or EC key that come from its material, as the guide's dumps show them
 * (key_mgmt_util-genRSAKeyPair.md, key_mgmt_util-genECCKeyPair.md):
 * - RSA: modulus, modulus bits, public exponent, and OBJ_ATTR_VALUE_LEN of modulus bits / 4 (the
 *   page's 2048-bit public key: "the key length (512, `0x200`)"; no page dumps a private key, which
 *   gets the same);
 * - EC: the public point as OBJ_ATTR_MODULUS, the curve's NID as OBJ_ATTR_MODULUS_BITS, and
 *   OBJ_ATTR_VALUE_LEN the length of the key's DER (the page's P-256 private key: 0x8a, 138, the
 *   length of its PKCS#8; a public key: its SPKI's).
 */
function asymmetricAttributes (material: AsymmetricMaterial, keyClass: number): Pick<AttributeSpec, 'valueLen' | 'rsa' | 'ec'> {
  if (material.modulus !== undefined && material.modulusBits !== undefined && material.publicExponent !== undefined) {
    return {
      valueLen: Math.floor(material.modulusBits / 4),
      rsa: { modulus: material.modulus, modulusBits: material.modulusBits, publicExponent: material.publicExponent }
    }
  }
  const der = keyClass === KeyClass.PRIVATE ? material.privateDer : material.publicDer
  const curveNid = material.curve === undefined ? undefined : EC_CURVE_NIDS[material.curve]
  if (material.ecPoint === undefined || curveNid === undefined || der === undefined) return {}
  return { valueLen: der.length, ec: { point: material.ecPoint, curveNid } }
}

const generateKeyPair: Handler<'generateKeyPair'> = async (ctx, session, args) => {
  const user = requireUser(session, 'CU')
  const options = creationOptions(args)
  const sharedWith = checkShareTargets(ctx, user.userId, args.shareWith)
  let material: AsymmetricMaterial & { privateDer: Uint8Array }
  if (args.algorithm === 'RSA') {
    material = await generateRsaKeyPair(args.modulusBits ?? RSA_MODULUS_BITS_DEFAULT, args.publicExponent ?? RSA_PUBLIC_EXPONENT_DEFAULT)
  } else {
    if (args.curveId === undefined) throw new WireError(ReturnCode.INVALID_INPUT, 'genECCKeyPair needs a curve id')
    material = await generateEcKeyPair(args.curveId)
  }
  const publicHandle = ctx.keys.allocate()
  const privateHandle = ctx.keys.allocate()
  const common = { keyType: material.keyType, token: options.token, label: args.label, id: options.id, local: true, kcv: publicKeyKcv(material.publicDer) }
  const publicKey: KeyRecord = {
    handle: publicHandle,
    keyClass: KeyClass.PUBLIC,
    keyType: material.keyType,
    owner: user.userId,
    sharedWith: [],
    mValue: 0,
    attributes: applyUsage(buildAttributes({ ...common, ...asymmetricAttributes(material, KeyClass.PUBLIC), keyClass: KeyClass.PUBLIC, extractable: true }), args.publicUsageOn, args.publicUsageOff),
    material: material.publicDer,
    pairHandle: privateHandle
  }
  const privateKey: KeyRecord = {
    handle: privateHandle,
    keyClass: KeyClass.PRIVATE,
    keyType: material.keyType,
    owner: user.userId,
    // Public keys cannot be shared: `-u` shares the private half.
    sharedWith,
    mValue: args.mValue ?? 0,
    attributes: applyUsage(buildAttributes({ ...common, ...asymmetricAttributes(material, KeyClass.PRIVATE), keyClass: KeyClass.PRIVATE, extractable: args.extractable ?? true }), args.usageOn, args.usageOff),
    material: material.privateDer,
    pairHandle: publicHandle
  }
  await storeNewKeys(ctx, session, [publicKey, privateKey], options)
  return { publicHandle, privateHandle }
}

function kcvMatches (value: AttributeValue | undefined, wanted: string): boolean {
  if (!(value instanceof Uint8Array)) return false
  const hex = Buffer.from(value).toString('hex')
  return hex === wanted.toLowerCase().replace(/^0x/, '')
}

const findKey: Handler<'findKey'> = async (ctx, session, args) => {
  const user = requireUser(session, 'CU')
  const candidates: KeyRecord[] = []
  if (args.session !== false) {
    for (const record of session.sessionKeys.values()) if (record.owner === user.userId) candidates.push(record)
  }
  if (args.session !== true) {
    for (const record of ctx.keys.values()) {
      if (!isTombstone(record) && relationOf(record, user.userId) !== undefined) candidates.push(record)
    }
  }
  const handles = candidates.filter(record =>
    (args.keyClass === undefined || record.keyClass === args.keyClass) &&
    (args.keyType === undefined || record.keyType === args.keyType) &&
    (args.label === undefined || record.attributes[Attribute.LABEL] === args.label) &&
    (args.id === undefined || record.attributes[Attribute.ID] === args.id) &&
    (args.kcv === undefined || kcvMatches(record.attributes[Attribute.KCV], args.kcv))
  ).map(record => record.handle).sort((a, b) => a - b)
  return { handles, total: handles.length }
}

const deleteKey: Handler<'deleteKey'> = async (ctx, session, { handle }) => {
  const user = requireUser(session, 'CU')
  let token = false
  await ctx.keys.withLocks([handle], async () => {
    const found = keyForOwner(ctx, session, user, handle)
    requireFlag(found.record, Attribute.DESTROYABLE, 'be deleted')
    if (found.session) {
      session.sessionKeys.delete(handle)
      return
    }
    refuseClientChange(ctx, `deleting key ${handle}`)
    // A tombstone, not a delete: the handle is never given out again, and the delete reaches
    // peers that were away (peerInventory lists tombstones).
    await ctx.keys.tombstone([handle])
    token = true
  })
  if (token) ctx.replicator.keyDeleted(handle)
  return {}
}

/** The wrapping key for a mechanism, checked; `direction` says which usage attribute it needs. */
function wrappingKeyFor (ctx: HsmContext, session: Session, user: SessionUser, handle: number, mechanism: number, direction: 'wrap' | 'unwrap'): KeyRecord {
  const { record } = keyForUse(ctx, session, user, handle)
  if (mechanism === WrapMechanism.AES_KEY_WRAP) {
    requireKind(record, KeyClass.SECRET, KeyType.AES, `${direction} with AES key wrap (an AES key is needed)`)
  } else if (mechanism === WrapMechanism.RSA_OAEP || mechanism === WrapMechanism.RSA_AES) {
    const keyClass = direction === 'wrap' ? KeyClass.PUBLIC : KeyClass.PRIVATE
    requireKind(record, keyClass, KeyType.RSA, `${direction} with RSA (an RSA ${direction === 'wrap' ? 'public' : 'private'} key is needed)`)
  } else {
    throw new WireError(ReturnCode.INVALID_INPUT, `wrap mechanism ${mechanism} is not supported (4 AES_KEY_WRAP, 7 RSA_AES, 8 RSA_OAEP)`)
  }
  requireFlag(record, direction === 'wrap' ? Attribute.WRAP : Attribute.UNWRAP, `${direction} keys`)
  return record
}

/** The key to be wrapped or exported: owned, not public, extractable. */
function keyToExport (ctx: HsmContext, session: Session, user: SessionUser, handle: number): KeyRecord {
  const { record } = keyForOwner(ctx, session, user, handle)
  if (record.keyClass === KeyClass.PUBLIC) {
    throw new WireError(ReturnCode.INVALID_INPUT, `key ${handle} is a public key: it is not secret and is not wrapped`)
  }
  if (record.attributes[Attribute.EXTRACTABLE] !== 1) {
    throw new WireError(ReturnCode.KEY_ACCESS_DENIED, `key ${handle} is not extractable (OBJ_ATTR_EXTRACTABLE is 0)`)
  }
  return record
}

function checkTrusted (target: KeyRecord, wrapping: KeyRecord): void {
  if (target.attributes[Attribute.WRAP_WITH_TRUSTED] === 1 && wrapping.attributes[Attribute.TRUSTED] !== 1) {
    throw new WireError(ReturnCode.KEY_ACCESS_DENIED, `key ${target.handle} may only be wrapped with a trusted key (OBJ_ATTR_WRAP_WITH_TRUSTED is 1)`)
  }
}

const wrapKey: Handler<'wrapKey'> = async (ctx, session, { handle, wrappingHandle, mechanism, noHeader, keyClass }) => {
  const user = requireUser(session, 'CU')
  const target = keyToExport(ctx, session, user, handle)
  if (keyClass !== undefined) requireKind(target, keyClass, undefined, `be wrapped here (a key of class ${keyClass} is needed)`)
  const wrapping = wrappingKeyFor(ctx, session, user, wrappingHandle, mechanism, 'wrap')
  checkTrusted(target, wrapping)
  let wrapped: Uint8Array
  if (mechanism === WrapMechanism.AES_KEY_WRAP) {
    wrapped = aesKeyWrap(wrapping.material, target.material)
  } else if (mechanism === WrapMechanism.RSA_OAEP) {
    if (target.keyClass !== KeyClass.SECRET) {
      throw new WireError(ReturnCode.INVALID_INPUT, `RSA-OAEP wraps secret keys; key ${handle} is a private key (use mechanism 7 RSA_AES or 4 AES_KEY_WRAP)`)
    }
    wrapped = rsaOaepEncrypt(wrapping.material, target.material)
  } else {
    wrapped = rsaAesWrap(wrapping.material, target.material)
  }
  if (noHeader === true) return { wrapped }
  const attributes = { ...target.attributes }
  return { wrapped: encodeWrappedKey({ mechanism, keyClass: target.keyClass, keyType: target.keyType, attributes }, wrapped) }
}

const unwrapKey: Handler<'unwrapKey'> = async (ctx, session, args) => {
  const user = requireUser(session, 'CU')
  const wrapping = wrappingKeyFor(ctx, session, user, args.wrappingHandle, args.mechanism, 'unwrap')
  const { header, wrapped } = decodeWrappedKey(args.wrapped)
  if (header !== undefined && header.mechanism !== args.mechanism) {
    throw new WireError(ReturnCode.INVALID_INPUT, `the key was wrapped with mechanism ${header.mechanism}, not ${args.mechanism}`)
  }
  const keyClass = args.keyClass ?? header?.keyClass
  const keyType = args.keyType ?? header?.keyType
  if (keyClass === undefined || keyType === undefined) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the wrapped key has no header: give its key class and key type')
  }
  if (keyClass !== KeyClass.SECRET && keyClass !== KeyClass.PRIVATE) {
    throw new WireError(ReturnCode.INVALID_INPUT, `unwrapKey makes secret (4) or private (3) keys, not class ${keyClass}`)
  }
  const sharedWith = checkShareTargets(ctx, user.userId, args.shareWith)
  let material: Uint8Array
  if (args.mechanism === WrapMechanism.AES_KEY_WRAP) material = aesKeyUnwrap(wrapping.material, wrapped)
  else if (args.mechanism === WrapMechanism.RSA_OAEP) material = rsaOaepDecrypt(wrapping.material, wrapped)
  else material = rsaAesUnwrap(wrapping.material, wrapped)

  const token = args.session !== true
  const headerLabel = header?.attributes[Attribute.LABEL]
  const label = args.label ?? (typeof headerLabel === 'string' ? headerLabel : '')
  let attributes: Record<number, AttributeValue>
  if (keyClass === KeyClass.SECRET) {
    checkSecretMaterial(keyType, material)
    attributes = buildAttributes({
      keyClass, keyType, token, label, id: '', extractable: args.extractable ?? true, local: false,
      valueLen: material.length, kcv: secretKeyKcv(keyType, material)
    })
  } else {
    const described = describePrivateKey(material, keyType)
    material = described.privateDer
    attributes = buildAttributes({
      keyClass, keyType, token, label, id: '', extractable: args.extractable ?? true, local: false,
      kcv: publicKeyKcv(described.publicDer), ...asymmetricAttributes(described, keyClass)
    })
  }
  if (header !== undefined) {
    for (const id of CARRIED_ON_UNWRAP) {
      const v = header.attributes[id]
      if (v === 0 || v === 1) attributes[id] = v
    }
  }
  applyUsage(attributes, args.usageOn, args.usageOff)
  // -id, -m_value, -min_srv and -timeout as for a generated key (unWrapKey, imSymKey, importPrivateKey).
  const options = creationOptions({ label, ...(args.session === undefined ? {} : { session: args.session }), ...(args.id === undefined ? {} : { id: args.id }), ...(args.minServers === undefined ? {} : { minServers: args.minServers }), ...(args.timeoutMs === undefined ? {} : { timeoutMs: args.timeoutMs }) })
  attributes[Attribute.ID] = options.id
  const handle = ctx.keys.allocate()
  const record: KeyRecord = { handle, keyClass, keyType, owner: user.userId, sharedWith, mValue: args.mValue ?? 0, attributes, material }
  await storeNewKeys(ctx, session, [record], options)
  return { handle }
}

const exportPrivateKey: Handler<'exportPrivateKey'> = async (ctx, session, { handle, wrappingHandle }) => {
  const user = requireUser(session, 'CU')
  const target = keyToExport(ctx, session, user, handle)
  requireKind(target, KeyClass.PRIVATE, undefined, 'be exported with exportPrivateKey (a private key is needed)')
  const wrapping = wrappingKeyFor(ctx, session, user, wrappingHandle, WrapMechanism.AES_KEY_WRAP, 'wrap')
  checkTrusted(target, wrapping)
  // The real tool wraps on the HSM (Cfm3WrapKey) and unwraps on the host (Cfm3UnWrapHostKey);
  // both steps run here, and the PEM travels over the encrypted channel.
  const der = aesKeyUnwrap(wrapping.material, aesKeyWrap(wrapping.material, target.material))
  return { pem: privateKeyPem(der) }
}

const exportPublicKey: Handler<'exportPublicKey'> = async (ctx, session, { handle }) => {
  const user = requireUser(session, 'CU')
  // Public keys are usable by every CU (reference C.2), so exporting one needs no ownership.
  const { record } = keyForUse(ctx, session, user, handle)
  requireKind(record, KeyClass.PUBLIC, undefined, 'be exported with exportPubKey (a public key is needed)')
  return { pem: publicKeyPem(record.material) }
}

/** KMU aesWrapUnwrap: RFC 3394 over host data with an HSM AES key; the data never becomes a key. */
const aesWrapData: Handler<'aesWrapData'> = async (ctx, session, { wrappingHandle, unwrap, data, iv, keyWrap }) => {
  const user = requireUser(session, 'CU')
  const wrapping = wrappingKeyFor(ctx, session, user, wrappingHandle, WrapMechanism.AES_KEY_WRAP, unwrap ? 'unwrap' : 'wrap')
  if (keyWrap === true) {
    if (iv !== undefined) throw new WireError(ReturnCode.INVALID_INPUT, 'the key-wrap form takes no IV')
    return { data: unwrap ? aesKeyUnwrap(wrapping.material, data) : aesKeyWrap(wrapping.material, data) }
  }
  return { data: unwrap ? aesUnwrapWithIv(wrapping.material, data, iv) : aesWrapWithIv(wrapping.material, data, iv) }
}

/**
 * KMU importPubKey: a public key from its SPKI, owned by the caller, OBJ_ATTR_LOCAL 0. It has no
 * private half here (no pairHandle); like every public key it is usable by every CU and cannot be
 * shared, so `shareWith` is refused.
 */
const importPublicKey: Handler<'importPublicKey'> = async (ctx, session, args) => {
  const user = requireUser(session, 'CU')
  if ((args.shareWith ?? []).length > 0) throw new WireError(ReturnCode.INVALID_INPUT, 'public keys cannot be shared: every crypto user may use them')
  const options = creationOptions(args)
  const material = describePublicKey(args.spki)
  const handle = ctx.keys.allocate()
  const attributes = applyUsage(buildAttributes({
    keyClass: KeyClass.PUBLIC, keyType: material.keyType, token: options.token, label: args.label, id: options.id,
    extractable: true, local: false, kcv: publicKeyKcv(material.publicDer), ...asymmetricAttributes(material, KeyClass.PUBLIC)
  }), args.usageOn, args.usageOff)
  const record: KeyRecord = { handle, keyClass: KeyClass.PUBLIC, keyType: material.keyType, owner: user.userId, sharedWith: [], mValue: 0, attributes, material: material.publicDer }
  await storeNewKeys(ctx, session, [record], options)
  return { handle }
}

/**
 * KMU findSingleKey: the digest of one key this CU may use (key-digest.ts: handle, material,
 * attributes, owner, shares), which the client compares across the HSMs. A digest says nothing
 * about the material it was made from.
 */
const keyDigestOf: Handler<'keyDigest'> = async (ctx, session, { handle }) => {
  const user = requireUser(session, 'CU')
  const { record } = keyForUse(ctx, session, user, handle)
  return { hash: keyDigest(record) }
}

const sign: Handler<'sign'> = async (ctx, session, { handle, mechanism, data }) => {
  const user = requireUser(session, 'CU')
  const { record } = keyForUse(ctx, session, user, handle)
  requireKind(record, KeyClass.PRIVATE, undefined, 'sign (a private key is needed)')
  requireFlag(record, Attribute.SIGN, 'sign')
  return { signature: signData(mechanism, record.keyType, record.material, data) }
}

const verify: Handler<'verify'> = async (ctx, session, { handle, mechanism, data, signature }) => {
  const user = requireUser(session, 'CU')
  const { record } = keyForUse(ctx, session, user, handle)
  requireKind(record, KeyClass.PUBLIC, undefined, 'verify (a public key is needed)')
  requireFlag(record, Attribute.VERIFY, 'verify')
  if (!verifyData(mechanism, record.keyType, record.material, data, signature)) {
    throw new WireError(ReturnCode.BAD_PKCS_DATA, 'the signature does not match the data and key')
  }
  return {}
}

/** The key handlers. */
export const keyHandlers: HandlerTable = {
  findAllKeys,
  getKeyInfo,
  getAttribute,
  setAttribute,
  shareKey,
  generateSymmetricKey,
  generateKeyPair,
  findKey,
  deleteKey,
  wrapKey,
  unwrapKey,
  exportPrivateKey,
  exportPublicKey,
  aesWrapData,
  importPublicKey,
  keyDigest: keyDigestOf,
  sign,
  verify
}
