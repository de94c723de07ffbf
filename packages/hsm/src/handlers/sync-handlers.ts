/**
 * The HSM side of cross-region synchronisation tasks (issue 12; the control plane is the caller):
 *
 * - `syncHello`: the control plane proves it holds the cluster's trust anchor (`signSyncHello`
 *   over this HSM's id and the time, within `backupRequestSkewMsMax` of this HSM's clock, as
 *   exportBackup); the session may then use the other sync* operations. Without it they fail
 *   with RET_SYNC_UNAUTHENTICATED; a bad signature or time with RET_PERMISSION_DENIED.
 * - `syncChanges`: what changed since a point of this process's change sequence (sync-feed.ts),
 *   or everything (`full`, with the handles of this HSM's tombstones: a key it does not list was
 *   not necessarily deleted, it may not have reached this HSM yet; and the names of the users
 *   deleteUser deleted here, user-tombstones.ts, for the same reason), with synchronisation digests
 *   (sync-digest.ts); a long poll when nothing changed yet.
 * - `syncExtract`: masked objects (the ExtractMaskedObject format, masked-objects.ts) of keys
 *   and users, with their digests.
 * - `syncApply`: on a replica, insert or replace each object and apply each deletion; one
 *   outcome each, with a stable code when refused (below). Every part is atomic and idempotent,
 *   so a retry after a crash or a cut neither duplicates nor half-writes anything. Users are
 *   applied first, then keys (a key's owner may come in the same call), then key deletions, then
 *   user deletions (a user's keys go before it). Each group is one durable write.
 * - `setSyncRole`: the trust anchor's signed, versioned, durable role (sync-role.ts).
 * - `peerSyncApply`: what syncApply applied, passed on to the other HSMs of the replica cluster
 *   (replication.ts, `syncApplied`): in-cluster key replication carries new keys and deletions
 *   but never replaces a key a peer holds, nor carries users. It is sent in order, to the peers
 *   linked at the time; one that was away is repaired by the task's next diff.
 *
 * How syncApply places what it gets:
 * - a user is matched by *name* (user ids may differ between clusters): present, it is replaced
 *   (type, credentials, 2FA/quorum key, lockout state) keeping its id here; absent, it is added
 *   with the next free id (STORAGE_REFUSED when the HSM holds `usersMax` users);
 * - a key keeps its handle. Its owner and sharing users travel by name (the masked key names
 *   them) and are mapped to this HSM's ids: one missing here is OWNER_MISSING. The handle free:
 *   the key is added (STORAGE_REFUSED past `keysMax`) and replicated to the peers like a new key;
 *   held by the same key (class, type, material): replaced (attributes, owner, shares); held by
 *   another key, or deleted here (handles are never reused, and the peers would delete it again),
 *   or by a session key: HANDLE_TAKEN;
 * - deleting an absent key or user is ok; a key is tombstoned (and the peers told); a user that
 *   still owns keys here is USER_OWNS_KEYS. Sessions of a deleted user are logged out.
 * - a blob of another lineage: LINEAGE_REFUSED; one that fails authentication or is no key or
 *   user: INVALID_OBJECT; a disk that is full: STORAGE_REFUSED; not a replica: NOT_A_REPLICA.
 */
import { Attribute, ReturnCode, WireError } from '@hsmlab/protocol'
import type { OperationResult, SyncExtractedObject, SyncOutcome, SyncResource } from '@hsmlab/protocol'
import { readMaskedObjectHeader } from '@hsmlab/crypto'
import { STORE_ERR_NO_SPACE } from '@hsmlab/store'
import type { Handler, HandlerTable, HsmContext, KeyRecord, Session, UserRecord } from '../context.js'
import { isTombstone } from '../context.js'
import { hsmDefaults } from '../defaults.js'
import { maskKey, maskUser, openMasked, readMaskedKey, readUserRecord } from '../masked-objects.js'
import type { MaskedKey } from '../masked-objects.js'
import { verifySyncHello, verifySyncRole } from '../provisioning.js'
import { endLogin } from '../session.js'
import { syncKeyDigest, syncUserDigest, userNameOf } from '../sync-digest.js'
import type { ResourceRef, SyncChangeFeed } from '../sync-feed.js'
import type { SyncRoleBook } from '../sync-role.js'

/** What the sync handlers need besides the context. */
export interface SyncHandlerDeps {
  feed: SyncChangeFeed
  roles: SyncRoleBook
  /** @default hsmDefaults.backupRequestSkewMsMax (5 minutes) */
  requestSkewMsMax?: number
  /** The clock, in milliseconds since the epoch. @default Date.now */
  now?: () => number
}

/** Outcome codes of syncApply (stable strings the control plane records as failure causes). */
export const SyncOutcomeCode = {
  HANDLE_TAKEN: 'HANDLE_TAKEN',
  OWNER_MISSING: 'OWNER_MISSING',
  LINEAGE_REFUSED: 'LINEAGE_REFUSED',
  STORAGE_REFUSED: 'STORAGE_REFUSED',
  NOT_A_REPLICA: 'NOT_A_REPLICA',
  INVALID_OBJECT: 'INVALID_OBJECT',
  USER_OWNS_KEYS: 'USER_OWNS_KEYS'
} as const

/** Users a synchronisation task carries: CO, CU and AU (not the PRECO or PCO of an unactivated cluster). */
function isSyncedUser (user: UserRecord): boolean {
  return user.userType === 'CO' || user.userType === 'CU' || user.userType === 'AU'
}

function requireSync (session: Session): void {
  if (session.sync !== true) {
    throw new WireError(ReturnCode.SYNC_UNAUTHENTICATED, 'this connection has not proved that it holds the trust anchor of this cluster (syncHello)')
  }
}

function keyResource (ctx: HsmContext, record: KeyRecord): SyncResource {
  return { kind: 'key', handle: record.handle, owner: userNameOf(ctx, record.owner) ?? '', digest: syncKeyDigest(ctx, record) }
}

function userResource (user: UserRecord): SyncResource {
  return { kind: 'user', name: user.userName, userType: user.userType, digest: syncUserDigest(user) }
}

/** Every live token key and every synchronised user, with digests. */
function everything (ctx: HsmContext): SyncResource[] {
  const resources: SyncResource[] = []
  for (const record of ctx.keys.values()) if (!isTombstone(record)) resources.push(keyResource(ctx, record))
  for (const user of ctx.users.values()) if (isSyncedUser(user)) resources.push(userResource(user))
  return resources
}

/**
 * The handles of every tombstone: what this HSM knows was deleted. The caller tells a deleted key
 * from one this HSM has not received yet (a peer made it while this HSM was away) by it, and must
 * not carry the second kind as a deletion: handles are never reused, so a deletion is for good.
 */
function deletedKeys (ctx: HsmContext): number[] {
  const handles: number[] = []
  for (const record of ctx.keys.values()) if (isTombstone(record)) handles.push(record.handle)
  return handles
}

/**
 * The names of the users deleteUser deleted here and that are not here now (user-tombstones.ts):
 * the only user deletions a caller may carry. Users are not replicated inside a cluster, so a
 * user absent from a full answer and not listed here is one this HSM never received.
 */
function deletedUsers (ctx: HsmContext): string[] {
  const names = ctx.userTombstones?.names() ?? []
  if (names.length === 0) return []
  const present = usersByName(ctx)
  return names.filter(name => !present.has(name.toLowerCase()))
}

/** The resources as they are now: live ones with their digest, deleted ones with digest null. */
function current (ctx: HsmContext, refs: ResourceRef[]): SyncResource[] {
  let byName: Map<string, UserRecord> | undefined
  const resources: SyncResource[] = []
  for (const ref of refs) {
    if (ref.kind === 'key') {
      const record = ctx.keys.get(ref.handle)
      // Digest null only for a tombstone (a deletion); a handle this HSM holds nothing at says nothing.
      if (record === undefined) continue
      resources.push(isTombstone(record) ? { kind: 'key', handle: ref.handle, owner: ref.owner, digest: null } : keyResource(ctx, record))
      continue
    }
    byName ??= new Map([...ctx.users.values()].map(u => [u.userName.toLowerCase(), u]))
    const user = byName.get(ref.name.toLowerCase())
    if (user !== undefined) {
      if (isSyncedUser(user)) resources.push(userResource(user))
    } else if (ref.userType === 'CO' || ref.userType === 'CU' || ref.userType === 'AU') {
      resources.push({ kind: 'user', name: ref.name, userType: ref.userType, digest: null })
    }
  }
  return resources
}

/** This HSM's users by lowercase name: one scan for a whole batch (user-handlers' findUserByName scans per call). */
function usersByName (ctx: HsmContext): Map<string, UserRecord> {
  return new Map([...ctx.users.values()].map(u => [u.userName.toLowerCase(), u]))
}

/**
 * What a blob names itself in its clear header (`key 6`, `user alice`), for the outcome of one
 * that is refused before it is opened: a hint for the caller, not authenticated.
 */
function namedBy (blob: Uint8Array): Pick<SyncOutcome, 'kind' | 'handle' | 'name'> {
  try {
    const { kind, name } = readMaskedObjectHeader(blob)
    const rest = name.slice(name.indexOf(' ') + 1)
    if (kind === 'user') return { kind, name: rest }
    const handle = Number(rest)
    return Number.isSafeInteger(handle) ? { kind, handle } : { kind }
  } catch {
    return { kind: 'key' }
  }
}

function refusal (code: string, message: string): { ok: false, code: string, message: string } {
  return { ok: false, code, message }
}

/** The outcome code of an error thrown while applying: full disk and limits are STORAGE_REFUSED. */
function storageRefusal (err: unknown): { ok: false, code: string, message: string } | undefined {
  if ((err as { code?: unknown }).code === STORE_ERR_NO_SPACE) {
    return refusal(SyncOutcomeCode.STORAGE_REFUSED, 'the file system of the HSM\'s data directory is full; nothing was changed')
  }
  if (err instanceof WireError && (err.status === ReturnCode.KEY_LIMIT.code || err.status === ReturnCode.USER_LIMIT.code || err.status === ReturnCode.STORAGE_FULL.code)) {
    return refusal(SyncOutcomeCode.STORAGE_REFUSED, err.message)
  }
  return undefined
}

/** One opened object of a syncApply, with the index of its outcome. */
type Opened =
  | { index: number, kind: 'user', user: UserRecord }
  | { index: number, kind: 'key', masked: MaskedKey }

/** Maps a masked key's owner and sharing users, by name, to this HSM's users; an outcome when one is missing. */
function localKey (ctx: HsmContext, byName: ReadonlyMap<string, UserRecord>, { record, users }: MaskedKey): KeyRecord | SyncOutcome {
  const names = new Map(users.map(u => [u.userId, u.userName]))
  const local = (userId: number, role: string): number | SyncOutcome => {
    const name = names.get(userId)
    if (name === undefined) {
      return { kind: 'key', handle: record.handle, ...refusal(SyncOutcomeCode.OWNER_MISSING, `the primary does not name the ${role} (user ${userId}) of key ${record.handle}`) }
    }
    const here = byName.get(name.toLowerCase())
    if (here === undefined) {
      return { kind: 'key', handle: record.handle, ...refusal(SyncOutcomeCode.OWNER_MISSING, `the ${role} of key ${record.handle}, ${name}, is not a user of cluster ${ctx.identity.clusterId}`) }
    }
    return here.userId
  }
  const owner = local(record.owner, 'owner')
  if (typeof owner !== 'number') return owner
  const sharedWith: number[] = []
  for (const userId of record.sharedWith) {
    // A user the primary itself no longer knows is left out, as its digest leaves it out.
    if (!names.has(userId)) continue
    const id = local(userId, 'shared user')
    if (typeof id !== 'number') return id
    sharedWith.push(id)
  }
  return { ...record, owner, sharedWith: sharedWith.sort((a, b) => a - b) }
}

function sameKey (a: KeyRecord, b: KeyRecord): boolean {
  return a.keyClass === b.keyClass && a.keyType === b.keyType && Buffer.compare(a.material, b.material) === 0
}

/** The sync handlers. */
export function createSyncHandlers (deps: SyncHandlerDeps): HandlerTable {
  const skewMsMax = deps.requestSkewMsMax ?? hsmDefaults.backupRequestSkewMsMax
  const now = deps.now ?? Date.now
  const { feed, roles } = deps

  const syncHello: Handler<'syncHello'> = async (ctx, session, { requestedAtMs, signature }) => {
    const { identity } = ctx
    if (!verifySyncHello(identity.anchorPublicKey, identity.hsmId, requestedAtMs, signature)) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `the sync hello is not signed by the trust anchor of cluster ${identity.clusterId} for ${identity.hsmId} at ${requestedAtMs}`)
    }
    const nowMs = now()
    const skewMs = Math.abs(nowMs - requestedAtMs)
    if (skewMs > skewMsMax) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `the sync hello was signed for time ${requestedAtMs} (ms since the epoch), ${skewMs} ms away from this HSM's clock (${nowMs}); at most ${skewMsMax} ms are allowed: sign a new one, and check the clocks`)
    }
    session.sync = true
    return { hsmId: identity.hsmId, clusterId: identity.clusterId, lineage: identity.lineage }
  }

  const syncChanges: Handler<'syncChanges'> = async (ctx, session, { epoch, sinceSeq, waitMs }) => {
    requireSync(session)
    const full = (): OperationResult<'syncChanges'> => ({ epoch: feed.epoch, seq: feed.seq, full: true, resources: everything(ctx), deletedKeys: deletedKeys(ctx), deletedUsers: deletedUsers(ctx) })
    if (epoch !== feed.epoch || sinceSeq === undefined) return full()
    let refs = feed.since(sinceSeq)
    if (refs === undefined) return full()
    if (refs.length === 0 && waitMs !== undefined && waitMs > 0) {
      await feed.wait(waitMs)
      refs = feed.since(sinceSeq)
      if (refs === undefined) return full()
    }
    return { epoch: feed.epoch, seq: feed.seq, full: false, resources: current(ctx, refs) }
  }

  const syncExtract: Handler<'syncExtract'> = async (ctx, session, { keys, users }) => {
    requireSync(session)
    const objects: SyncExtractedObject[] = []
    const byName = usersByName(ctx)
    for (const name of new Set(users.map(n => n.toLowerCase()))) {
      const user = byName.get(name)
      if (user === undefined) continue
      objects.push({ kind: 'user', name: user.userName, digest: syncUserDigest(user), blob: maskUser(ctx, user) })
    }
    for (const handle of new Set(keys)) {
      const record = ctx.keys.live(handle)
      if (record === undefined) continue
      objects.push({ kind: 'key', handle, digest: syncKeyDigest(ctx, record), blob: maskKey(ctx, record) })
    }
    return { objects }
  }

  /** Inserts or replaces users by name, in one durable write; outcomes by index. */
  const applyUsers = async (ctx: HsmContext, opened: Array<Extract<Opened, { kind: 'user' }>>, outcomes: SyncOutcome[]): Promise<void> => {
    if (opened.length === 0) return
    await ctx.runExclusive(async () => {
      const puts: UserRecord[] = []
      const placed: Array<{ index: number, user: UserRecord }> = []
      const byName = usersByName(ctx)
      let nextId = 0
      for (const u of ctx.users.values()) nextId = Math.max(nextId, u.userId)
      let count = ctx.users.size
      for (const { index, user } of opened) {
        const name = user.userName
        // Two objects of one name in a call: the later one wins, as a second call would.
        const here = byName.get(name.toLowerCase())
        let userId: number
        if (here !== undefined) {
          userId = here.userId
        } else if (count >= ctx.limits.usersMax) {
          outcomes[index] = { kind: 'user', name, ...refusal(SyncOutcomeCode.STORAGE_REFUSED, `this HSM holds ${count} users, the limit is ${ctx.limits.usersMax}`) }
          continue
        } else {
          userId = ++nextId
          count++
        }
        const record: UserRecord = { ...user, userId }
        if (record.publicKeyPem === undefined) delete record.publicKeyPem
        byName.set(name.toLowerCase(), record)
        puts.push(record)
        placed.push({ index, user: record })
      }
      if (puts.length === 0) return
      try {
        await ctx.users.apply(puts.map(value => ({ op: 'put' as const, id: String(value.userId), value })))
      } catch (err) {
        const refused = storageRefusal(err)
        if (refused === undefined) throw err
        for (const { index, user } of placed) outcomes[index] = { kind: 'user', name: user.userName, ...refused }
        return
      }
      for (const { index, user } of placed) {
        const stored = ctx.users.get(String(user.userId))
        outcomes[index] = { kind: 'user', name: user.userName, ok: true, digest: stored === undefined ? syncUserDigest(user) : syncUserDigest(stored) }
      }
    })
  }

  /** Inserts or replaces keys at their handles, in one durable write; outcomes by index. */
  const applyKeys = async (ctx: HsmContext, opened: Array<Extract<Opened, { kind: 'key' }>>, outcomes: SyncOutcome[], replicate: boolean): Promise<void> => {
    const candidates: Array<{ index: number, record: KeyRecord }> = []
    const byName = usersByName(ctx)
    for (const { index, masked } of opened) {
      const handle = masked.record.handle
      if (masked.record.attributes[Attribute.TOKEN] !== 1) {
        outcomes[index] = { kind: 'key', handle, ...refusal(SyncOutcomeCode.INVALID_OBJECT, `the masked key ${handle} is not a token key`) }
        continue
      }
      const local = localKey(ctx, byName, masked)
      if ('ok' in local) outcomes[index] = local
      else candidates.push({ index, record: local })
    }
    if (candidates.length === 0) return
    const created: KeyRecord[] = []
    await ctx.keys.withLocks(candidates.map(c => c.record.handle), async () => {
      const puts = new Map<number, { indexes: number[], record: KeyRecord, fresh: boolean }>()
      const releases: Array<() => void> = []
      const unchanged: Array<{ index: number, handle: number }> = []
      // The key limit is counted once for the batch (a count scans the whole table: once per key
      // was quadratic in a batch of new keys), and the places taken reserved together below,
      // before anything is awaited: nothing else can reserve in between.
      let free: number | undefined
      let placed = 0
      try {
        for (const { index, record } of candidates) {
          const { handle } = record
          const pending = puts.get(handle)
          const existing = pending?.record ?? ctx.keys.get(handle)
          if (existing !== undefined && isTombstone(existing)) {
            outcomes[index] = { kind: 'key', handle, ...refusal(SyncOutcomeCode.HANDLE_TAKEN, `handle ${handle} was deleted on cluster ${ctx.identity.clusterId}, and handles are never reused there`) }
          } else if (existing !== undefined && !sameKey(existing, record)) {
            outcomes[index] = { kind: 'key', handle, ...refusal(SyncOutcomeCode.HANDLE_TAKEN, `handle ${handle} holds a different key on cluster ${ctx.identity.clusterId}`) }
          } else if (existing === undefined && ctx.keys.inUse(handle, true)) {
            outcomes[index] = { kind: 'key', handle, ...refusal(SyncOutcomeCode.HANDLE_TAKEN, `handle ${handle} is held by a session key or a key being created on ${ctx.identity.hsmId}`) }
          } else if (existing !== undefined && pending === undefined && syncKeyDigest(ctx, existing) === syncKeyDigest(ctx, record)) {
            unchanged.push({ index, handle }) // a repeat: nothing to write
          } else {
            let fresh = pending?.fresh ?? false
            if (existing === undefined) {
              free ??= ctx.keys.freeSlots()
              if (free < 1) {
                outcomes[index] = { kind: 'key', handle, ...refusal(SyncOutcomeCode.STORAGE_REFUSED, `this HSM holds ${ctx.limits.keysMax - free} token keys, the limit is ${ctx.limits.keysMax}`) }
                continue
              }
              free--
              placed++
              fresh = true
            }
            puts.set(handle, { indexes: [...(pending?.indexes ?? []), index], record, fresh })
          }
        }
        if (placed > 0) releases.push(ctx.keys.reserveSlots(placed))
        if (puts.size > 0) {
          try {
            await ctx.keys.put([...puts.values()].map(p => p.record))
          } catch (err) {
            const refused = storageRefusal(err)
            if (refused === undefined) throw err
            for (const { indexes, record } of puts.values()) for (const index of indexes) outcomes[index] = { kind: 'key', handle: record.handle, ...refused }
            puts.clear()
          }
        }
      } finally {
        for (const release of releases) release()
      }
      for (const { indexes, record, fresh } of puts.values()) {
        const stored = ctx.keys.live(record.handle) ?? record
        for (const index of indexes) outcomes[index] = { kind: 'key', handle: record.handle, ok: true, digest: syncKeyDigest(ctx, stored) }
        if (fresh) created.push(stored)
      }
      for (const { index, handle } of unchanged) {
        const stored = ctx.keys.live(handle)
        outcomes[index] = stored === undefined
          ? { kind: 'key', handle, ...refusal(SyncOutcomeCode.HANDLE_TAKEN, `handle ${handle} changed while it was applied; retry`) }
          : { kind: 'key', handle, ok: true, digest: syncKeyDigest(ctx, stored) }
      }
    })
    // New keys reach the other HSMs of this cluster by in-cluster replication, as any new key.
    if (replicate) for (const record of created) ctx.replicator.keyCreated(record, 1, hsmDefaults.keySyncTimeoutMs).catch(() => { /* the replicator logs; anti-entropy retries */ })
  }

  const deleteKeys = async (ctx: HsmContext, handles: number[], outcomes: SyncOutcome[], offset: number): Promise<void> => {
    if (handles.length === 0) return
    const unique = [...new Set(handles)]
    let tombstoned: number[] = []
    await ctx.keys.withLocks(unique, async () => {
      const fresh = unique.filter(handle => {
        const record = ctx.keys.get(handle)
        return record === undefined || !isTombstone(record)
      })
      try {
        if (fresh.length > 0) await ctx.keys.tombstone(fresh)
        tombstoned = fresh
      } catch (err) {
        const refused = storageRefusal(err)
        if (refused === undefined) throw err
        handles.forEach((handle, i) => { outcomes[offset + i] = { kind: 'key', handle, ...refused } })
      }
    })
    handles.forEach((handle, i) => { outcomes[offset + i] ??= { kind: 'key', handle, ok: true } })
    for (const handle of tombstoned) ctx.replicator.keyDeleted(handle)
  }

  const deleteUsers = async (ctx: HsmContext, names: string[], outcomes: SyncOutcome[], offset: number): Promise<void> => {
    if (names.length === 0) return
    await ctx.runExclusive(async () => {
      const gone: UserRecord[] = []
      const byName = usersByName(ctx)
      const owned = new Map<number, number>()
      for (const key of ctx.keys.values()) if (!isTombstone(key)) owned.set(key.owner, (owned.get(key.owner) ?? 0) + 1)
      names.forEach((name, i) => {
        const user = byName.get(name.toLowerCase())
        if (user === undefined || gone.includes(user)) return
        const count = owned.get(user.userId) ?? 0
        if (count > 0) {
          outcomes[offset + i] = { kind: 'user', name, ...refusal(SyncOutcomeCode.USER_OWNS_KEYS, `${user.userName} owns ${count} key(s) on cluster ${ctx.identity.clusterId}; delete them first`) }
          return
        }
        gone.push(user)
      })
      if (gone.length > 0) {
        try {
          await ctx.users.apply(gone.map(user => ({ op: 'delete' as const, id: String(user.userId) })))
        } catch (err) {
          const refused = storageRefusal(err)
          if (refused === undefined) throw err
          names.forEach((name, i) => { outcomes[offset + i] ??= { kind: 'user', name, ...refused } })
          return
        }
        // The primary deleted them: their sessions here end as well.
        for (const session of ctx.sessions) if (session.user !== undefined && gone.some(u => u.userId === session.user?.userId)) endLogin(session)
      }
    })
    names.forEach((name, i) => { outcomes[offset + i] ??= { kind: 'user', name, ok: true } })
  }

  /**
   * Applies objects and deletions here, one outcome each. From a client of syncApply (`fromPeer`
   * false) new keys and deletions are replicated to the peers by key replication; from a peer
   * (peerSyncApply) they are not sent on again.
   */
  const applyAll = async (ctx: HsmContext, objects: Uint8Array[], keyDeletes: number[], userDeletes: string[], fromPeer: boolean): Promise<SyncOutcome[]> => {
    const outcomes: SyncOutcome[] = new Array<SyncOutcome>(objects.length + keyDeletes.length + userDeletes.length)
    const users: Array<Extract<Opened, { kind: 'user' }>> = []
    const keys: Array<Extract<Opened, { kind: 'key' }>> = []
    objects.forEach((blob, index) => {
      try {
        const { kind, payload } = openMasked(ctx, blob)
        if (kind === 'user') users.push({ index, kind, user: readUserRecord(payload.user) })
        else keys.push({ index, kind, masked: readMaskedKey(payload) })
      } catch (err) {
        const lineage = err instanceof WireError && err.status === ReturnCode.MASKED_OBJECT_LINEAGE.code
        outcomes[index] = lineage
          ? { ...namedBy(blob), ...refusal(SyncOutcomeCode.LINEAGE_REFUSED, `${(err as Error).message}; cluster ${ctx.identity.clusterId} is of lineage ${ctx.identity.lineage}`) }
          : { ...namedBy(blob), ...refusal(SyncOutcomeCode.INVALID_OBJECT, (err as Error).message) }
      }
    })
    await applyUsers(ctx, users, outcomes)
    await applyKeys(ctx, keys, outcomes, !fromPeer)
    await deleteKeys(ctx, keyDeletes, outcomes, objects.length)
    await deleteUsers(ctx, userDeletes, outcomes, objects.length + keyDeletes.length)
    return outcomes
  }

  const syncApply: Handler<'syncApply'> = async (ctx, session, { objects, deleteKeys: keyDeletes, deleteUsers: userDeletes }) => {
    requireSync(session)
    const role = roles.current()
    if (role.role !== 'replica') {
      const refused = refusal(SyncOutcomeCode.NOT_A_REPLICA, `cluster ${ctx.identity.clusterId} is not a replica of a synchronisation task (its role is '${role.role}')`)
      const outcomes: SyncOutcome[] = [
        ...objects.map((blob): SyncOutcome => ({ ...namedBy(blob), ...refused })),
        ...keyDeletes.map((handle): SyncOutcome => ({ kind: 'key', handle, ...refused })),
        ...userDeletes.map((name): SyncOutcome => ({ kind: 'user', name, ...refused }))
      ]
      return { outcomes }
    }
    const outcomes = await applyAll(ctx, objects, keyDeletes, userDeletes, false)
    // Users and replaced keys reach the other HSMs of this cluster this way (key replication
    // carries only new keys and deletions); each is idempotent there too.
    const applied = objects.filter((_, i) => outcomes[i]?.ok === true)
    const deletedUsers = userDeletes.filter((_, i) => outcomes[objects.length + keyDeletes.length + i]?.ok === true)
    ctx.replicator.syncApplied?.(applied, deletedUsers)
    return { outcomes }
  }

  const peerSyncApply: Handler<'peerSyncApply'> = async (ctx, session, { objects, deleteUsers: userDeletes }) => {
    if (session.peer === undefined) {
      throw new WireError(ReturnCode.PEER_UNAUTHENTICATED, 'this connection has not proved that it is an HSM of this cluster (peerHello)')
    }
    await applyAll(ctx, objects, [], userDeletes, true)
    return {}
  }

  const setSyncRole: Handler<'setSyncRole'> = async (ctx, _session, { role, primaryClusterId, version, signature }) => {
    const { identity } = ctx
    if (!verifySyncRole(identity.anchorPublicKey, identity.hsmId, role, primaryClusterId, version, signature)) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `the sync role is not signed by the trust anchor of cluster ${identity.clusterId} for ${identity.hsmId}`)
    }
    await ctx.runExclusive(async () => { await roles.set(role, primaryClusterId, version, signature) })
    return {}
  }

  return { syncHello, syncChanges, syncExtract, syncApply, peerSyncApply, setSyncRole }
}
