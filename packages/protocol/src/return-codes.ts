/**
 * Return codes, as the real tools print them. The HSM puts one in every response; KMU prints
 * `Cfm3<Op> returned: 0x<code> : <message>` and CMU `<command> failed: <message>`.
 *
 * `documented: true` marks codes and texts taken from the AWS documentation or real-tool
 * transcripts (shared/reference/cloudhsm.md, section E); the others are hsmlab's own, with values
 * chosen away from the documented ones. docs/return-codes.md lists them all, and a test keeps the
 * two in step.
 */
export interface ReturnCodeInfo {
  code: number
  name: string
  message: string
  documented: boolean
}

function rc (code: number, name: string, message: string, documented: boolean): ReturnCodeInfo {
  return { code, name, message, documented }
}

/** Every return code by name. */
export const ReturnCode = {
  SUCCESS: rc(0x00, 'RET_OK', 'HSM Return: SUCCESS', true),
  BAD_PKCS_DATA: rc(0x1b, 'ERR_BAD_PKCS_DATA', 'CSP Error: ERR_BAD_PKCS_DATA', true),
  USER_NOT_FOUND: rc(0x9d, 'RET_USER_NOT_FOUND', "HSM Error: user isn't initialized or user with this name doesn't exist", true),
  USER_LOGIN_FAILURE: rc(0xa3, 'RET_USER_LOGIN_FAILURE', 'HSM Error: RET_USER_LOGIN_FAILURE', true),
  INVALID_HANDLE: rc(0xa8, 'RET_INVALID_HANDLE', 'HSM Error: Invalid object handle is passed to this operation', true),
  POLICY_VIOLATION: rc(0xb3, 'RET_POLICY_VIOLATION', 'HSM Error: This operation violates the current configured/FIPS policies', true),
  KEY_ACCESS_DENIED: rc(0xc6, 'RET_KEY_ACCESS_DENIED', 'HSM Error: Key Access is denied', true),
  USER_DOES_NOT_EXIST: rc(0xce, 'RET_USER_DOESNT_EXIST', "HSM Error: This user doesn't exist", true),
  INVALID_USER_TYPE: rc(0xdb, 'RET_INVALID_USER_TYPE', 'HSM Error: Invalid User Type.', true),
  MXN_AUTH_FAILED: rc(0xe1, 'RET_MXN_AUTH_FAILED', 'RET_MXN_AUTH_FAILED', true),
  CLUSTER_SERVER_UNAVAILABLE: rc(0x30000085, 'RET_CLUSTER_SERVER_UNAVAILABLE', 'HSM CLUSTER ERROR: Server in cluster is unavailable', true),

  INVALID_INPUT: rc(0x0d, 'RET_INVALID_INPUT', 'HSM Error: Invalid input data/params', true),
  USER_ALREADY_EXISTS: rc(0xd0, 'RET_USER_ALREADY_EXISTS', 'HSM Error: This user is already created', true),

  INVALID_FRAME: rc(0x0e, 'RET_INVALID_FRAME', 'HSM Error: The request frame could not be decoded', false),
  UNKNOWN_OPERATION: rc(0x0f, 'RET_UNKNOWN_OPERATION', 'HSM Error: Unknown operation', false),
  NOT_LOGGED_IN: rc(0x90, 'RET_NOT_LOGGED_IN', 'HSM Error: User is not logged in', false),
  ALREADY_LOGGED_IN: rc(0x91, 'RET_ALREADY_LOGGED_IN', 'HSM Error: A user is already logged in on this session', false),
  PERMISSION_DENIED: rc(0x92, 'RET_PERMISSION_DENIED', 'HSM Error: The logged in user type is not permitted to perform this operation', false),
  USER_LOCKED_OUT: rc(0x93, 'RET_USER_LOCKED_OUT', 'HSM Error: The user is locked out after too many failed login attempts; a CO must reset the password', false),
  USER_OWNS_KEYS: rc(0x94, 'RET_USER_OWNS_KEYS', 'HSM Error: A crypto user that owns keys cannot be deleted', false),
  USER_LOGGED_IN: rc(0x95, 'RET_USER_LOGGED_IN', 'HSM Error: The user is currently logged in', false),
  INVALID_PASSWORD: rc(0x96, 'RET_INVALID_PASSWORD', 'HSM Error: Password must be 7 to 32 characters', false),
  INVALID_USER_NAME: rc(0x97, 'RET_INVALID_USER_NAME', "HSM Error: User name must be 1 to 31 characters of letters, digits and '_'", false),
  USER_LIMIT: rc(0x98, 'RET_USER_LIMIT', 'HSM Error: The cluster already has the maximum number of users', false),
  KEY_LIMIT: rc(0x99, 'RET_KEY_LIMIT', 'HSM Error: The cluster already has the maximum number of keys', false),
  INVALID_ATTRIBUTE: rc(0x9a, 'RET_INVALID_ATTRIBUTE', 'HSM Error: The attribute is not valid for this key or cannot be changed', false),
  HANDLE_IN_USE: rc(0x9b, 'RET_HANDLE_IN_USE', 'HSM Error: The key handle is already in use by another key on this HSM', false),
  MASKED_OBJECT_LINEAGE: rc(0x9c, 'RET_MASKED_OBJECT_LINEAGE', 'HSM Error: The masked object comes from a cluster that is neither this cluster nor a clone of it', false),
  MASKED_OBJECT_INVALID: rc(0x9e, 'RET_MASKED_OBJECT_INVALID', 'HSM Error: The masked object failed authentication (it was changed)', false),
  CREDENTIALS_INCONSISTENT: rc(0x9f, 'RET_CREDENTIALS_INCONSISTENT', 'HSM Error: The owner or shared users of the object are missing or different on this HSM', false),
  MIN_SERVERS_NOT_MET: rc(0x30000086, 'RET_MIN_SERVERS_NOT_MET', 'HSM CLUSTER ERROR: The key could not be synchronized to the minimum number of servers in time; it was not created', false),
  PEER_UNAUTHENTICATED: rc(0xa0, 'RET_PEER_UNAUTHENTICATED', 'HSM Error: Only an authenticated HSM of this cluster may perform this operation', false),
  INTERNAL: rc(0xa1, 'RET_INTERNAL', 'HSM Error: Internal error', false),
  STORAGE_FULL: rc(0xa2, 'RET_STORAGE_FULL', 'HSM Error: The HSM has no storage space left for this change; nothing was changed', false),
  TWO_FACTOR_REQUIRED: rc(0xa4, 'RET_2FA_REQUIRED', 'HSM Error: This user has two-factor authentication: log in with -2fa', false),
  QUORUM_TOKEN_NOT_FOUND: rc(0xa5, 'RET_TOKEN_NOT_FOUND', 'HSM Error: No quorum token of this session matches the token file (it was used, expired or is from another session)', false),
  QUORUM_TOKENS_FULL: rc(0xa6, 'RET_TOKEN_LIMIT', 'HSM Error: The HSM holds the maximum number of quorum tokens and none has expired', false),
  MECHANISM_INVALID: rc(0xaa, 'RET_MECHANISM_INVALID', 'HSM Error: The mechanism is not supported for this operation', false),
  SERVER_UNREACHABLE: rc(0x30000087, 'RET_SERVER_UNREACHABLE', 'HSM CLUSTER ERROR: The server did not answer', false),
  SYNC_REPLICA_READ_ONLY: rc(0xa7, 'RET_SYNC_REPLICA_READ_ONLY', 'HSM Error: This HSM is a replica of a synchronization task: keys and users can only be created or changed on the primary cluster', false),
  SYNC_UNAUTHENTICATED: rc(0xa9, 'RET_SYNC_UNAUTHENTICATED', 'HSM Error: Only the control plane of this cluster (syncHello) may perform this operation', false),
  /** KMU findSingleKey: the key's digest differs between HSMs (the client compares them; no HSM returns it). */
  KEY_NOT_SYNCHRONIZED: rc(0x3000008a, 'RET_KEY_NOT_SYNCHRONIZED', 'HSM CLUSTER ERROR: The key is not the same on this HSM as on the others of the cluster', false),
} as const satisfies Record<string, ReturnCodeInfo>

/** The symbolic names of `ReturnCode`. */
export type ReturnCodeKey = keyof typeof ReturnCode

const byCode = new Map<number, ReturnCodeInfo>(Object.values(ReturnCode).map(info => [info.code, info]))

/** The description of a numeric code; unknown codes get a generic text. */
export function describeReturnCode (code: number): ReturnCodeInfo {
  return byCode.get(code) ?? { code, name: 'RET_UNKNOWN', message: `HSM Error: Unknown error 0x${code.toString(16)}`, documented: false }
}

/** `0x1b`, `0xa8`, `0x30000085`: how KMU prints a code (at least two hex digits). */
export function formatReturnCode (code: number): string {
  return `0x${code.toString(16).padStart(2, '0')}`
}

/** `0x000000a8`: how KMU prints a node's error state. */
export function formatNodeState (code: number): string {
  return `0x${code.toString(16).padStart(8, '0')}`
}
