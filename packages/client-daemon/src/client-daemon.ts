/**
 * `hsmlab-client`, the client daemon (CloudHSM Client SDK 3's `cloudhsm_client`): holds the
 * encrypted connections to one cluster's HSMs and serves the PKCS#11 library on a Unix socket
 * that only its owner may open (mode 0600).
 *
 * Applications: each C_Initialize of the library draws a 16-byte token and says it in HELLO on
 * every socket it opens; the sockets of one token share one login, as PKCS#11 sessions of one
 * application share theirs. C_Login opens one connection per HSM logged in as that crypto user
 * (link-set.ts); when the application's last socket closes, its connections close and its session
 * objects are gone, as an HSM session's keys die with it.
 *
 * Objects: a token object is an HSM token key (its handle is the cluster's); a session object is
 * an HSM session key made on one HSM's connection, which the daemon remembers with the PKCS#11
 * session that made it, so that it is used on that HSM only and destroyed with that session.
 *
 * Every request is answered within `operationTimeoutMs`; what fails is mapped to a CK_RV in
 * return-values.ts. Logs: pino JSON lines, `hsmlab:client-daemon:*`, silent unless asked.
 */
import { createHash, createPublicKey, randomBytes } from 'node:crypto'
import { chmod, readFile, unlink } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { WireError } from '@hsmlab/client'
import type { ServerConfig } from '@hsmlab/client'
import { KeyClass, KeyType } from '@hsmlab/protocol'
import type { MechanismParams } from '@hsmlab/protocol'
import type { Logger } from '@hsmlab/process'
import {
  Cka, EC_CURVES, idString, matches, objectView, templateBool, templateString, templateUlong, usageOf
} from './attributes.js'
import type { ObjectView, Template } from './attributes.js'
import { clientDaemonDefaults } from './defaults.js'
import { ClientDaemonError, CLIENT_DAEMON_ERR_FRAME, CLIENT_DAEMON_ERR_LISTEN } from './errors.js'
import { ClusterUnreachable, LinkSet } from './link-set.js'
import type { HsmLink } from './link-set.js'
import { Ckr, returnValueOf } from './return-values.js'
import type { OperationKind } from './return-values.js'
import { FrameReader, Op, Tag, decodeFields, encodeResponse, u64 } from './wire.js'
import type { Field, Fields } from './wire.js'

/** Options of `startClientDaemon`; limits default to `clientDaemonDefaults`. */
export interface ClientDaemonOptions {
  /** The cluster's HSMs, as the CMU configuration lists them. */
  servers: ServerConfig[]
  /** Path of the Unix socket. */
  socketPath: string
  /** The token label applications see (the cluster's name). @default 'hsmlab' */
  label?: string
  logger: Logger
  frameBytesMax?: number
  connectionsMax?: number
  pendingPerConnectionMax?: number
  hsmRequestTimeoutMs?: number
  hsmConnectTimeoutMs?: number
  operationTimeoutMs?: number
  reconnectDelayMs?: number
  reconnectDelayMaxMs?: number
  tokenKeyMinServers?: number
  tokenKeySyncTimeoutMs?: number
  destroyedRememberedMax?: number
  findResultsMax?: number
}

/** CKM_* numbers the daemon handles itself (generation, digests, wrapping). */
const Ckm = {
  RSA_PKCS_KEY_PAIR_GEN: 0x0,
  RSA_PKCS_OAEP: 0x9,
  SHA_1: 0x220,
  SHA224: 0x255,
  SHA256: 0x250,
  SHA384: 0x260,
  SHA512: 0x270,
  GENERIC_SECRET_KEY_GEN: 0x350,
  EC_KEY_PAIR_GEN: 0x1040,
  AES_KEY_GEN: 0x1080,
  AES_KEY_WRAP: 0x2109,
  AES_KEY_WRAP_PAD: 0x210a
} as const

const DIGESTS: ReadonlyMap<number, string> = new Map([
  [Ckm.SHA_1, 'sha1'], [Ckm.SHA224, 'sha224'], [Ckm.SHA256, 'sha256'], [Ckm.SHA384, 'sha384'], [Ckm.SHA512, 'sha512']
])

/** Usage attributes C_SetAttributeValue may change (CMU setAttribute's). */
const SETTABLE_FLAGS = [Cka.ENCRYPT, Cka.DECRYPT, Cka.WRAP, Cka.UNWRAP, Cka.SIGN, Cka.VERIFY, Cka.DERIVE, Cka.TRUSTED, Cka.WRAP_WITH_TRUSTED]

/** The HSM's wrapKey mechanisms (KMU -m). */
const HSM_WRAP = { AES_KEY_WRAP: 4, RSA_OAEP: 8 } as const

/** A failure that already is a CK_RV. */
class Refusal extends Error {
  constructor (readonly rv: number, message: string) { super(message) }
}

/** A session object: the HSM session key, on the link (and connection generation) that made it. */
interface SessionObject {
  link: HsmLink
  generation: number
  session: number
}

/** One application (one C_Initialize): its login and its session objects. */
interface App {
  token: string
  sockets: number
  login?: LinkSet
  objects: Map<number, SessionObject>
  /** Token keys this application destroyed (oldest first): gone for it at once, before the delete reaches every HSM. */
  destroyed: Set<number>
  /** C_CreateObject's wrapping key per HSM link: an HSM session key (AES-256, wrap/unwrap only, not extractable). */
  importKeys: Map<HsmLink, { generation: number, handle: number }>
  /** The wrapping key being made, so that imports in flight at once make one. */
  importKeyMaking?: Promise<{ link: HsmLink, handle: number }>
}

function templateOf (fields: Fields, tag: number): Template {
  const t: Template = new Map()
  for (const v of fields.all(tag)) {
    if (v.length < 8) throw new ClientDaemonError(CLIENT_DAEMON_ERR_FRAME, 'an attribute field is shorter than its type')
    t.set(Number(v.readBigUInt64BE(0)), v.subarray(8))
  }
  return t
}

function attrField (tag: number, type: number, value: Buffer): Field {
  return [tag, Buffer.concat([u64(type), value])]
}

/** Strips hsmlab's wrapped-key header (key-material.ts `encodeWrappedKey`): applications get the bare RFC 3394/5649 or OAEP output. */
function bareWrapped (blob: Uint8Array): Buffer {
  const b = Buffer.from(blob)
  if (b.length < 14 || b.subarray(0, 8).toString('latin1') !== 'HSMLABWK') return b
  return b.subarray(14 + b.readUInt32BE(10))
}

/** The longest generic secret key C_CreateObject takes, as C_GenerateKey (HMAC keys). */
const GENERIC_SECRET_BYTES_MAX = 800

/** Attributes PKCS#11 v2.40 says the token sets, never a creation template: CKR_ATTRIBUTE_READ_ONLY. */
const CREATE_READ_ONLY: ReadonlySet<number> = new Set([
  Cka.LOCAL, Cka.NEVER_EXTRACTABLE, Cka.ALWAYS_SENSITIVE, Cka.KEY_GEN_MECHANISM, Cka.CHECK_VALUE, Cka.VALUE_LEN
])

const CREATE_COMMON: readonly number[] = [
  Cka.CLASS, Cka.KEY_TYPE, Cka.TOKEN, Cka.PRIVATE, Cka.LABEL, Cka.ID, Cka.MODIFIABLE, Cka.COPYABLE, Cka.DESTROYABLE,
  Cka.DERIVE, Cka.START_DATE, Cka.END_DATE
]

/** What a secret key's C_CreateObject template may hold. */
const CREATE_SECRET_ATTRIBUTES: ReadonlySet<number> = new Set([
  ...CREATE_COMMON, Cka.VALUE, Cka.ENCRYPT, Cka.DECRYPT, Cka.SIGN, Cka.VERIFY, Cka.WRAP, Cka.UNWRAP, Cka.EXTRACTABLE, Cka.SENSITIVE,
  Cka.TRUSTED, Cka.WRAP_WITH_TRUSTED
])

/** What a public key's C_CreateObject template may hold. */
const CREATE_PUBLIC_ATTRIBUTES: ReadonlySet<number> = new Set([
  ...CREATE_COMMON, Cka.SUBJECT, Cka.ENCRYPT, Cka.VERIFY, Cka.WRAP, Cka.TRUSTED, Cka.MODULUS, Cka.PUBLIC_EXPONENT, Cka.EC_PARAMS, Cka.EC_POINT
])

function base64url (b: Buffer): string {
  return b.toString('base64url')
}

/** A public key's SPKI DER from a C_CreateObject template: RSA (modulus, exponent) or EC (curve, point). */
function publicKeySpki (keyType: number, t: Template): Buffer {
  const fail = (rv: number, why: string): never => { throw new Refusal(rv, why) }
  try {
    if (keyType === KeyType.RSA) {
      const n = t.get(Cka.MODULUS) ?? fail(Ckr.TEMPLATE_INCOMPLETE, 'an RSA public key needs CKA_MODULUS')
      const e = t.get(Cka.PUBLIC_EXPONENT) ?? fail(Ckr.TEMPLATE_INCOMPLETE, 'an RSA public key needs CKA_PUBLIC_EXPONENT')
      return createPublicKey({ key: { kty: 'RSA', n: base64url(n), e: base64url(e) }, format: 'jwk' }).export({ type: 'spki', format: 'der' })
    }
    if (keyType === KeyType.EC) {
      const params = t.get(Cka.EC_PARAMS) ?? fail(Ckr.TEMPLATE_INCOMPLETE, 'an EC public key needs CKA_EC_PARAMS')
      const der = t.get(Cka.EC_POINT) ?? fail(Ckr.TEMPLATE_INCOMPLETE, 'an EC public key needs CKA_EC_POINT')
      const curve = EC_CURVES.find(c => c.oid.equals(params)) ?? fail(Ckr.ATTRIBUTE_VALUE_INVALID, 'CKA_EC_PARAMS names a curve hsmlab does not keep keys on (P-256, P-384, secp256k1)')
      // CKA_EC_POINT is the uncompressed point in a DER OCTET STRING (or, from some applications, bare).
      const point = der[0] === 0x04 && der.length > 2 && der[1] === der.length - 2 ? der.subarray(2) : der[0] === 0x04 && der[1] === 0x81 ? der.subarray(3) : der
      const size = (point.length - 1) / 2
      if (point[0] !== 0x04 || !Number.isInteger(size)) fail(Ckr.ATTRIBUTE_VALUE_INVALID, 'CKA_EC_POINT is not an uncompressed point')
      const crv = curve.name === 'secp256k1' ? 'secp256k1' : curve.name
      return createPublicKey({ key: { kty: 'EC', crv, x: base64url(point.subarray(1, 1 + size)), y: base64url(point.subarray(1 + size)) }, format: 'jwk' }).export({ type: 'spki', format: 'der' })
    }
  } catch (err) {
    if (err instanceof Refusal) throw err
    throw new Refusal(Ckr.ATTRIBUTE_VALUE_INVALID, `the public key does not decode: ${(err as Error).message}`)
  }
  return fail(Ckr.ATTRIBUTE_VALUE_INVALID, 'C_CreateObject makes RSA (CKK_RSA) and EC (CKK_EC) public keys')
}

/** The running daemon. */
export class ClientDaemon {
  private readonly server: Server
  private readonly probe: LinkSet
  private readonly apps = new Map<string, App>()
  private readonly sockets = new Set<Socket>()
  private readonly o: Required<Omit<ClientDaemonOptions, 'servers' | 'socketPath' | 'label' | 'logger'>>
  private stopped = false

  private constructor (readonly options: ClientDaemonOptions, private readonly trustAnchors: Map<string, Uint8Array>) {
    const d = clientDaemonDefaults
    this.o = {
      frameBytesMax: options.frameBytesMax ?? d.frameBytesMax,
      connectionsMax: options.connectionsMax ?? d.connectionsMax,
      pendingPerConnectionMax: options.pendingPerConnectionMax ?? d.pendingPerConnectionMax,
      hsmRequestTimeoutMs: options.hsmRequestTimeoutMs ?? d.hsmRequestTimeoutMs,
      hsmConnectTimeoutMs: options.hsmConnectTimeoutMs ?? d.hsmConnectTimeoutMs,
      operationTimeoutMs: options.operationTimeoutMs ?? d.operationTimeoutMs,
      reconnectDelayMs: options.reconnectDelayMs ?? d.reconnectDelayMs,
      reconnectDelayMaxMs: options.reconnectDelayMaxMs ?? d.reconnectDelayMaxMs,
      tokenKeyMinServers: options.tokenKeyMinServers ?? d.tokenKeyMinServers,
      tokenKeySyncTimeoutMs: options.tokenKeySyncTimeoutMs ?? d.tokenKeySyncTimeoutMs,
      destroyedRememberedMax: options.destroyedRememberedMax ?? d.destroyedRememberedMax,
      findResultsMax: options.findResultsMax ?? d.findResultsMax
    }
    this.probe = this.linkSet()
    this.server = createServer(socket => { this.accept(socket) })
  }

  /** Reads the trust anchors, connects to the HSMs it can, and listens. */
  static async start (options: ClientDaemonOptions): Promise<ClientDaemon> {
    const anchors = new Map<string, Uint8Array>()
    for (const s of options.servers) {
      if (!anchors.has(s.caFile)) anchors.set(s.caFile, decodeTrustAnchor(await readFile(s.caFile, 'utf8')))
    }
    const daemon = new ClientDaemon(options, anchors)
    await daemon.probe.start()
    await daemon.listen()
    return daemon
  }

  get socketPath (): string { return this.options.socketPath }

  /** HSMs the daemon's own connections reach now. */
  get connectedHsms (): number { return this.probe.openLinks().length }

  private linkSet (credentials?: { userName: string, password: string }): LinkSet {
    return new LinkSet({
      servers: this.options.servers.filter(s => s.enabled),
      trustAnchors: this.trustAnchors,
      connectTimeoutMs: this.o.hsmConnectTimeoutMs,
      requestTimeoutMs: this.o.hsmRequestTimeoutMs,
      reconnectDelayMs: this.o.reconnectDelayMs,
      reconnectDelayMaxMs: this.o.reconnectDelayMaxMs,
      logger: this.options.logger,
      ...(credentials === undefined ? {} : { credentials })
    })
  }

  private async listen (): Promise<void> {
    const path = this.options.socketPath
    // A socket file left by a daemon that died is removed; one a live daemon answers on is not.
    const live = await new Promise<boolean>(resolve => {
      const probe = createConnection(path)
      probe.once('connect', () => { probe.destroy(); resolve(true) })
      probe.once('error', () => { resolve(false) })
    })
    if (live) throw new ClientDaemonError(CLIENT_DAEMON_ERR_LISTEN, `another client daemon answers on ${path}; stop it or choose another --socket`)
    await unlink(path).catch(() => {})
    // The socket is made owner-only from its first moment (umask), and set so again in case the umask was ignored.
    const umask = process.umask(0o177)
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', err => { reject(new ClientDaemonError(CLIENT_DAEMON_ERR_LISTEN, `cannot listen on ${path}: ${err.message}`, { cause: err })) })
        this.server.listen(path, () => { resolve() })
      })
    } finally {
      process.umask(umask)
    }
    await chmod(path, 0o600)
    this.server.maxConnections = this.o.connectionsMax
  }

  private accept (socket: Socket): void {
    this.sockets.add(socket)
    const reader = new FrameReader(this.o.frameBytesMax)
    let app: App | undefined
    let queue: Promise<void> = Promise.resolve()
    let pending = 0
    const log = this.options.logger
    socket.on('data', chunk => {
      let bodies: Buffer[]
      try {
        bodies = reader.push(chunk)
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'bad frame; closing the connection')
        socket.destroy()
        return
      }
      for (const body of bodies) {
        if (++pending > this.o.pendingPerConnectionMax) {
          log.warn({ pending }, 'too many requests in flight on one connection; closing it')
          socket.destroy()
          return
        }
        queue = queue.then(async () => {
          const response = await this.handle(body, () => app, a => { app = a })
          pending--
          if (!socket.destroyed) socket.write(response)
        })
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.sockets.delete(socket)
      if (app !== undefined && --app.sockets === 0) void this.dropApp(app)
    })
  }

  private async dropApp (app: App): Promise<void> {
    this.apps.delete(app.token)
    app.objects.clear()
    await app.login?.stop()
  }

  /** Answers one request body; never throws. */
  private async handle (body: Buffer, getApp: () => App | undefined, setApp: (app: App) => void): Promise<Buffer> {
    let op = 0
    try {
      if (body.length < 4) throw new ClientDaemonError(CLIENT_DAEMON_ERR_FRAME, 'a request shorter than its header')
      op = body.readUInt16BE(0)
      const fields = decodeFields(body, 4)
      const deadline = Date.now() + this.o.operationTimeoutMs
      if (op === Op.PING) return encodeResponse(Ckr.OK, [])
      if (op === Op.HELLO) return encodeResponse(Ckr.OK, this.hello(fields, getApp(), setApp))
      const app = getApp()
      if (app === undefined) throw new Refusal(Ckr.ARGUMENTS_BAD, 'HELLO must come first on a connection')
      return encodeResponse(Ckr.OK, await this.dispatch(op, fields, app, deadline))
    } catch (err) {
      const { rv, message } = this.failure(err, op)
      this.options.logger.debug({ op, rv, err: message }, 'request failed')
      return encodeResponse(rv, [[Tag.MESSAGE, Buffer.from(message)]])
    }
  }

  private failure (err: unknown, op: number): { rv: number, message: string } {
    if (err instanceof Refusal) return { rv: err.rv, message: err.message }
    if (err instanceof WireError) return { rv: returnValueOf(err.status, KIND_OF_OP.get(op) ?? 'object'), message: err.message }
    if (err instanceof ClusterUnreachable) return { rv: Ckr.DEVICE_ERROR, message: err.message }
    if (err instanceof ClientDaemonError) return { rv: Ckr.ARGUMENTS_BAD, message: err.message }
    this.options.logger.error({ op, err: (err as Error).stack }, 'unexpected failure')
    return { rv: Ckr.FUNCTION_FAILED, message: (err as Error).message }
  }

  private hello (fields: Fields, current: App | undefined, setApp: (app: App) => void): Field[] {
    const token = fields.get(Tag.APP)
    if (token === undefined || token.length !== 16) throw new Refusal(Ckr.ARGUMENTS_BAD, 'HELLO needs the 16-byte application token')
    const ulongBytes = fields.u64(Tag.ULONG_BYTES)
    if (ulongBytes !== 8) throw new Refusal(Ckr.GENERAL_ERROR, `the library's CK_ULONG is ${String(ulongBytes)} bytes; the daemon speaks 8 (LP64)`)
    if (current === undefined) {
      const key = token.toString('hex')
      let app = this.apps.get(key)
      if (app === undefined) {
        app = { token: key, sockets: 0, objects: new Map(), destroyed: new Set(), importKeys: new Map() }
        this.apps.set(key, app)
      }
      app.sockets++
      setApp(app)
    }
    const open = this.probe.openLinks()
    const clusterId = open[0]?.connection?.clusterId ?? ''
    return [
      [Tag.TOKEN_LABEL, Buffer.from(this.options.label ?? 'hsmlab')],
      [Tag.SERIAL, Buffer.from(clusterId.replace(/^cluster-/, '').slice(0, 16))],
      [Tag.MODEL, Buffer.from('hsmlab')],
      [Tag.CLUSTER_ID, Buffer.from(clusterId)],
      [Tag.HSMS, u64(open.length)]
    ]
  }

  private loginOf (app: App): LinkSet {
    if (app.login === undefined) throw new Refusal(Ckr.USER_NOT_LOGGED_IN, 'log in first (C_Login with "<CU name>:<password>")')
    return app.login
  }

  /** The link a handle must be used on (a session object's), or undefined for a token object. */
  private route (app: App, handle: number): HsmLink | undefined {
    if (app.destroyed.has(handle)) throw new WireError(0xa8, `key ${handle} was destroyed`)
    const o = app.objects.get(handle)
    if (o === undefined) return undefined
    if (o.link.generation !== o.generation || !o.link.open) {
      app.objects.delete(handle)
      throw new WireError(0xa8, `session object ${handle} was on an HSM whose connection was lost`)
    }
    return o.link
  }

  private async dispatch (op: number, f: Fields, app: App, deadline: number): Promise<Field[]> {
    switch (op) {
      case Op.LOGIN: return await this.login(f, app, deadline)
      case Op.LOGOUT: {
        this.loginOf(app)
        await this.dropLogin(app)
        return []
      }
      case Op.OPEN_SESSION: return []
      case Op.CLOSE_SESSION: return await this.closeSession(f, app, deadline)
      case Op.DIGEST: {
        const algorithm = DIGESTS.get(f.u64(Tag.MECHANISM) ?? -1)
        if (algorithm === undefined) throw new Refusal(Ckr.MECHANISM_INVALID, 'digests are SHA-1, SHA-224, SHA-256, SHA-384 and SHA-512')
        return [[Tag.DATA, createHash(algorithm).update(f.get(Tag.DATA) ?? Buffer.alloc(0)).digest()]]
      }
      case Op.RANDOM: {
        const count = f.u64(Tag.COUNT) ?? 0
        const set = app.login ?? this.probe
        const { result } = await set.call('generateRandom', { bytes: count }, { retry: true, deadline })
        return [[Tag.DATA, Buffer.from(result.data)]]
      }
      default: break
    }
    const links = this.loginOf(app)
    switch (op) {
      case Op.FIND: return await this.find(f, app, links, deadline)
      case Op.GET_ATTRS: return await this.getAttributes(f, app, links, deadline)
      case Op.SET_ATTRS: return await this.setAttributes(f, app, links, deadline)
      case Op.GENERATE_KEY: return await this.generateKey(f, app, links, deadline)
      case Op.GENERATE_KEY_PAIR: return await this.generateKeyPair(f, app, links, deadline)
      case Op.DESTROY: {
        const handle = f.u64(Tag.HANDLE) ?? 0
        const pinned = this.route(app, handle)
        await links.call('deleteKey', { handle }, { retry: false, deadline, ...(pinned === undefined ? {} : { pinned }) })
        if (pinned === undefined) {
          app.destroyed.add(handle)
          if (app.destroyed.size > this.o.destroyedRememberedMax) app.destroyed.delete(app.destroyed.values().next().value as number)
        }
        app.objects.delete(handle)
        return []
      }
      case Op.ENCRYPT: case Op.DECRYPT: case Op.SIGN: case Op.VERIFY: return await this.crypt(op, f, app, links, deadline)
      case Op.WRAP: return await this.wrap(f, app, links, deadline)
      case Op.UNWRAP: return await this.unwrap(f, app, links, deadline)
      case Op.CREATE_OBJECT: return await this.createObject(f, app, links, deadline)
      default: throw new Refusal(Ckr.FUNCTION_FAILED, `unknown operation ${op}`)
    }
  }

  private async login (f: Fields, app: App, deadline: number): Promise<Field[]> {
    if (app.login !== undefined) throw new Refusal(Ckr.USER_ALREADY_LOGGED_IN, 'this application is already logged in')
    const pin = f.string(Tag.PIN) ?? ''
    const colon = pin.indexOf(':')
    if (colon <= 0) throw new Refusal(Ckr.PIN_INCORRECT, 'the PIN is "<CU name>:<password>", as CloudHSM\'s library has it')
    const set = this.linkSet({ userName: pin.slice(0, colon), password: pin.slice(colon + 1) })
    await Promise.race([set.start(), new Promise(resolve => { setTimeout(resolve, Math.max(0, deadline - Date.now())).unref() })])
    if (set.loginFailure !== undefined || set.openLinks().length === 0) {
      const failure = set.loginFailure
      await set.stop()
      if (failure !== undefined) throw failure
      throw new ClusterUnreachable('no HSM of the cluster could be reached to log in')
    }
    // Another socket of the application may have logged in meanwhile.
    if (app.login !== undefined) {
      await set.stop()
      throw new Refusal(Ckr.USER_ALREADY_LOGGED_IN, 'this application is already logged in')
    }
    app.login = set
    this.options.logger.info({ user: pin.slice(0, colon), hsms: set.openLinks().length }, 'application logged in')
    return []
  }

  private async dropLogin (app: App): Promise<void> {
    const set = app.login
    app.login = undefined
    app.objects.clear()
    app.importKeys.clear()
    await set?.stop()
  }

  private async closeSession (f: Fields, app: App, deadline: number): Promise<Field[]> {
    const session = f.u64(Tag.SESSION)
    const mine = [...app.objects].filter(([, o]) => session === undefined || o.session === session)
    await Promise.all(mine.map(async ([handle, o]) => {
      app.objects.delete(handle)
      if (app.login === undefined || !o.link.open || o.link.generation !== o.generation) return
      try {
        await app.login.call('deleteKey', { handle }, { retry: false, deadline, pinned: o.link })
      } catch {
        // The session key is gone either way once its HSM session ends.
      }
    }))
    return []
  }

  private async viewOf (links: LinkSet, app: App, handle: number, deadline: number): Promise<ObjectView> {
    const pinned = this.route(app, handle)
    const { result } = await links.call('getAttribute', { handle, attribute: 512 }, { retry: true, deadline, ...(pinned === undefined ? {} : { pinned }) })
    return objectView(result.attributes)
  }

  private async find (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const template = templateOf(f, Tag.ATTR)
    const token = templateBool(template, Cka.TOKEN)
    const args: { keyClass?: number, keyType?: number, label?: string, id?: string, session: boolean } = { session: false }
    const keyClass = templateUlong(template, Cka.CLASS)
    // CloudHSM keeps keys only: a search for certificates or data objects finds nothing.
    if (keyClass !== undefined && keyClass !== KeyClass.PUBLIC && keyClass !== KeyClass.PRIVATE && keyClass !== KeyClass.SECRET) return []
    if (keyClass !== undefined) args.keyClass = keyClass
    const keyType = templateUlong(template, Cka.KEY_TYPE)
    if (keyType !== undefined) args.keyType = keyType
    const label = templateString(template, Cka.LABEL)
    if (label !== undefined) args.label = label
    const id = template.get(Cka.ID)
    if (id !== undefined) args.id = idString(id)
    const found: number[] = []
    if (token !== false) {
      // Every HSM is asked: a token key is acknowledged once on the HSM that made it and reaches
      // the others a moment later, and an application finds what it just made.
      const answers = await links.fromAll('findKey', args, deadline)
      const union = new Set(answers.flatMap(a => a.handles))
      found.push(...[...union].sort((a, b) => a - b).filter(h => !app.objects.has(h) && !app.destroyed.has(h)))
    }
    if (token !== true) {
      for (const [handle, o] of app.objects) if (o.link.open && o.link.generation === o.generation) found.push(handle)
    }
    // findKey filtered by class, type, label and ID; anything else in the template is checked on each object.
    const rest = [...template.keys()].filter(t => t !== Cka.CLASS && t !== Cka.KEY_TYPE && t !== Cka.LABEL && t !== Cka.ID && t !== Cka.TOKEN)
    const sessionFilter = token !== true && [...template.keys()].some(t => t === Cka.CLASS || t === Cka.KEY_TYPE || t === Cka.LABEL || t === Cka.ID)
    let handles = found
    if (rest.length > 0 || sessionFilter) {
      const checked: number[] = []
      for (const handle of found) {
        if (rest.length === 0 && !app.objects.has(handle)) { checked.push(handle); continue }
        try {
          if (matches(await this.viewOf(links, app, handle, deadline), template)) checked.push(handle)
        } catch (err) {
          if (!(err instanceof WireError)) throw err
          // Deleted meanwhile: not found.
        }
      }
      handles = checked
    }
    return handles.slice(0, this.o.findResultsMax).map(h => [Tag.HANDLE, u64(h)])
  }

  private async getAttributes (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const view = await this.viewOf(links, app, f.u64(Tag.HANDLE) ?? 0, deadline)
    const out: Field[] = []
    for (const raw of f.all(Tag.ATTR_TYPE)) {
      const type = Number(raw.readBigUInt64BE(0))
      const value = view.values.get(type)
      if (value !== undefined) out.push(attrField(Tag.ATTR, type, value))
      else out.push([view.sensitive.has(type) ? Tag.ATTR_SENSITIVE : Tag.ATTR_INVALID, u64(type)])
    }
    return out
  }

  private async setAttributes (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const handle = f.u64(Tag.HANDLE) ?? 0
    const pinned = this.route(app, handle)
    const changes: Array<{ attribute: number, value: number | string }> = []
    for (const [type, value] of templateOf(f, Tag.ATTR)) {
      if (type === Cka.LABEL) changes.push({ attribute: type, value: value.toString('utf8') })
      else if ((SETTABLE_FLAGS as readonly number[]).includes(type)) {
        changes.push({ attribute: type, value: value.some(b => b !== 0) ? 1 : 0 })
      } else {
        throw new Refusal(Ckr.ATTRIBUTE_READ_ONLY, `attribute 0x${type.toString(16)} cannot be changed (CKA_LABEL and the usage attributes can)`)
      }
    }
    for (const change of changes) {
      if (pinned !== undefined) await links.call('setAttribute', { handle, ...change }, { retry: false, deadline, pinned })
      else await links.everywhere('setAttribute', { handle, ...change }, deadline)
    }
    return []
  }

  /** What a new key's template says that every creation takes. */
  private creation (t: Template, links: LinkSet): { label: string, id?: string, session: boolean, extractable?: boolean, minServers?: number, timeoutMs?: number } {
    const session = templateBool(t, Cka.TOKEN) !== true
    const id = t.get(Cka.ID)
    const extractable = templateBool(t, Cka.EXTRACTABLE)
    const out: ReturnType<ClientDaemon['creation']> = { label: templateString(t, Cka.LABEL) ?? '', session }
    if (id !== undefined && id.length > 0) out.id = idString(id)
    if (extractable !== undefined) out.extractable = extractable
    if (!session) {
      out.minServers = Math.max(1, Math.min(this.o.tokenKeyMinServers, links.openLinks().length))
      out.timeoutMs = this.o.tokenKeySyncTimeoutMs
    }
    return out
  }

  private remember (app: App, session: number, link: HsmLink, handles: number[]): void {
    for (const h of handles) app.objects.set(h, { link, generation: link.generation, session })
  }

  private async generateKey (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const mechanism = f.u64(Tag.MECHANISM)
    const t = templateOf(f, Tag.ATTR)
    const keyType = mechanism === Ckm.AES_KEY_GEN ? KeyType.AES : mechanism === Ckm.GENERIC_SECRET_KEY_GEN ? KeyType.GENERIC_SECRET : undefined
    if (keyType === undefined) throw new Refusal(Ckr.MECHANISM_INVALID, 'C_GenerateKey makes AES (CKM_AES_KEY_GEN) and generic secret (CKM_GENERIC_SECRET_KEY_GEN) keys')
    const sizeBytes = templateUlong(t, Cka.VALUE_LEN)
    if (sizeBytes === undefined) throw new Refusal(Ckr.TEMPLATE_INCOMPLETE, 'the template needs CKA_VALUE_LEN')
    const wantedClass = templateUlong(t, Cka.CLASS)
    if (wantedClass !== undefined && wantedClass !== KeyClass.SECRET) throw new Refusal(Ckr.TEMPLATE_INCONSISTENT, 'C_GenerateKey makes secret keys')
    const creation = this.creation(t, links)
    const usage = usageOf(t)
    const { result, link } = await links.call('generateSymmetricKey', { ...creation, keyType, sizeBytes, usageOn: usage.on, usageOff: usage.off }, { retry: false, deadline })
    if (creation.session) this.remember(app, f.u64(Tag.SESSION) ?? 0, link, [result.handle])
    return [[Tag.HANDLE, u64(result.handle)]]
  }

  private async generateKeyPair (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const mechanism = f.u64(Tag.MECHANISM)
    const pub = templateOf(f, Tag.PUB_ATTR)
    const priv = templateOf(f, Tag.ATTR)
    const args: { algorithm: 'RSA' | 'EC', modulusBits?: number, publicExponent?: number, curveId?: number } = { algorithm: 'RSA' }
    if (mechanism === Ckm.RSA_PKCS_KEY_PAIR_GEN) {
      const bits = templateUlong(pub, Cka.MODULUS_BITS)
      if (bits === undefined) throw new Refusal(Ckr.TEMPLATE_INCOMPLETE, 'the public key template needs CKA_MODULUS_BITS')
      args.modulusBits = bits
      const e = pub.get(Cka.PUBLIC_EXPONENT)
      if (e !== undefined && e.length > 0) {
        const n = Number(BigInt('0x' + e.toString('hex')))
        if (!Number.isSafeInteger(n)) throw new Refusal(Ckr.TEMPLATE_INCONSISTENT, 'the public exponent is too large')
        args.publicExponent = n
      }
    } else if (mechanism === Ckm.EC_KEY_PAIR_GEN) {
      args.algorithm = 'EC'
      const params = pub.get(Cka.EC_PARAMS) ?? priv.get(Cka.EC_PARAMS)
      if (params === undefined) throw new Refusal(Ckr.TEMPLATE_INCOMPLETE, 'the public key template needs CKA_EC_PARAMS')
      const curve = EC_CURVES.find(c => c.oid.equals(params))
      if (curve === undefined) throw new Refusal(Ckr.ATTRIBUTE_VALUE_INVALID, 'CKA_EC_PARAMS names a curve hsmlab does not make keys on (P-256, P-384, secp256k1)')
      args.curveId = curve.curveId
    } else {
      throw new Refusal(Ckr.MECHANISM_INVALID, 'C_GenerateKeyPair makes RSA (CKM_RSA_PKCS_KEY_PAIR_GEN) and EC (CKM_EC_KEY_PAIR_GEN) keys')
    }
    // The HSM makes both halves alike: token-ness and label from the private template, else the public one.
    const merged: Template = new Map([...pub, ...priv])
    const creation = this.creation(merged, links)
    const usage = usageOf(priv)
    const publicUsage = usageOf(pub)
    const { result, link } = await links.call('generateKeyPair', {
      ...creation, ...args, usageOn: usage.on, usageOff: usage.off, publicUsageOn: publicUsage.on, publicUsageOff: publicUsage.off
    }, { retry: false, deadline })
    if (creation.session) this.remember(app, f.u64(Tag.SESSION) ?? 0, link, [result.publicHandle, result.privateHandle])
    return [[Tag.HANDLE, u64(result.publicHandle)], [Tag.HANDLE2, u64(result.privateHandle)]]
  }

  private async crypt (op: number, f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const handle = f.u64(Tag.HANDLE) ?? 0
    const pinned = this.route(app, handle)
    const call: MechanismParams & { handle: number, mechanism: number, data: Uint8Array } = {
      handle, mechanism: f.u64(Tag.MECHANISM) ?? 0, data: f.get(Tag.DATA) ?? Buffer.alloc(0)
    }
    const iv = f.get(Tag.IV)
    if (iv !== undefined) call.iv = iv
    const aad = f.get(Tag.AAD)
    if (aad !== undefined && aad.length > 0) call.aad = aad
    const tagBits = f.u64(Tag.TAG_BITS)
    if (tagBits !== undefined) call.tagBits = tagBits
    const hash = f.u64(Tag.HASH_MECHANISM)
    if (hash !== undefined) call.hashMechanism = hash
    const salt = f.u64(Tag.SALT_BYTES)
    if (salt !== undefined) call.saltBytes = salt
    const label = f.get(Tag.OAEP_LABEL)
    if (label !== undefined && label.length > 0) call.label = label
    const opts = { retry: true, deadline, ...(pinned === undefined ? {} : { pinned }) }
    switch (op) {
      case Op.ENCRYPT: return [[Tag.DATA, Buffer.from((await links.call('p11Encrypt', call, opts)).result.data)]]
      case Op.DECRYPT: return [[Tag.DATA, Buffer.from((await links.call('p11Decrypt', call, opts)).result.data)]]
      case Op.SIGN: return [[Tag.SIGNATURE, Buffer.from((await links.call('p11Sign', call, opts)).result.signature)]]
      default: {
        await links.call('p11Verify', { ...call, signature: f.get(Tag.SIGNATURE) ?? Buffer.alloc(0) }, opts)
        return []
      }
    }
  }

  private hsmWrapMechanism (mechanism: number | undefined): number {
    if (mechanism === Ckm.AES_KEY_WRAP || mechanism === Ckm.AES_KEY_WRAP_PAD) return HSM_WRAP.AES_KEY_WRAP
    if (mechanism === Ckm.RSA_PKCS_OAEP) return HSM_WRAP.RSA_OAEP
    throw new Refusal(Ckr.MECHANISM_INVALID, 'keys are wrapped with CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD or CKM_RSA_PKCS_OAEP')
  }

  private async wrap (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const mechanism = this.hsmWrapMechanism(f.u64(Tag.MECHANISM))
    const handle = f.u64(Tag.HANDLE) ?? 0
    const wrappingHandle = f.u64(Tag.HANDLE2) ?? 0
    const pinned = this.route(app, handle) ?? this.route(app, wrappingHandle)
    const { result } = await links.call('wrapKey', { handle, wrappingHandle, mechanism }, { retry: true, deadline, ...(pinned === undefined ? {} : { pinned }) })
    return [[Tag.DATA, bareWrapped(result.wrapped)]]
  }

  private async unwrap (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const mechanism = this.hsmWrapMechanism(f.u64(Tag.MECHANISM))
    const wrappingHandle = f.u64(Tag.HANDLE2) ?? 0
    const pinned = this.route(app, wrappingHandle)
    const t = templateOf(f, Tag.ATTR)
    const keyClass = templateUlong(t, Cka.CLASS)
    const keyType = templateUlong(t, Cka.KEY_TYPE)
    if (keyClass === undefined || keyType === undefined) throw new Refusal(Ckr.TEMPLATE_INCOMPLETE, 'the unwrap template needs CKA_CLASS and CKA_KEY_TYPE')
    const creation = this.creation(t, links)
    const args = {
      wrapped: f.get(Tag.DATA) ?? Buffer.alloc(0), wrappingHandle, mechanism, keyClass, keyType, label: creation.label, session: creation.session,
      ...(creation.extractable === undefined ? {} : { extractable: creation.extractable }),
      ...(creation.id === undefined ? {} : { id: creation.id })
    }
    if (pinned !== undefined && !creation.session) throw new Refusal(Ckr.TEMPLATE_INCONSISTENT, 'a token key cannot be unwrapped with a session wrapping key (the key would live on one HSM only)')
    const { result, link } = await links.call('unwrapKey', args, { retry: false, deadline, ...(pinned === undefined ? {} : { pinned }) })
    if (creation.session) this.remember(app, f.u64(Tag.SESSION) ?? 0, link, [result.handle])
    return [[Tag.HANDLE, u64(result.handle)]]
  }

  /**
   * C_CreateObject: a secret key (AES, generic secret) from its CKA_VALUE, or a public key (RSA,
   * EC) from its public parts. The template is checked as PKCS#11 v2.40 4.1.1 orders it. A secret
   * key reaches the HSM as KMU imSymKey brings one: wrapped on the HSM under a wrapping key of the
   * application's (aesWrapData, over the encrypted channel) and unwrapped there into the new key,
   * with the template's usage; so the plaintext never travels outside the channel and the key is
   * made by the HSM's own unwrap path (replicated as a token key, counted, checked).
   */
  private async createObject (f: Fields, app: App, links: LinkSet, deadline: number): Promise<Field[]> {
    const t = templateOf(f, Tag.ATTR)
    const keyClass = templateUlong(t, Cka.CLASS)
    if (keyClass === undefined) throw new Refusal(Ckr.TEMPLATE_INCOMPLETE, 'the template needs CKA_CLASS')
    if (keyClass !== KeyClass.SECRET && keyClass !== KeyClass.PUBLIC) {
      throw new Refusal(Ckr.ATTRIBUTE_VALUE_INVALID, 'C_CreateObject makes secret keys and public keys (CloudHSM keeps keys only; private keys are imported with C_UnwrapKey)')
    }
    const keyType = templateUlong(t, Cka.KEY_TYPE)
    if (keyType === undefined) throw new Refusal(Ckr.TEMPLATE_INCOMPLETE, 'the template needs CKA_KEY_TYPE')
    const allowed = keyClass === KeyClass.SECRET ? CREATE_SECRET_ATTRIBUTES : CREATE_PUBLIC_ATTRIBUTES
    for (const type of t.keys()) {
      if (CREATE_READ_ONLY.has(type)) throw new Refusal(Ckr.ATTRIBUTE_READ_ONLY, `attribute 0x${type.toString(16)} is set by the HSM, not by the template`)
      if (!allowed.has(type)) throw new Refusal(Ckr.ATTRIBUTE_TYPE_INVALID, `attribute 0x${type.toString(16)} is not one of this object class's`)
    }
    for (const [type, why] of [[Cka.PRIVATE, 'every key is private to its crypto user'], [Cka.MODIFIABLE, 'keys are modifiable'], [Cka.SENSITIVE, 'the HSM keeps every secret key sensitive']] as const) {
      if (templateBool(t, type) === false) throw new Refusal(Ckr.ATTRIBUTE_VALUE_INVALID, `CKA 0x${type.toString(16)} false: ${why}`)
    }
    if (templateBool(t, Cka.COPYABLE) === true) throw new Refusal(Ckr.ATTRIBUTE_VALUE_INVALID, 'keys are not copyable (C_CopyObject is not supported)')
    const creation = this.creation(t, links)
    const usage = usageOf(t)
    const session = f.u64(Tag.SESSION) ?? 0
    if (keyClass === KeyClass.PUBLIC) {
      const spki = publicKeySpki(keyType, t)
      const { result, link } = await links.call('importPublicKey', {
        label: creation.label, session: creation.session, usageOn: usage.on, usageOff: usage.off, spki,
        ...(creation.id === undefined ? {} : { id: creation.id }),
        ...(creation.minServers === undefined ? {} : { minServers: creation.minServers, timeoutMs: creation.timeoutMs ?? this.o.tokenKeySyncTimeoutMs })
      }, { retry: false, deadline })
      if (creation.session) this.remember(app, session, link, [result.handle])
      return [[Tag.HANDLE, u64(result.handle)]]
    }
    if (keyType !== KeyType.AES && keyType !== KeyType.GENERIC_SECRET) {
      throw new Refusal(Ckr.ATTRIBUTE_VALUE_INVALID, 'C_CreateObject makes AES (CKK_AES) and generic secret (CKK_GENERIC_SECRET) keys')
    }
    const value = t.get(Cka.VALUE)
    if (value === undefined) throw new Refusal(Ckr.TEMPLATE_INCOMPLETE, 'the template needs CKA_VALUE')
    if (keyType === KeyType.AES ? ![16, 24, 32].includes(value.length) : value.length < 1 || value.length > GENERIC_SECRET_BYTES_MAX) {
      throw new Refusal(Ckr.ATTRIBUTE_VALUE_INVALID, keyType === KeyType.AES ? 'an AES key is 16, 24 or 32 bytes' : `a generic secret key is 1 to ${GENERIC_SECRET_BYTES_MAX} bytes`)
    }
    const { link, handle: wrappingHandle } = await this.importKeyOf(app, links, deadline)
    const opts = { retry: false, deadline, pinned: link }
    const { result: wrapped } = await links.call('aesWrapData', { wrappingHandle, unwrap: false, data: value, keyWrap: true }, opts)
    const { result } = await links.call('unwrapKey', {
      wrapped: wrapped.data, wrappingHandle, mechanism: HSM_WRAP.AES_KEY_WRAP, keyClass, keyType,
      label: creation.label, session: creation.session, usageOn: usage.on, usageOff: usage.off,
      ...(creation.extractable === undefined ? {} : { extractable: creation.extractable }),
      ...(creation.id === undefined ? {} : { id: creation.id }),
      ...(creation.minServers === undefined ? {} : { minServers: creation.minServers, timeoutMs: creation.timeoutMs ?? this.o.tokenKeySyncTimeoutMs })
    }, opts)
    if (creation.session) this.remember(app, session, link, [result.handle])
    return [[Tag.HANDLE, u64(result.handle)]]
  }

  /** The application's wrapping key for C_CreateObject on an open link, made on the first use (an HSM session key: it dies with the connection). */
  private async importKeyOf (app: App, links: LinkSet, deadline: number): Promise<{ link: HsmLink, handle: number }> {
    for (const [link, k] of app.importKeys) {
      if (link.open && link.generation === k.generation) return { link, handle: k.handle }
      app.importKeys.delete(link)
    }
    if (app.importKeyMaking !== undefined) return await app.importKeyMaking
    const making = (async () => {
      const { result, link } = await links.call('generateSymmetricKey', {
        label: '', session: true, extractable: false, keyType: KeyType.AES, sizeBytes: 32,
        usageOn: [Cka.WRAP, Cka.UNWRAP], usageOff: [Cka.ENCRYPT, Cka.DECRYPT, Cka.SIGN, Cka.VERIFY, Cka.DERIVE]
      }, { retry: false, deadline })
      // A logout meanwhile dropped this login's keys: the key is not kept for the next login.
      if (app.login === links) app.importKeys.set(link, { generation: link.generation, handle: result.handle })
      return { link, handle: result.handle }
    })()
    app.importKeyMaking = making
    try {
      return await making
    } finally {
      if (app.importKeyMaking === making) delete app.importKeyMaking
    }
  }

  /** Closes the socket and every HSM connection; safe to call twice. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    const closed = new Promise<void>(resolve => { this.server.close(() => { resolve() }) })
    for (const s of this.sockets) s.destroy()
    await closed
    await Promise.all([...this.apps.values()].map(async app => { await app.login?.stop() }))
    this.apps.clear()
    await this.probe.stop()
    await unlink(this.options.socketPath).catch(() => {})
  }
}

/** The kind of each operation, for the return-value table. */
const KIND_OF_OP: ReadonlyMap<number, OperationKind> = new Map<number, OperationKind>([
  [Op.LOGIN, 'login'], [Op.FIND, 'object'], [Op.GET_ATTRS, 'object'], [Op.SET_ATTRS, 'set'], [Op.GENERATE_KEY, 'create'],
  [Op.GENERATE_KEY_PAIR, 'create'], [Op.DESTROY, 'destroy'], [Op.ENCRYPT, 'encrypt'], [Op.DECRYPT, 'decrypt'], [Op.SIGN, 'sign'],
  [Op.VERIFY, 'verify'], [Op.WRAP, 'wrap'], [Op.UNWRAP, 'unwrap'], [Op.CREATE_OBJECT, 'create']
])

/** Starts a daemon; `stop()` ends it. */
export async function startClientDaemon (options: ClientDaemonOptions): Promise<ClientDaemon> {
  return await ClientDaemon.start(options)
}

/** A fresh application token, as the C library draws one (for tests and the bench). */
export function applicationToken (): Buffer {
  return randomBytes(16)
}
