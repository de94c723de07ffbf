/**
 * The state an HSM process holds and the shape of its operation handlers. The server
 * (server.ts) owns connections and sessions; handler modules (handlers/*.ts) each export a
 * partial `HandlerTable`; replication.ts keeps the cluster's token keys in step. They meet here.
 */
import type { HsmCertificate, PasswordHash, SecureChannel, SigningKeyPair } from '@hsmlab/crypto'
import type { AttributeValue, OperationArgs, OperationName, OperationResult, PeerAddress, UserType } from '@hsmlab/protocol'
import type { Store } from '@hsmlab/store'

/** A user as one HSM stores it. Names compare case-insensitively; the type and password do not. */
export interface UserRecord {
  userId: number
  userType: UserType
  userName: string
  password: PasswordHash
  loginFailureCount: number
  mofnPubKey: boolean
  twoFactor: boolean
  /**
   * The user's RSA-2048 public key (PEM), registered by registerQuorumPubKey or by `-2fa`: the
   * cluster uses the same key for quorum approvals and the second factor. Absent for none.
   */
  publicKeyPem?: string
}

/** A key (or one half of a key pair) as one HSM stores it. */
export interface KeyRecord {
  handle: number
  /** OBJ_ATTR_CLASS: 2 public, 3 private, 4 secret. */
  keyClass: number
  /** OBJ_ATTR_KEY_TYPE. */
  keyType: number
  owner: number
  sharedWith: number[]
  mValue: number
  /** Every OBJ_ATTR_* the key has, by id (label, id, flags, lengths, KCV, modulus...). */
  attributes: Record<number, AttributeValue>
  /** Secret bytes, or PKCS#8 DER for a private key, or SPKI DER for a public key. */
  material: Uint8Array
  /** Handle of the other half of a key pair, if any. */
  pairHandle?: number
}

/** What the key store keeps for a deleted key, so that a delete reaches every HSM and a handle is never reused. */
export interface KeyTombstone {
  handle: number
  deleted: true
}

/** What one connection knows about itself. */
export interface Session {
  readonly id: number
  /** The user logged in on this connection, if any. */
  user?: { userId: number, userType: UserType, userName: string }
  /** Set once the other end proved it is an HSM of this cluster (peerHello). */
  peer?: { hsmId: string }
  /** Session keys: on this HSM only, gone when the connection closes. */
  readonly sessionKeys: Map<number, KeyRecord>
  /**
   * The connection's encrypted channel, set by the server after the handshake. peerHello checks
   * the other HSM's identity proof against its transcript, so a proof cannot be replayed on
   * another connection.
   */
  channel?: SecureChannel
}

/** Durable facts about this HSM, written at provisioning, kept in the `meta` store. */
export interface HsmIdentity {
  hsmId: string
  clusterId: string
  lineage: string
  /** Handles this HSM makes are `slot * 262144 + n`, so HSMs of a cluster never collide. */
  slot: number
  maskingKey: Uint8Array
  identity: SigningKeyPair
  certificate: HsmCertificate
  anchorPublicKey: Uint8Array
  label: string
  serialNumber: string
}

/** Limits of one HSM, from its command line. */
export interface HsmLimits {
  /** Token keys a cluster may hold. @default 3300 */
  keysMax: number
  /** Users an HSM may hold. @default 1024 */
  usersMax: number
  /** Failed logins after which a user is locked out. @default 5 */
  loginFailuresMax: number
}

/** Replication hooks the key handlers call (implemented in replication.ts). */
export interface Replicator {
  /**
   * A token key was created (and stored durably) here: push it to the peers, and resolve once it
   * is on `minServers` HSMs in all (this one included) or reject with MIN_SERVERS_NOT_MET after
   * `timeoutMs`.
   */
  keyCreated: (record: KeyRecord, minServers: number, timeoutMs: number) => Promise<void>
  /** A token key was deleted here: tell the peers. */
  keyDeleted: (handle: number) => void
  /** The peers changed (setPeers). */
  peersChanged: (peers: PeerAddress[]) => void
  start: () => Promise<void>
  stop: () => Promise<void>
}

/** Everything a handler may use. */
export interface HsmContext {
  readonly identity: HsmIdentity
  readonly limits: HsmLimits
  readonly users: Store<UserRecord>
  readonly keys: Store<KeyRecord | KeyTombstone>
  /** Sessions currently open (for "user is logged in" checks and session-key lookup). */
  readonly sessions: ReadonlySet<Session>
  readonly replicator: Replicator
  /** The next free handle in this HSM's slot. */
  allocateHandle: () => number
  /** Current peers of the cluster. */
  peers: () => PeerAddress[]
  /**
   * Runs `task` once every earlier exclusive task of this HSM has finished, one at a time.
   * Operations that read users and then change them (login counters, createUser, deleteUser,
   * changePassword, inserting a masked user) run their check-then-write inside it, so that two
   * connections cannot both pass a check and then both write. Keep slow work (password hashing,
   * network) outside.
   */
  runExclusive: <T>(task: () => Promise<T>) => Promise<T>
}

/** Handles one operation for one session; throws `WireError` to fail with a return code. */
export type Handler<O extends OperationName> = (ctx: HsmContext, session: Session, args: OperationArgs<O>) => Promise<OperationResult<O>>

/** A module's handlers by operation name. */
export type HandlerTable = { [O in OperationName]?: Handler<O> }

/** True for a tombstone. */
export function isTombstone (record: KeyRecord | KeyTombstone): record is KeyTombstone {
  return 'deleted' in record
}
