import { describeReturnCode } from './return-codes.js'
import type { ReturnCodeInfo } from './return-codes.js'

/** Base class of the protocol's errors; branch on `code`. */
export class ProtocolError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'ProtocolError'
  }
}

/** Bytes that are not a frame of this protocol. */
export const PROTO_ERR_DECODE = 'PROTO_ERR_DECODE'
/** A frame larger than `frameBytesMax`. */
export const PROTO_ERR_FRAME_TOO_LARGE = 'PROTO_ERR_FRAME_TOO_LARGE'

/**
 * A failure with an HSM return code: thrown by the HSM's handlers and turned into the response's
 * status, and rebuilt by the client from a response. Its `code` is the return code's name
 * (`RET_INVALID_HANDLE`), the only part that survives the wire.
 */
export class WireError extends ProtocolError {
  /** The numeric return code the tools print. */
  readonly status: number
  /** Name and text of the return code. */
  readonly returnCode: ReturnCodeInfo
  /** What exactly went wrong, for a person (the return code's text is generic). */
  readonly detail: string | undefined

  constructor (returnCode: ReturnCodeInfo | number, detail?: string, options?: ErrorOptions) {
    const info = typeof returnCode === 'number' ? describeReturnCode(returnCode) : returnCode
    super(info.name, detail === undefined ? info.message : `${info.message} (${detail})`, options)
    this.name = 'WireError'
    this.status = info.code
    this.returnCode = info
    this.detail = detail
  }
}
