/**
 * Who may do what (reference B.1): the checks every handler starts with. Handlers call
 * `requireUser(session, 'CU')` and get the logged-in user back, or a `WireError` with
 * RET_NOT_LOGGED_IN / RET_PERMISSION_DENIED.
 */
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { OperationName, UserType } from '@hsmlab/protocol'
import type { HsmContext, Session } from './context.js'
import type { SessionUser } from './session.js'

/** CO and PCO: "A PCO is functionally identical to a CO user." */
export function isCryptoOfficer (type: UserType): boolean {
  return type === 'CO' || type === 'PCO'
}

/** True when a user of type `actual` answers to `wanted` (CO and PCO answer to each other). */
export function userTypeMatches (wanted: UserType, actual: UserType): boolean {
  return wanted === actual || (isCryptoOfficer(wanted) && isCryptoOfficer(actual))
}

/**
 * The user logged in on `session`, if one of `types` is theirs (any type when none is given).
 * `'CO'` also admits a PCO and `'PCO'` a CO; PRECO is admitted only when listed. Throws
 * RET_NOT_LOGGED_IN without a login, RET_PERMISSION_DENIED for another type.
 */
export function requireUser (session: Session, ...types: UserType[]): SessionUser {
  const user = session.user
  if (user === undefined) throw new WireError(ReturnCode.NOT_LOGGED_IN)
  if (types.length > 0 && !types.some(t => userTypeMatches(t, user.userType))) {
    throw new WireError(ReturnCode.PERMISSION_DENIED, `${user.userName} is a ${user.userType}; this needs ${types.join(' or ')}`)
  }
  return user
}

/** True when the user is logged in on any open session (other than `except`). */
export function isLoggedInAnywhere (ctx: HsmContext, userId: number, except?: Session): boolean {
  for (const s of ctx.sessions) {
    if (s !== except && s.user?.userId === userId) return true
  }
  return false
}

/**
 * What a PRECO may do (reference B.1: "Can only change its own password and do read-only
 * operations"); changePassword checks "own" itself. Everything else is refused before its handler runs.
 */
export const PRECO_OPERATIONS: ReadonlySet<OperationName> = new Set<OperationName>([
  'login', 'logout', 'listUsers', 'getHsmInfo', 'getCertificate', 'changePassword', 'findAllKeys', 'getKeyInfo', 'getAttribute'
])

/** Throws RET_PERMISSION_DENIED when a PRECO is logged in on `session` and `op` is not in `PRECO_OPERATIONS`. */
export function checkPrecoRestriction (session: Session, op: OperationName): void {
  if (session.user?.userType === 'PRECO' && !PRECO_OPERATIONS.has(op)) {
    throw new WireError(ReturnCode.PERMISSION_DENIED, `a PRECO may only change its own password (activating the cluster) and read; ${op} is not allowed`)
  }
}
