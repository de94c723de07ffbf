/**
 * ExtractMaskedObject / InsertMaskedObject (reference G.2): one key or one user sealed under the
 * cluster masking key, so that it can move to another HSM of this cluster or of a clone (CMU
 * syncKey / syncUser, KMU extractMaskedObject / insertMaskedObject, and in-cluster replication).
 * How objects are sealed, opened and read is masked-objects.ts; here is who may, and inserting.
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
import { Attribute, KeyClass, ReturnCode, WireError } from '@hsmlab/protocol'
import type { Handler, HandlerTable, HsmContext, KeyRecord, UserRecord } from '../context.js'
import { findUserById, isTombstone } from '../context.js'
import { hsmDefaults } from '../defaults.js'
import { keyDigest } from '../key-digest.js'
import { maskKey, maskUser, openMasked, readMaskedKey, readUserRecord } from '../masked-objects.js'
import type { MaskedKey } from '../masked-objects.js'
import { requireUser } from '../permissions.js'
import { refuseClientChange } from '../sync-role.js'

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
  if (source.attributes[Attribute.TOKEN] !== 1) throw new WireError(ReturnCode.MASKED_OBJECT_INVALID, 'the masked key is not a token key')
  checkCredentials(ctx, masked)
  let created: KeyRecord | undefined
  // The handle of an earlier copy is locked too, but it is looked for only once the key's own
  // handle turns out to be taken (rare, and a scan of every key): then the pass starts again
  // holding both locks, and looks again.
  let copyAt: number | undefined
  for (;;) {
    const locks = [source.handle, ...(copyAt === undefined ? [] : [copyAt])]
    const pass = await ctx.keys.withLocks(locks, async (): Promise<InsertPass> => {
      let handle: number | undefined
      let replacing = false
      if (sameHandle) {
        const existing = ctx.keys.get(source.handle)
        if (existing !== undefined && !isTombstone(existing) && sameKey(existing, source)) {
          handle = source.handle
          replacing = true
          // The same key with the same owner, shares and attributes: nothing to write (a repeat).
          if (keyDigest(existing) === keyDigest(source)) return { handle }
        } else if (existing === undefined && !ctx.keys.inUse(source.handle, true)) {
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
      const release = replacing ? () => {} : ctx.keys.reserveSlots(1)
      try {
        handle ??= ctx.keys.allocate()
        const record = relocated(source, handle)
        await ctx.keys.put([record])
        if (!replacing) created = record
        return { handle }
      } finally {
        release()
        if (handle !== undefined) ctx.keys.release([handle])
      }
    })
    if ('lockAlso' in pass) {
      copyAt = pass.lockAlso
      continue
    }
    if (created !== undefined) ctx.replicator.keyCreated(created, 1, hsmDefaults.keySyncTimeoutMs).catch(() => { /* the replicator logs */ })
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
  const record = ctx.keys.live(handle)
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
  // syncKey / syncUser into a replica would change it behind the synchronisation task's back.
  refuseClientChange(ctx, 'inserting a masked object')
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
