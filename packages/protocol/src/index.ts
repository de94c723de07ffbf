/**
 * @packageDocumentation
 * The wire protocol between HSMs, the client library and the shells: frames, the MessagePack
 * codec, the operations and their argument shapes, and the return codes the real tools print.
 *
 * @example
 * ```ts
 * import { encode, decode, asRequest, OPERATION_SPECS, checkShape, ReturnCode } from '@hsmlab/protocol'
 * const req = asRequest(decode(encode({ id: 1, op: 'getKeyInfo', args: { handle: 6 } })))
 * checkShape(OPERATION_SPECS.getKeyInfo, req.args) // undefined: the arguments fit
 * ReturnCode.INVALID_HANDLE.code // 0xa8
 * ```
 */
export { ProtocolError, PROTO_ERR_DECODE, PROTO_ERR_FRAME_TOO_LARGE, WireError } from './errors.js'
export { ReturnCode, describeReturnCode, formatNodeState, formatReturnCode } from './return-codes.js'
export type { ReturnCodeInfo, ReturnCodeKey } from './return-codes.js'
export { asHello, asRequest, asResponse, asWelcome, decode, encode } from './codec.js'
export { PROTOCOL_VERSION } from './frames.js'
export type { HelloFrame, RequestFrame, ResponseFrame, WelcomeFrame } from './frames.js'
export { OPERATION_SPECS, QUORUM_SERVICES, SYNC_ROLES, USER_TYPES, isOperationName } from './operations.js'
export type {
  AttributeValue, HsmInfo, KeyAttribute, KeyCreationOptions, KeyInfo, KeyListing, MechanismCall, MechanismParams, OperationArgs,
  OperationMap, OperationName, OperationResult, PeerAddress, QuorumApproval, QuorumService, QuorumTokenInfo, SyncExtractedObject,
  SyncOutcome, SyncResource, SyncRole, TwoFactorResponse, UserInfo, UserType
} from './operations.js'
export { Attribute, CMU_ATTRIBUTE_ORDER, CMU_SETTABLE_ATTRIBUTES, EC_CURVES, KeyClass, KeyType, attributeName } from './attributes.js'
export { checkShape } from './schema.js'
export { holdWritesUntilNextTurn } from './write-hold.js'
export type { WriteHold } from './write-hold.js'
export type { FieldSpec, FieldType, ObjectSpec } from './schema.js'
export {
  CMU_DEFAULT_PORT, FRAME_BYTES_MAX, PENDING_REQUESTS_MAX, REQUEST_TIMEOUT_MS, SYNC_BATCH_KEYS_MAX, SYNC_BATCH_USERS_MAX, SYNC_WAIT_MS_MAX
} from './defaults.js'
