/**
 * CMU's user commands on one HSM (reference A.6, B.1, B.2): loginHSM, logoutHSM, listUsers,
 * createUser, deleteUser, changePswd.
 *
 * Every check that leads to a write runs inside `ctx.runExclusive`, so two connections cannot
 * both pass a check and both write; password hashing (the slow part) stays outside it. Return
 * codes:
 * - an unknown user name: RET_USER_NOT_FOUND (0x9d, "user with this name doesn't exist");
 * - a known name with another type than the one given (loginHSM CU admin when admin is a CO,
 *   deleteUser CU officer1): RET_USER_DOESNT_EXIST (0xce, "This user doesn't exist"), the code the
 *   real tool returns when a CO is used where a CU is expected (reference E). CO and PCO answer to
 *   each other; PRECO only to PRECO.
 */
import { bytesEqual, hashPassword, verifyPassword } from '@hsmlab/crypto'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { TwoFactorResponse, UserInfo, UserType } from '@hsmlab/protocol'
import type { Handler, HandlerTable, HsmContext, Session, UserRecord } from '../context.js'
import { isTombstone } from '../context.js'
import { hsmDefaults } from '../defaults.js'
import { isCryptoOfficer, isLoggedInAnywhere, requireUser, userTypeMatches } from '../permissions.js'
import { readRsa2048PublicKey } from '../quorum-table.js'
import type { QuorumTable } from '../quorum-table.js'
import { endLogin } from '../session.js'
import { refuseClientChange } from '../sync-role.js'

/** Options of `createUserHandlers`. */
export interface UserHandlerOptions {
  /** scrypt cost of new password verifiers. @default hsmDefaults.passwordHashCost */
  passwordHashCost?: number
  /**
   * Quorum settings and 2FA challenges: with them, user management (service 3) needs an approved
   * token once its M value is above 1, and `-2fa` is checked. Without them, neither is.
   */
  quorum?: QuorumTable
}

/** Service 3 of quorum authentication: creating and deleting users, changing another user's password. */
const USER_MGMT = 3

const USER_NAME = /^[A-Za-z0-9_]{1,31}$/
const PASSWORD_LENGTH_MIN = 7
const PASSWORD_LENGTH_MAX = 32

/** The user named `name` (names compare case-insensitively). */
export function findUserByName (ctx: HsmContext, name: string): UserRecord | undefined {
  const wanted = name.toLowerCase()
  for (const user of ctx.users.values()) {
    if (user.userName.toLowerCase() === wanted) return user
  }
  return undefined
}

/** listUsers' row for a user. */
export function userInfo (user: UserRecord): UserInfo {
  return {
    userId: user.userId,
    userType: user.userType,
    userName: user.userName,
    mofnPubKey: user.mofnPubKey,
    loginFailureCount: user.loginFailureCount,
    twoFactor: user.twoFactor
  }
}

function checkPassword (password: string): void {
  if (password.length < PASSWORD_LENGTH_MIN || password.length > PASSWORD_LENGTH_MAX) {
    throw new WireError(ReturnCode.INVALID_PASSWORD, `the password has ${password.length} characters`)
  }
}

function findTarget (ctx: HsmContext, userType: UserType, userName: string): UserRecord {
  const user = findUserByName(ctx, userName)
  if (user === undefined) throw new WireError(ReturnCode.USER_NOT_FOUND, `no user named ${userName}`)
  if (!userTypeMatches(userType, user.userType)) {
    throw new WireError(ReturnCode.USER_DOES_NOT_EXIST, `${user.userName} is a ${user.userType}, not a ${userType}`)
  }
  return user
}

async function putUser (ctx: HsmContext, user: UserRecord): Promise<void> {
  await ctx.users.apply([{ op: 'put', id: String(user.userId), value: user }])
}

/** The user handlers; `passwordHashCost` sets the cost of verifiers made by createUser and changePassword. */
export function createUserHandlers (options: UserHandlerOptions = {}): HandlerTable {
  const cost = options.passwordHashCost ?? hsmDefaults.passwordHashCost
  const quorum = options.quorum
  const authorize = (session: Session): () => void => quorum?.authorize(session, USER_MGMT) ?? (() => {})
  /** The key a `-2fa` answer registers, once its signature of this session's challenge checked out. */
  const secondFactorKey = (session: Session, twoFactor: TwoFactorResponse | undefined): string | undefined => {
    if (twoFactor === undefined || quorum === undefined) return undefined
    const pem = twoFactor.publicKeyPem
    if (typeof pem !== 'string' || !(twoFactor.signature instanceof Uint8Array)) throw new WireError(ReturnCode.INVALID_INPUT, '-2fa needs a public key and a signature')
    readRsa2048PublicKey(pem)
    quorum.checkSecondFactor(session.id, pem, twoFactor.signature)
    return pem
  }

  const login: Handler<'login'> = async (ctx, session, args) => {
    const { userType, userName, password } = args
    if (session.user !== undefined) {
      throw new WireError(ReturnCode.ALREADY_LOGGED_IN, `${session.user.userName} is logged in on this session; log out first`)
    }
    const seen = findTarget(ctx, userType, userName)
    const max = ctx.limits.loginFailuresMax
    if (seen.loginFailureCount >= max) throw new WireError(ReturnCode.USER_LOCKED_OUT, `${seen.userName} failed to log in ${seen.loginFailureCount} times`)
    const matched = await verifyPassword(password, seen.password)
    return await ctx.runExclusive(async () => {
      // Re-read: the user may have changed while the password was being checked.
      const user = ctx.users.get(String(seen.userId))
      if (user === undefined || user.userName.toLowerCase() !== seen.userName.toLowerCase()) {
        throw new WireError(ReturnCode.USER_NOT_FOUND, `no user named ${userName}`)
      }
      if (!userTypeMatches(userType, user.userType)) {
        throw new WireError(ReturnCode.USER_DOES_NOT_EXIST, `${user.userName} is a ${user.userType}, not a ${userType}`)
      }
      if (session.user !== undefined) throw new WireError(ReturnCode.ALREADY_LOGGED_IN, `${session.user.userName} is logged in on this session; log out first`)
      if (user.loginFailureCount >= max) throw new WireError(ReturnCode.USER_LOCKED_OUT, `${user.userName} failed to log in ${user.loginFailureCount} times`)
      const ok = bytesEqual(user.password.salt, seen.password.salt) ? matched : await verifyPassword(password, user.password)
      if (ok && user.twoFactor && quorum !== undefined) {
        // The second factor; given for a user without 2FA, it is ignored (manage-2fa.md).
        const signature = args.twoFactor?.signature
        if (!(signature instanceof Uint8Array)) throw new WireError(ReturnCode.TWO_FACTOR_REQUIRED, `${user.userName} has 2FA: log in with -2fa`)
        quorum.checkSecondFactor(session.id, user.publicKeyPem ?? '', signature)
      }
      if (!ok) {
        // Durable before the answer: a crash cannot hand back a failed attempt.
        await putUser(ctx, { ...user, loginFailureCount: user.loginFailureCount + 1 })
        throw new WireError(ReturnCode.USER_LOGIN_FAILURE, `wrong password for ${user.userName} (failed attempt ${user.loginFailureCount + 1} of ${max})`)
      }
      if (user.loginFailureCount !== 0) await putUser(ctx, { ...user, loginFailureCount: 0 })
      session.user = { userId: user.userId, userType: user.userType, userName: user.userName }
      return { userId: user.userId, userType: user.userType }
    })
  }

  const logout: Handler<'logout'> = async (_ctx, session) => {
    requireUser(session)
    endLogin(session)
    // A quorum token is valid for the login session that asked for it: the next user to log in
    // on this connection must not find (and spend) it.
    quorum?.endSession(session.id)
    return {}
  }

  const listUsers: Handler<'listUsers'> = async (ctx) => {
    const users = [...ctx.users.values()].sort((a, b) => a.userId - b.userId).map(userInfo)
    return { users }
  }

  const createUser: Handler<'createUser'> = async (ctx, session, args) => {
    requireUser(session, 'CO')
    refuseClientChange(ctx, `creating user ${args.userName}`)
    // "PCO, PRECO, and preCO are also valid values, but they are rarely used": we take PCO as CO.
    const userType: UserType | undefined = isCryptoOfficer(args.userType) ? 'CO' : args.userType === 'CU' ? 'CU' : undefined
    if (userType === undefined) throw new WireError(ReturnCode.INVALID_USER_TYPE, `createUser makes CO or CU users, not ${args.userType}`)
    if (!USER_NAME.test(args.userName)) throw new WireError(ReturnCode.INVALID_USER_NAME, `'${args.userName}' is not a valid user name`)
    checkPassword(args.password)
    const exists = (): void => {
      const other = findUserByName(ctx, args.userName)
      if (other !== undefined) throw new WireError(ReturnCode.USER_ALREADY_EXISTS, `user ${other.userName} (${other.userType}) already exists with id ${other.userId}`)
    }
    exists()
    if (args.twoFactor !== undefined && userType !== 'CO') throw new WireError(ReturnCode.INVALID_USER_TYPE, '2FA is for crypto officers only')
    const publicKeyPem = secondFactorKey(session, args.twoFactor)
    const password = await hashPassword(args.password, cost)
    return await ctx.runExclusive(async () => {
      requireUser(session, 'CO')
      exists()
      const useToken = authorize(session)
      if (ctx.users.size >= ctx.limits.usersMax) throw new WireError(ReturnCode.USER_LIMIT, `this HSM holds ${ctx.users.size} users, the limit is ${ctx.limits.usersMax}`)
      let maxId = 0
      for (const u of ctx.users.values()) maxId = Math.max(maxId, u.userId)
      const user: UserRecord = { userId: maxId + 1, userType, userName: args.userName, password, loginFailureCount: 0, mofnPubKey: false, twoFactor: false }
      // A 2FA user is also registered for quorum: one key for both (manage-2fa.md).
      if (publicKeyPem !== undefined) Object.assign(user, { mofnPubKey: true, twoFactor: true, publicKeyPem })
      await putUser(ctx, user)
      await ctx.userTombstones?.created(user.userName)
      useToken()
      return { userId: user.userId }
    })
  }

  const deleteUser: Handler<'deleteUser'> = async (ctx, session, args) => {
    requireUser(session, 'CO')
    refuseClientChange(ctx, `deleting user ${args.userName}`)
    if (!isCryptoOfficer(args.userType) && args.userType !== 'CU') {
      throw new WireError(ReturnCode.INVALID_USER_TYPE, `deleteUser deletes CO or CU users, not ${args.userType}`)
    }
    return await ctx.runExclusive(async () => {
      requireUser(session, 'CO')
      const target = findTarget(ctx, args.userType, args.userName)
      if (isLoggedInAnywhere(ctx, target.userId)) {
        throw new WireError(ReturnCode.USER_LOGGED_IN, `${target.userName} is logged in on this HSM; a user cannot be deleted while logged in`)
      }
      if (target.userType === 'CU') {
        let owned = 0
        for (const key of ctx.keys.values()) if (!isTombstone(key) && key.owner === target.userId) owned++
        if (owned > 0) throw new WireError(ReturnCode.USER_OWNS_KEYS, `${target.userName} owns ${owned} key(s); delete them first`)
      } else {
        let officers = 0
        for (const u of ctx.users.values()) if (isCryptoOfficer(u.userType)) officers++
        if (officers <= 1) throw new WireError(ReturnCode.PERMISSION_DENIED, `${target.userName} is the last crypto officer of this HSM`)
      }
      const useToken = authorize(session)
      // First the tombstone: a crash between the two leaves the user (present wins), never a
      // deletion without one, which a synchronisation task would not carry (user-tombstones.ts).
      await ctx.userTombstones?.deleting(target)
      await ctx.users.apply([{ op: 'delete', id: String(target.userId) }])
      useToken()
      return {}
    })
  }

  const changePassword: Handler<'changePassword'> = async (ctx, session, args) => {
    requireUser(session)
    // Even one's own: a password changed on a replica would differ from the primary's.
    refuseClientChange(ctx, `changing the password of ${args.userName}`)
    checkPassword(args.password)
    const publicKeyPem = secondFactorKey(session, args.twoFactor)
    const password = await hashPassword(args.password, cost)
    return await ctx.runExclusive(async () => {
      const actor = requireUser(session)
      const target = findTarget(ctx, args.userType, args.userName)
      const self = target.userId === actor.userId
      if (!self) {
        if (!isCryptoOfficer(actor.userType)) {
          throw new WireError(ReturnCode.PERMISSION_DENIED, `a ${actor.userType} may change only its own password`)
        }
        if (isLoggedInAnywhere(ctx, target.userId)) {
          throw new WireError(ReturnCode.USER_LOGGED_IN, `${target.userName} is logged in on this HSM; its password cannot be changed now`)
        }
      }
      // Another user's password is user management (service 3).
      const useToken = self ? () => {} : authorize(session)
      // A PRECO changing its own password activates the cluster and becomes a CO (reference B.1).
      const userType: UserType = self && target.userType === 'PRECO' ? 'CO' : target.userType
      if (publicKeyPem !== undefined && !isCryptoOfficer(userType)) throw new WireError(ReturnCode.INVALID_USER_TYPE, '2FA is for crypto officers only')
      // With -2fa the key is set or rotated; without it a 2FA user loses 2FA, and with it the
      // quorum registration of the same key (manage-2fa.md, "Quorum authentication and 2FA").
      const keys: Partial<UserRecord> = publicKeyPem !== undefined
        ? { twoFactor: true, mofnPubKey: true, publicKeyPem }
        : target.twoFactor ? { twoFactor: false, mofnPubKey: false, publicKeyPem: undefined } : {}
      // A reset by a CO is also how a locked-out user is unlocked (reference B.2).
      const updated: UserRecord = { ...target, ...keys, userType, password, loginFailureCount: 0 }
      if (updated.publicKeyPem === undefined) delete updated.publicKeyPem
      await putUser(ctx, updated)
      useToken()
      if (self) session.user = { ...actor, userType }
      return { userType }
    })
  }

  return { login, logout, listUsers, createUser, deleteUser, changePassword }
}
