import { Packr } from 'msgpackr'
import { ProtocolError, PROTO_ERR_DECODE, PROTO_ERR_FRAME_TOO_LARGE } from './errors.js'
import { FRAME_BYTES_MAX } from './defaults.js'
import type { HelloFrame, RequestFrame, ResponseFrame, WelcomeFrame } from './frames.js'

// Plain maps (no record extension) keep frames readable by any MessagePack decoder.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

/** MessagePack bytes of any frame or value. */
export function encode (value: unknown): Uint8Array {
  return packr.pack(value)
}

/** Decodes MessagePack bytes; throws `PROTO_ERR_DECODE` or `PROTO_ERR_FRAME_TOO_LARGE`. */
export function decode (bytes: Uint8Array, frameBytesMax = FRAME_BYTES_MAX): unknown {
  if (bytes.length > frameBytesMax) {
    throw new ProtocolError(PROTO_ERR_FRAME_TOO_LARGE, `frame of ${bytes.length} bytes exceeds the limit of ${frameBytesMax} bytes`)
  }
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new ProtocolError(PROTO_ERR_DECODE, 'the frame is not valid MessagePack', { cause: err })
  }
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

/** Checks that a decoded value is a request frame; throws `PROTO_ERR_DECODE` naming what is wrong. */
export function asRequest (value: unknown): RequestFrame {
  if (!isRecord(value)) throw new ProtocolError(PROTO_ERR_DECODE, 'a request must be a map')
  if (typeof value.id !== 'number' || !Number.isSafeInteger(value.id)) throw new ProtocolError(PROTO_ERR_DECODE, 'a request needs an integer id')
  if (typeof value.op !== 'string') throw new ProtocolError(PROTO_ERR_DECODE, 'a request needs an operation name')
  return { id: value.id, op: value.op, args: value.args ?? {} }
}

/** Checks that a decoded value is a response frame. */
export function asResponse (value: unknown): ResponseFrame {
  if (!isRecord(value) || typeof value.id !== 'number' || typeof value.status !== 'number') {
    throw new ProtocolError(PROTO_ERR_DECODE, 'a response must be a map with an integer id and status')
  }
  const frame: ResponseFrame = { id: value.id, status: value.status, result: value.result }
  if (typeof value.message === 'string') frame.message = value.message
  return frame
}

function isBytes (v: unknown, length?: number): v is Uint8Array {
  return v instanceof Uint8Array && (length === undefined || v.length === length)
}

/** Checks a decoded `hello` frame. */
export function asHello (value: unknown): HelloFrame {
  if (!isRecord(value) || value.type !== 'hello' || typeof value.version !== 'number' ||
      !isBytes(value.ephemeralPublicKey, 32) || !isBytes(value.nonce, 32)) {
    throw new ProtocolError(PROTO_ERR_DECODE, 'the first frame must be a hello with a 32-byte key and nonce')
  }
  return { type: 'hello', version: value.version, ephemeralPublicKey: value.ephemeralPublicKey, nonce: value.nonce }
}

/** Checks a decoded `welcome` frame. */
export function asWelcome (value: unknown): WelcomeFrame {
  const cert = isRecord(value) ? value.certificate : undefined
  if (!isRecord(value) || value.type !== 'welcome' || typeof value.version !== 'number' ||
      !isBytes(value.ephemeralPublicKey, 32) || !isBytes(value.signature) || !isRecord(cert) ||
      typeof cert.hsmId !== 'string' || typeof cert.clusterId !== 'string' ||
      !isBytes(cert.publicKey) || !isBytes(cert.signature)) {
    throw new ProtocolError(PROTO_ERR_DECODE, 'the HSM answered the handshake with something that is not a welcome frame')
  }
  return {
    type: 'welcome',
    version: value.version,
    ephemeralPublicKey: value.ephemeralPublicKey,
    certificate: { hsmId: cert.hsmId, clusterId: cert.clusterId, publicKey: cert.publicKey, signature: cert.signature },
    signature: value.signature
  }
}
