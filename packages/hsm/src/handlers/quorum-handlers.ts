/**
 * CMU's quorum (M of N) commands and the 2FA challenge on one HSM: registerQuorumPubKey,
 * getToken, approveToken, listTokens, getMValue, setMValue, and getChallenge (reference:
 * quorum-authentication-crypto-officers*.md, cloudhsm_mgmt_util-registerQuorumPubKey.md,
 * manage-2fa.md). The state lives in `QuorumTable`; user management's quorum check is in
 * user-handlers.ts, which takes the same table.
 *
 * Return codes: a signature that does not verify, an approver without a registered key, too few
 * approvals, or an operation needing a token without one: RET_MXN_AUTH_FAILED (0xe1, the guide's
 * code); a token file naming no live token of this session: RET_TOKEN_NOT_FOUND; a full table:
 * RET_TOKEN_LIMIT; an M value above the number of crypto officers: RET_INVALID_INPUT.
 */
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { QuorumApproval } from '@hsmlab/protocol'
import type { Handler, HandlerTable, HsmContext, UserRecord } from '../context.js'
import { isCryptoOfficer, requireUser, userTypeMatches } from '../permissions.js'
import { readRsa2048PublicKey, verifyRsaSha256 } from '../quorum-table.js'
import type { QuorumTable } from '../quorum-table.js'
import { refuseClientChange } from '../sync-role.js'
import { findUserByName } from './user-handlers.js'

/** The approval file's `Approver Type`: 2 for CO, 1 for CU. */
const APPROVER_TYPES: Readonly<Record<number, 'CO' | 'CU'>> = { 1: 'CU', 2: 'CO' }

function readApproval (value: unknown): QuorumApproval {
  const v = value as Record<string, unknown>
  if (typeof v.approverType !== 'number' || typeof v.approverName !== 'string' || !(v.signature instanceof Uint8Array) || v.signature.length > 1024) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'each approval needs approverType, approverName and signature')
  }
  return { approverType: v.approverType, approverName: v.approverName, signature: v.signature }
}

/** The approver named by `approval`, when its type matches and it has a registered key. */
function approverOf (ctx: HsmContext, approval: QuorumApproval): UserRecord & { publicKeyPem: string } {
  const type = APPROVER_TYPES[approval.approverType]
  const user = findUserByName(ctx, approval.approverName)
  if (type === undefined || user === undefined || !userTypeMatches(type, user.userType)) {
    throw new WireError(ReturnCode.MXN_AUTH_FAILED, `approver ${approval.approverName} (type ${approval.approverType}) is not a user of this HSM`)
  }
  if (user.publicKeyPem === undefined) throw new WireError(ReturnCode.MXN_AUTH_FAILED, `approver ${user.userName} has registered no quorum public key`)
  return { ...user, publicKeyPem: user.publicKeyPem }
}

/** The quorum handlers over `table`. */
export function createQuorumHandlers (table: QuorumTable): HandlerTable {
  const registerQuorumPubKey: Handler<'registerQuorumPubKey'> = async (ctx, session, args) => {
    requireUser(session, 'CO')
    refuseClientChange(ctx, `registering a quorum public key for ${args.userName}`)
    readRsa2048PublicKey(args.publicKeyPem)
    if (!verifyRsaSha256(args.publicKeyPem, args.token, args.signature)) {
      throw new WireError(ReturnCode.MXN_AUTH_FAILED, 'the signature of the registration token does not verify with the public key')
    }
    return await ctx.runExclusive(async () => {
      const actor = requireUser(session, 'CO')
      const user = findUserByName(ctx, args.userName)
      if (user === undefined) throw new WireError(ReturnCode.USER_NOT_FOUND, `no user named ${args.userName}`)
      if (!userTypeMatches(args.userType, user.userType)) throw new WireError(ReturnCode.USER_DOES_NOT_EXIST, `${user.userName} is a ${user.userType}, not a ${args.userType}`)
      if (user.userId !== actor.userId) throw new WireError(ReturnCode.PERMISSION_DENIED, 'a crypto officer registers its own quorum public key only')
      // "You can't rotate a quorum key for a user that has 2FA enabled using registerQuorumPubKey."
      if (user.twoFactor) throw new WireError(ReturnCode.POLICY_VIOLATION, `${user.userName} has 2FA: its key changes with changePswd -2fa`)
      const updated: UserRecord = { ...user, mofnPubKey: true, publicKeyPem: args.publicKeyPem }
      await ctx.users.apply([{ op: 'put', id: String(user.userId), value: updated }])
      return {}
    })
  }

  const getQuorumToken: Handler<'getQuorumToken'> = async (ctx, session, { service, userName }) => {
    const user = requireUser(session, 'CO')
    if (user.userName.toLowerCase() !== userName.toLowerCase()) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `a token is for the user logged in (${user.userName}), not ${userName}`)
    }
    return table.issue(session, service, ctx.identity.hsmId, ctx.identity.slot)
  }

  const approveQuorumToken: Handler<'approveQuorumToken'> = async (ctx, session, args) => {
    requireUser(session, 'CO')
    const approvals = args.approvals.map(readApproval)
    const token = table.find(session, args.tokenFile, ctx.identity.hsmId)
    const approvers: string[] = []
    for (const approval of approvals) {
      const approver = approverOf(ctx, approval)
      if (!verifyRsaSha256(approver.publicKeyPem, args.tokenFile, approval.signature)) {
        throw new WireError(ReturnCode.MXN_AUTH_FAILED, `the signature of ${approver.userName} does not verify with its registered key`)
      }
      approvers.push(approver.userName)
    }
    if (new Set(approvers.map(a => a.toLowerCase())).size < token.required) {
      throw new WireError(ReturnCode.MXN_AUTH_FAILED, `the token needs ${token.required} different approvers, ${approvers.length} signed`)
    }
    return { token: table.approve(token, approvers) }
  }

  const listQuorumTokens: Handler<'listQuorumTokens'> = async (_ctx, session) => {
    requireUser(session)
    return { tokens: table.list(session) }
  }

  const getMValue: Handler<'getMValue'> = async (_ctx, session, { service }) => {
    requireUser(session)
    return { mValue: table.mValue(service) }
  }

  const setMValue: Handler<'setMValue'> = async (ctx, session, { service, mValue }) => {
    requireUser(session, 'CO')
    return await ctx.runExclusive(async () => {
      requireUser(session, 'CO')
      let officers = 0
      for (const u of ctx.users.values()) if (isCryptoOfficer(u.userType)) officers++
      if (mValue > officers) throw new WireError(ReturnCode.INVALID_INPUT, `M cannot exceed the ${officers} crypto officers of this HSM`)
      // Changing an M value is service 4 (MISC_CO): it needs a token once service 4's M is above 1.
      const useToken = table.authorize(session, 4)
      await table.setMValue(service, mValue)
      useToken()
      return {}
    })
  }

  const getChallenge: Handler<'getChallenge'> = async (_ctx, session) => {
    return { digest: table.challenge(session.id) }
  }

  return { registerQuorumPubKey, getQuorumToken, approveQuorumToken, listQuorumTokens, getMValue, setMValue, getChallenge }
}
