/**
 * The one table from what went wrong to the PKCS#11 CK_RV the library returns (docs/pkcs11.md
 * "Return values"). The HSM's return code decides, and for a few codes the kind of operation too
 * (an invalid handle is CKR_KEY_HANDLE_INVALID for a key used in a crypto operation and
 * CKR_OBJECT_HANDLE_INVALID for an object operation). A failure to reach the cluster (no HSM
 * connected, a connection closed or timed out on every HSM tried) is CKR_DEVICE_ERROR.
 */
import { ReturnCode } from '@hsmlab/protocol'

/** The CK_RV values the daemon answers (PKCS#11 v2.40). */
export const Ckr = {
  OK: 0x0,
  HOST_MEMORY: 0x2,
  GENERAL_ERROR: 0x5,
  FUNCTION_FAILED: 0x6,
  ARGUMENTS_BAD: 0x7,
  ATTRIBUTE_READ_ONLY: 0x10,
  ATTRIBUTE_TYPE_INVALID: 0x12,
  ATTRIBUTE_VALUE_INVALID: 0x13,
  ACTION_PROHIBITED: 0x1b,
  DATA_INVALID: 0x20,
  DATA_LEN_RANGE: 0x21,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  ENCRYPTED_DATA_INVALID: 0x40,
  KEY_HANDLE_INVALID: 0x60,
  KEY_TYPE_INCONSISTENT: 0x63,
  KEY_FUNCTION_NOT_PERMITTED: 0x68,
  KEY_UNEXTRACTABLE: 0x6a,
  MECHANISM_INVALID: 0x70,
  MECHANISM_PARAM_INVALID: 0x71,
  OBJECT_HANDLE_INVALID: 0x82,
  PIN_INCORRECT: 0xa0,
  PIN_LOCKED: 0xa4,
  SESSION_HANDLE_INVALID: 0xb3,
  SIGNATURE_INVALID: 0xc0,
  TEMPLATE_INCOMPLETE: 0xd0,
  TEMPLATE_INCONSISTENT: 0xd1,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  USER_TYPE_INVALID: 0x103,
  WRAPPED_KEY_INVALID: 0x110,
  WRAPPING_KEY_HANDLE_INVALID: 0x113
} as const

/** What a daemon operation does, for the codes whose CK_RV depends on it. */
export type OperationKind = 'login' | 'object' | 'create' | 'encrypt' | 'decrypt' | 'sign' | 'verify' | 'wrap' | 'unwrap' | 'destroy' | 'set'

type Row = { default: number } & Partial<Record<OperationKind, number>>

/** HSM return code → CK_RV, by operation kind where it matters. */
export const RETURN_VALUE_TABLE: ReadonlyMap<number, Row> = new Map<number, Row>([
  [ReturnCode.USER_LOGIN_FAILURE.code, { default: Ckr.PIN_INCORRECT }],
  [ReturnCode.USER_NOT_FOUND.code, { default: Ckr.PIN_INCORRECT }],
  [ReturnCode.USER_DOES_NOT_EXIST.code, { default: Ckr.PIN_INCORRECT }],
  [ReturnCode.TWO_FACTOR_REQUIRED.code, { default: Ckr.PIN_INCORRECT }],
  [ReturnCode.USER_LOCKED_OUT.code, { default: Ckr.PIN_LOCKED }],
  [ReturnCode.INVALID_USER_TYPE.code, { default: Ckr.USER_TYPE_INVALID }],
  [ReturnCode.NOT_LOGGED_IN.code, { default: Ckr.USER_NOT_LOGGED_IN }],
  [ReturnCode.ALREADY_LOGGED_IN.code, { default: Ckr.USER_ALREADY_LOGGED_IN }],
  [ReturnCode.PERMISSION_DENIED.code, { default: Ckr.USER_TYPE_INVALID }],
  [ReturnCode.INVALID_HANDLE.code, {
    default: Ckr.OBJECT_HANDLE_INVALID, encrypt: Ckr.KEY_HANDLE_INVALID, decrypt: Ckr.KEY_HANDLE_INVALID, sign: Ckr.KEY_HANDLE_INVALID,
    verify: Ckr.KEY_HANDLE_INVALID, wrap: Ckr.KEY_HANDLE_INVALID, unwrap: Ckr.WRAPPING_KEY_HANDLE_INVALID
  }],
  [ReturnCode.KEY_ACCESS_DENIED.code, {
    default: Ckr.KEY_FUNCTION_NOT_PERMITTED, destroy: Ckr.ACTION_PROHIBITED, set: Ckr.ACTION_PROHIBITED, wrap: Ckr.KEY_UNEXTRACTABLE, object: Ckr.ACTION_PROHIBITED
  }],
  [ReturnCode.INVALID_INPUT.code, {
    default: Ckr.ARGUMENTS_BAD, create: Ckr.TEMPLATE_INCONSISTENT, encrypt: Ckr.KEY_TYPE_INCONSISTENT, decrypt: Ckr.KEY_TYPE_INCONSISTENT,
    sign: Ckr.KEY_TYPE_INCONSISTENT, verify: Ckr.KEY_TYPE_INCONSISTENT, wrap: Ckr.KEY_TYPE_INCONSISTENT, unwrap: Ckr.WRAPPED_KEY_INVALID
  }],
  [ReturnCode.MECHANISM_INVALID.code, { default: Ckr.MECHANISM_INVALID }],
  [ReturnCode.BAD_PKCS_DATA.code, {
    default: Ckr.DATA_INVALID, decrypt: Ckr.ENCRYPTED_DATA_INVALID, verify: Ckr.SIGNATURE_INVALID, encrypt: Ckr.DATA_LEN_RANGE, unwrap: Ckr.WRAPPED_KEY_INVALID
  }],
  [ReturnCode.INVALID_ATTRIBUTE.code, { default: Ckr.ATTRIBUTE_READ_ONLY, create: Ckr.TEMPLATE_INCONSISTENT }],
  [ReturnCode.KEY_LIMIT.code, { default: Ckr.DEVICE_MEMORY }],
  [ReturnCode.STORAGE_FULL.code, { default: Ckr.DEVICE_MEMORY }],
  [ReturnCode.POLICY_VIOLATION.code, { default: Ckr.TEMPLATE_INCONSISTENT }],
  [ReturnCode.MIN_SERVERS_NOT_MET.code, { default: Ckr.DEVICE_ERROR }],
  [ReturnCode.CLUSTER_SERVER_UNAVAILABLE.code, { default: Ckr.DEVICE_ERROR }],
  [ReturnCode.SERVER_UNREACHABLE.code, { default: Ckr.DEVICE_ERROR }],
  [ReturnCode.INTERNAL.code, { default: Ckr.DEVICE_ERROR }]
])

/** The CK_RV of an HSM return code for an operation of `kind`; CKR_FUNCTION_FAILED for codes not in the table. */
export function returnValueOf (code: number, kind: OperationKind): number {
  const row = RETURN_VALUE_TABLE.get(code)
  if (row === undefined) return Ckr.FUNCTION_FAILED
  return row[kind] ?? row.default
}
