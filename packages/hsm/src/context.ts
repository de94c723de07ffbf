/**
 * The state an HSM process holds and the shape of its operation handlers. The server
 * (server.ts) owns connections and sessions; the key table (key-table.ts) owns the token keys;
 * handler modules (handlers/*.ts) each export a partial `HandlerTable`; replication.ts keeps the
 * cluster's token keys in step. They meet here.
 */
import type { HsmCertificate, PasswordHash, SecureChannel, SigningKeyPair } from '@hsmlab/crypto'
import type { OperationArgs, OperationName, OperationResult, PeerAddress, SyncRole, UserType } from '@hsmlab/protocol'
import type { Store } from '@hsmlab/store'
import type { KeyRecord, KeyTable } from './key-table.js'

// Keys are the key table's (key-table.ts); their shapes are named here too, beside the users'.
export type { KeyRecord, KeyTombstone } from './key-table.js'
export { isTombstone } from './key-table.js'

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

/** What one connection knows about itself. */
export interface Session {
  readonly id: number
  /** The user logged in on this connection, if any. */
  user?: { userId: number, userType: UserType, userName: string }
  /** Set once the other end proved it is an HSM of this cluster (peerHello). */
  peer?: { hsmId: string }
  /** Set once the other end proved it holds the cluster's trust anchor (syncHello): the control plane. */
  sync?: true
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
  /**
   * syncApply applied these masked objects and user deletions here: pass them on to the peers
   * (peerSyncApply), since peerPush never replaces a key a peer holds and users are not
   * replicated otherwise. Not waited for.
   */
  syncApplied?: (objects: Uint8Array[], deleteUsers: string[]) => void
  start: () => Promise<void>
  stop: () => Promise<void>
}

/** Everything a handler may use. */
export interface HsmContext {
  readonly identity: HsmIdentity
  readonly limits: HsmLimits
  readonly users: Store<UserRecord>
  /** The token keys and tombstones, with their locks and reservations. */
  readonly keys: KeyTable
  /** Sessions currently open (for "user is logged in" checks and session-key lookup). */
  readonly sessions: ReadonlySet<Session>
  readonly replicator: Replicator
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
  /**
   * The HSM's synchronisation role (sync-role.ts): while it is 'replica' or 'disassociated',
   * handlers refuse client changes to keys and users. Absent: 'none'.
   */
  syncRole?: () => { role: SyncRole, primaryClusterId?: string }
  /**
   * The names of users deleteUser deleted here (user-tombstones.ts), which syncChanges lists so
   * that a synchronisation task carries only real user deletions. Absent: none are kept.
   */
  userTombstones?: {
    deleting: (user: Pick<UserRecord, 'userName' | 'userType'>) => Promise<void>
    created: (userName: string) => Promise<void>
    names: () => string[]
  }
}

/** Handles one operation for one session; throws `WireError` to fail with a return code. */
export type Handler<O extends OperationName> = (ctx: HsmContext, session: Session, args: OperationArgs<O>) => Promise<OperationResult<O>>

/** A module's handlers by operation name. */
export type HandlerTable = { [O in OperationName]?: Handler<O> }

/** The user with this id on this HSM. */
export function findUserById (ctx: HsmContext, userId: number): UserRecord | undefined {
  const user = ctx.users.get(String(userId))
  if (user !== undefined && user.userId === userId) return user
  for (const u of ctx.users.values()) if (u.userId === userId) return u
  return undefined
}
