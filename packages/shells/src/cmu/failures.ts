/**
 * Turning errors into the words CMU prints. An HSM's refusal arrives as a `WireError` whose return
 * code names the real tool's text (`HSM Error: RET_USER_LOGIN_FAILURE`); a server that is gone or
 * silent arrives as a `ClientError` from @hsmlab/client, told here in a short sentence. Callers
 * branch on `code`, as the client library asks.
 */
import {
  CLIENT_ERR_BUSY, CLIENT_ERR_CLOSED, CLIENT_ERR_CONFIG, CLIENT_ERR_CONNECT, CLIENT_ERR_TIMEOUT, CLIENT_ERR_UNTRUSTED
} from '@hsmlab/client'
import { ReturnCode } from '@hsmlab/protocol'
import type { ReturnCodeInfo } from '@hsmlab/protocol'

/** Why a call failed on one server. */
export interface Failure {
  /** What CMU prints after `<cmd> failed: `. */
  reason: string
  /** The HSM's return code, when the HSM answered (syncUser prints it). */
  returnCode?: number
  /** What exactly the HSM said went wrong, when it said (the return code's text is generic). */
  detail?: string
}

interface CodedError { code?: unknown, message?: unknown, cause?: unknown, returnCode?: ReturnCodeInfo, status?: unknown, detail?: unknown }

function asCoded (err: unknown): CodedError {
  return typeof err === 'object' && err !== null ? err : { message: String(err) }
}

function messageOf (err: unknown): string {
  const m = asCoded(err).message
  return typeof m === 'string' ? m : String(err)
}

/** Says why a call to one server failed, for a per-server failure line. */
export function describeFailure (err: unknown, requestTimeoutMs: number): Failure {
  const e = asCoded(err)
  if (e.returnCode !== undefined && typeof e.status === 'number') {
    const detail = typeof e.detail === 'string' && e.detail !== '' ? e.detail : undefined
    if (e.status === ReturnCode.SYNC_REPLICA_READ_ONLY.code && detail !== undefined) {
      // The read-only refusal's text is generic: the HSM's detail names the primary cluster to
      // go to instead, so it follows on its own line (the guide's `failed:` line stays as it is).
      return { reason: `${e.returnCode.message}\n${detail}`, returnCode: e.status }
    }
    return { reason: e.returnCode.message, returnCode: e.status, ...(detail === undefined ? {} : { detail }) }
  }
  switch (e.code) {
    case CLIENT_ERR_CLOSED:
    case CLIENT_ERR_CONNECT:
    case CLIENT_ERR_UNTRUSTED:
      return { reason: 'server is not connected' }
    case CLIENT_ERR_TIMEOUT:
      return { reason: `server did not respond within ${requestTimeoutMs} ms`, returnCode: ReturnCode.SERVER_UNREACHABLE.code }
    case CLIENT_ERR_BUSY:
      return { reason: 'server is busy: too many requests are waiting' }
    default:
      return { reason: messageOf(err) }
  }
}

/**
 * The reason with the HSM's own account of it in parentheses, when it gave one. syncKey and
 * syncUser print this (the real tool's failure output for them is not documented, reference H):
 * across clusters, "missing or different" users and lineages need naming to be acted on.
 */
export function reasonWithDetail (failure: Failure): string {
  return failure.detail === undefined ? failure.reason : `${failure.reason} (${failure.detail})`
}

const SOCKET_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'Connection refused',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution'
}

/** Says why a server could not be connected at start-up, after `failed:` (A.3). */
export function describeConnectFailure (err: unknown): string {
  const e = asCoded(err)
  if (e.code === CLIENT_ERR_UNTRUSTED) {
    return `Certificate verification failed: ${messageOf(e.cause ?? err)}`
  }
  if (e.code === CLIENT_ERR_CONFIG) return messageOf(err)
  // The socket's own error code or a timeout, wherever it sits in the cause chain.
  const chain: unknown[] = []
  for (let c: unknown = err; c !== undefined && c !== null && chain.length < 5; c = asCoded(c).cause) chain.push(c)
  for (const c of chain) {
    const code = asCoded(c).code
    if (typeof code === 'string' && Object.hasOwn(SOCKET_REASONS, code)) return SOCKET_REASONS[code] as string
  }
  if (chain.some(c => /timed out|did not complete the handshake/i.test(messageOf(c)))) return 'Connection timed out'
  const message = messageOf(err)
  if (/closed the connection/i.test(message)) return 'Connection closed by the server'
  return message
}
