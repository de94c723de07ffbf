/**
 * Quorum authentication (M of N) and the second factor of one HSM, as the AWS CloudHSM User Guide
 * describes them for cloudhsm_mgmt_util (quorum-authentication*.md, manage-2fa.md):
 *
 * - M values by service (3 USER_MGMT, 4 MISC_CO), 1 unless setMValue said otherwise, durable in
 *   the meta store (and so in backups and the clusters made from them);
 * - quorum tokens, in memory only: the guide says a token "is only valid as long as your current
 *   login session is open", so each belongs to the session and user that asked for it, and goes
 *   when that session's connection closes (`endSession`). A token also expires `tokenTtlMs` after
 *   getToken; hsmlab drops an expired token the first time it looks at the table, so an expired
 *   token never approves anything (docs/cmu.md says why);
 * - the challenge of `-2fa`: a random digest per session, used up by the next signed answer.
 *
 * Signatures are RSA PKCS#1 v1.5 over SHA-256, what `openssl dgst -sha256 -sign key.pem` makes.
 */
import { randomBytes as nodeRandomBytes, createPublicKey, verify as rsaVerify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { QuorumTokenInfo } from '@hsmlab/protocol'
import type { Store } from '@hsmlab/store'
import type { Session } from './context.js'
import { META_QUORUM } from './data-dir.js'
import type { MetaRecord, QuorumSettings } from './data-dir.js'
import { hsmDefaults } from './defaults.js'

/** The names of the services, as getMValue prints them. */
export const QUORUM_SERVICE_NAMES: Readonly<Record<number, string>> = { 3: 'USER_MGMT', 4: 'MISC_CO' }

/** Options of `QuorumTable`. */
export interface QuorumTableOptions {
  /** @default hsmDefaults.quorumTokenTtlMs (600000) */
  tokenTtlMs?: number
  /** @default hsmDefaults.quorumTokensMax (1024) */
  tokensMax?: number
  /** The clock, in milliseconds since the epoch. @default Date.now */
  now?: () => number
}

interface Token {
  id: number
  service: number
  node: number
  userId: number
  userName: string
  sessionId: number
  nonce: string
  createdAtMs: number
  required: number
  approvers: string[]
}

const TOKEN_LINE = /^hsmlab-quorum-token hsm=(\S+) id=(\d+) service=(\d+) node=(\d+) key=0 user=(\S+) nonce=([0-9a-f]{32})$/

/** The RSA-2048 public key in `pem`, or a RET_INVALID_INPUT error saying why not. */
export function readRsa2048PublicKey (pem: string): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the public key is not a PEM public key')
  }
  if (key.asymmetricKeyType !== 'rsa' || key.asymmetricKeyDetails?.modulusLength !== 2048) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the public key must be an RSA-2048 key')
  }
  return key
}

/** True when `signature` is the RSA PKCS#1 v1.5 SHA-256 signature of `data` by `pem`'s private key. */
export function verifyRsaSha256 (pem: string, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return rsaVerify('sha256', data, createPublicKey(pem), signature)
  } catch {
    return false
  }
}

/** One HSM's quorum settings, tokens and 2FA challenges. */
export class QuorumTable {
  private readonly meta: Store<MetaRecord>
  private readonly tokenTtlMs: number
  private readonly tokensMax: number
  private readonly now: () => number
  private readonly tokens = new Map<number, Token>()
  private readonly challenges = new Map<number, Uint8Array>()
  private nextTokenId = 1

  constructor (meta: Store<MetaRecord>, options: QuorumTableOptions = {}) {
    this.meta = meta
    this.tokenTtlMs = options.tokenTtlMs ?? hsmDefaults.quorumTokenTtlMs
    this.tokensMax = options.tokensMax ?? hsmDefaults.quorumTokensMax
    this.now = options.now ?? Date.now
  }

  // ---- M values ----

  private settings (): QuorumSettings {
    const stored = this.meta.get(META_QUORUM)
    return stored?.kind === 'quorum' ? stored : { kind: 'quorum', mValues: {} }
  }

  /** The M value of `service`: 1 until set. */
  mValue (service: number): number {
    return this.settings().mValues[service] ?? 1
  }

  /** Every M value that was set, by service (for backups). */
  mValues (): Record<number, number> {
    return { ...this.settings().mValues }
  }

  /** Sets the M value of `service`, durably. */
  async setMValue (service: number, mValue: number): Promise<void> {
    const mValues = { ...this.settings().mValues, [service]: mValue }
    await this.meta.apply([{ op: 'put', id: META_QUORUM, value: { kind: 'quorum', mValues } }])
  }

  // ---- tokens ----

  /** Drops the expired tokens. */
  private purge (): void {
    const now = this.now()
    for (const [id, token] of this.tokens) if (now - token.createdAtMs >= this.tokenTtlMs) this.tokens.delete(id)
  }

  private info (token: Token): QuorumTokenInfo {
    const left = token.createdAtMs + this.tokenTtlMs - this.now()
    return {
      id: token.id,
      service: token.service,
      node: token.node,
      keyHandle: 0,
      userName: token.userName,
      validitySec: Math.max(0, Math.floor(left / 1000)),
      required: token.required,
      approvers: [...token.approvers]
    }
  }

  /** A new token of `session`'s user for `service`, and the line of the token file that names it. */
  issue (session: Session, service: number, hsmId: string, node: number): { token: QuorumTokenInfo, line: string } {
    const user = session.user
    if (user === undefined) throw new WireError(ReturnCode.NOT_LOGGED_IN, 'log in first')
    this.purge()
    if (this.tokens.size >= this.tokensMax) {
      throw new WireError(ReturnCode.QUORUM_TOKENS_FULL, `this HSM holds ${this.tokens.size} quorum tokens, the limit is ${this.tokensMax}`)
    }
    const token: Token = {
      id: this.nextTokenId++,
      service,
      node,
      userId: user.userId,
      userName: user.userName,
      sessionId: session.id,
      nonce: nodeRandomBytes(16).toString('hex'),
      createdAtMs: this.now(),
      required: this.mValue(service),
      approvers: []
    }
    this.tokens.set(token.id, token)
    const line = `hsmlab-quorum-token hsm=${hsmId} id=${token.id} service=${service} node=${node} key=0 user=${user.userName} nonce=${token.nonce}`
    return { token: this.info(token), line }
  }

  /** The token of `session` that `tokenFile` names for this HSM, or RET_TOKEN_NOT_FOUND. */
  find (session: Session, tokenFile: Uint8Array, hsmId: string): Token {
    this.purge()
    const lines = Buffer.from(tokenFile).toString('utf8').split('\n').map(l => l.trim())
    for (const line of lines) {
      const m = TOKEN_LINE.exec(line)
      if (m === null || m[1] !== hsmId) continue
      const token = this.tokens.get(Number(m[2]))
      if (token !== undefined && token.nonce === m[6] && token.sessionId === session.id && token.userId === session.user?.userId) return token
    }
    throw new WireError(ReturnCode.QUORUM_TOKEN_NOT_FOUND, `the token file names no live token of this session for ${hsmId}`)
  }

  /** Records the approvers whose signatures were checked; the token is approved once it has `required` of them. */
  approve (token: Token, approvers: readonly string[]): QuorumTokenInfo {
    for (const name of approvers) if (!token.approvers.some(a => a.toLowerCase() === name.toLowerCase())) token.approvers.push(name)
    return this.info(token)
  }

  /** The live tokens of `session`. */
  list (session: Session): QuorumTokenInfo[] {
    this.purge()
    return [...this.tokens.values()].filter(t => t.sessionId === session.id && t.userId === session.user?.userId).map(t => this.info(t))
  }

  /**
   * Checks that `session` may do an operation of `service` now: nothing to do while M is 1;
   * otherwise an approved token of this session and service is needed (RET_MXN_AUTH_FAILED
   * without one). Returns what uses the token up, to be called once the operation succeeded
   * ("when that operation succeeds, the token is no longer valid").
   */
  authorize (session: Session, service: number): () => void {
    const required = this.mValue(service)
    if (required <= 1) return () => {}
    this.purge()
    const token = [...this.tokens.values()].find(t =>
      t.sessionId === session.id && t.userId === session.user?.userId && t.service === service &&
      t.approvers.length >= Math.max(required, t.required))
    if (token === undefined) {
      throw new WireError(ReturnCode.MXN_AUTH_FAILED, `service ${service} (${QUORUM_SERVICE_NAMES[service] ?? '?'}) needs a quorum token approved by ${required} users`)
    }
    return () => { this.tokens.delete(token.id) }
  }

  /**
   * Forgets what belongs to a session whose connection closed: its tokens and its challenge. No
   * later session can present them, so keeping them only held places of the table until they
   * expired (a client reconnecting in a loop could fill it).
   */
  endSession (sessionId: number): void {
    for (const [id, token] of this.tokens) if (token.sessionId === sessionId) this.tokens.delete(id)
    this.challenges.delete(sessionId)
  }

  // ---- 2FA challenges ----

  /** A fresh 32-byte digest for `sessionId` to sign; it replaces any earlier one. */
  challenge (sessionId: number): Uint8Array {
    const digest = new Uint8Array(nodeRandomBytes(32))
    this.challenges.set(sessionId, digest)
    return digest
  }

  /**
   * Checks a second factor: `signature` must sign this session's challenge with `pem`. The
   * challenge is used up either way, so a failed answer cannot be retried against it.
   */
  checkSecondFactor (sessionId: number, pem: string, signature: Uint8Array): void {
    const digest = this.challenges.get(sessionId)
    this.challenges.delete(sessionId)
    if (digest === undefined) throw new WireError(ReturnCode.MXN_AUTH_FAILED, 'no challenge was asked for on this session (getChallenge)')
    if (!verifyRsaSha256(pem, digest, signature)) throw new WireError(ReturnCode.MXN_AUTH_FAILED, 'the signature of the challenge does not verify with the public key')
  }
}
