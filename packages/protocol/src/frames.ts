/**
 * Frames on the wire. A connection opens with a clear `hello` / `welcome` exchange (the
 * handshake of @hsmlab/crypto's channel); every later WebSocket message is one request or one
 * response, MessagePack-encoded and then encrypted by the channel.
 */

/** Protocol version spoken in the handshake. */
export const PROTOCOL_VERSION = 1

/** First frame, client to HSM, in clear. */
export interface HelloFrame {
  type: 'hello'
  version: number
  ephemeralPublicKey: Uint8Array
  nonce: Uint8Array
}

/** The HSM's answer to `hello`, in clear. */
export interface WelcomeFrame {
  type: 'welcome'
  version: number
  ephemeralPublicKey: Uint8Array
  certificate: { hsmId: string, clusterId: string, publicKey: Uint8Array, signature: Uint8Array }
  signature: Uint8Array
}

/** A request: `id` is chosen by the caller and echoed in the response. */
export interface RequestFrame {
  id: number
  op: string
  args: unknown
}

/** A response: `status` is a return code (0 for success). */
export interface ResponseFrame {
  id: number
  status: number
  result?: unknown
  /** A sentence for a person when status is not 0. */
  message?: string
}
