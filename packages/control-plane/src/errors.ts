/**
 * Errors of the control plane. Two kinds:
 *
 * - `ControlPlaneError`: failures inside the process or the client library (bad options, an
 *   unreadable state file, a transport failure), with a stable `CP_ERR_*` code. Callers branch on
 *   `code`, never on the class. Every code is in `CONTROL_PLANE_ERROR_CODES` and docs/errors.md.
 * - `ApiError`: what the cloudhsmv2 API answers: an AWS error shape (`__type`), a message and an
 *   HTTP status. The client library raises it as a `ControlPlaneError` with code `CP_ERR_API`
 *   and the shape in `awsType`.
 */
export class ControlPlaneError extends Error {
  readonly code: string
  /** For `CP_ERR_API`: the AWS error shape the API answered (`CloudHsmInvalidRequestException`). */
  readonly awsType: string | undefined
  /** For `CP_ERR_API`: the HTTP status of the answer. */
  readonly statusCode: number | undefined
  constructor (code: string, message: string, options?: ErrorOptions & { awsType?: string, statusCode?: number }) {
    super(message, options)
    this.code = code
    this.name = 'ControlPlaneError'
    this.awsType = options?.awsType
    this.statusCode = options?.statusCode
  }
}

/** An option or flag is missing, malformed or out of range. */
export const CP_ERR_INVALID_ARGUMENT = 'CP_ERR_INVALID_ARGUMENT'
/** The state file of the data directory cannot be read, is not JSON, or belongs to another region or version. */
export const CP_ERR_STATE = 'CP_ERR_STATE'
/** Another live control plane serves the data directory (its pid is in `control-plane.pid`). */
export const CP_ERR_DATA_DIR_LOCKED = 'CP_ERR_DATA_DIR_LOCKED'
/** The server could not listen on the requested host and port. */
export const CP_ERR_LISTEN = 'CP_ERR_LISTEN'
/** The regions file cannot be read or is not a JSON map of region to endpoint. */
export const CP_ERR_REGIONS_FILE = 'CP_ERR_REGIONS_FILE'
/** The cloudhsmv2 API answered with an error; `awsType` holds its shape, `statusCode` its status. */
export const CP_ERR_API = 'CP_ERR_API'
/** A control plane could not be reached, or answered something that is not the API's JSON. */
export const CP_ERR_HTTP = 'CP_ERR_HTTP'
/** A waiter (`waitForCluster`, `waitForHsm`, `waitForBackup`) gave up at its deadline. */
export const CP_ERR_TIMEOUT = 'CP_ERR_TIMEOUT'
/** An HSM process could not be provisioned, started, restored or stopped. */
export const CP_ERR_HSM = 'CP_ERR_HSM'
/** A backup could not be made, stored, read or copied. */
export const CP_ERR_BACKUP = 'CP_ERR_BACKUP'
/** An HSM host could not be reached, failed, or runs another HSM than the one asked for. */
export const CP_ERR_HSM_HOST = 'CP_ERR_HSM_HOST'
/** The HSM hosts file (`--hsm-hosts`) cannot be read or is not a list of hosts of this region. */
export const CP_ERR_HSM_HOSTS_FILE = 'CP_ERR_HSM_HOSTS_FILE'
/**
 * A change could not be made durable because the data directory's file system is full (ENOSPC,
 * EDQUOT); nothing of it was kept, and the next change succeeds once there is space.
 */
export const CP_ERR_NO_SPACE = 'CP_ERR_NO_SPACE'
/** The peer secret file (`--peer-secret-file`) cannot be read, can be read by others, or holds no secret. */
export const CP_ERR_PEER_SECRET = 'CP_ERR_PEER_SECRET'

/** Every code of this package. */
export const CONTROL_PLANE_ERROR_CODES: readonly string[] = [
  CP_ERR_INVALID_ARGUMENT,
  CP_ERR_STATE,
  CP_ERR_DATA_DIR_LOCKED,
  CP_ERR_LISTEN,
  CP_ERR_REGIONS_FILE,
  CP_ERR_API,
  CP_ERR_HTTP,
  CP_ERR_TIMEOUT,
  CP_ERR_HSM,
  CP_ERR_BACKUP,
  CP_ERR_HSM_HOST,
  CP_ERR_HSM_HOSTS_FILE,
  CP_ERR_NO_SPACE,
  CP_ERR_PEER_SECRET
]

/** The AWS error shapes of cloudhsmv2 (reference F.1), and the generic ones of the JSON protocol. */
export type ApiErrorType =
  | 'CloudHsmAccessDeniedException'
  | 'CloudHsmInternalFailureException'
  | 'CloudHsmInvalidRequestException'
  | 'CloudHsmResourceNotFoundException'
  | 'CloudHsmResourceLimitExceededException'
  | 'CloudHsmServiceException'
  | 'CloudHsmTagException'
  | 'UnknownOperationException'
  | 'SerializationException'
  | 'MissingAuthenticationTokenException'
  | 'IncompleteSignatureException'
  | 'InvalidSignatureException'
  | 'UnrecognizedClientException'

/** An error the API answers: `{"__type": type, "message": message}` with `statusCode`. */
export class ApiError extends Error {
  readonly type: ApiErrorType
  readonly statusCode: number
  constructor (type: ApiErrorType, message: string, statusCode?: number) {
    super(message)
    this.name = 'ApiError'
    this.type = type
    this.statusCode = statusCode ?? (type === 'CloudHsmInternalFailureException' ? 500 : type === 'MissingAuthenticationTokenException' ? 403 : 400)
  }
}

/** `CloudHsmInvalidRequestException` (400). */
export function invalidRequest (message: string): ApiError {
  return new ApiError('CloudHsmInvalidRequestException', message)
}

/** `CloudHsmResourceNotFoundException` (400). */
export function notFound (message: string): ApiError {
  return new ApiError('CloudHsmResourceNotFoundException', message)
}

/** `CloudHsmTagException` (400). */
export function tagError (message: string): ApiError {
  return new ApiError('CloudHsmTagException', message)
}

/** `CloudHsmInternalFailureException` (500, the one the SDKs retry). */
export function internalFailure (message: string): ApiError {
  return new ApiError('CloudHsmInternalFailureException', message)
}
