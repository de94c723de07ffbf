/**
 * An HSM context in memory for the key and masked-object handler tests: `memoryStore`s, a fixed
 * set of users, a handle counter, sessions, and a replicator that records what it was told.
 * Handlers are called directly, without a server.
 */
import { generateSecretKey, generateSigningKeyPair, issueCertificate } from '@hsmlab/crypto'
import type { PasswordHash, SigningKeyPair } from '@hsmlab/crypto'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { OperationArgs, OperationName, OperationResult, ReturnCodeKey, UserType } from '@hsmlab/protocol'
import { memoryStore } from '@hsmlab/store'
import type { Store } from '@hsmlab/store'
import { expect } from 'vitest'
import type { HandlerTable, HsmContext, HsmIdentity, KeyRecord, KeyTombstone, Replicator, Session, UserRecord } from '../src/context.js'
import { keyHandlers } from '../src/handlers/key-handlers.js'
import { maskedObjectHandlers } from '../src/handlers/masked-object-handlers.js'
import { peerHandlers } from '../src/handlers/peer-handlers.js'
import { KeyTable } from '../src/key-table.js'

/** The secrets of a test cluster; a "clone" shares lineage and masking key. */
export interface TestCluster {
  clusterId: string
  lineage: string
  maskingKey: Uint8Array
  anchor: SigningKeyPair
}

export function testCluster (lineage = `lineage-${Math.random().toString(36).slice(2)}`): TestCluster {
  return { clusterId: `cluster-${Math.random().toString(36).slice(2, 13).padEnd(11, 'a').replace(/[^a-z2-7]/g, 'a')}`, lineage, maskingKey: generateSecretKey(), anchor: generateSigningKeyPair() }
}

const FAKE_PASSWORD: PasswordHash = { algorithm: 'scrypt', salt: new Uint8Array(16), hash: new Uint8Array(32), cost: 16 }

function user (userId: number, userType: UserType, userName: string): UserRecord {
  return { userId, userType, userName, password: FAKE_PASSWORD, loginFailureCount: 0, mofnPubKey: false, twoFactor: false }
}

/** The users every test HSM starts with. */
export const TEST_USERS: readonly UserRecord[] = [
  user(1, 'CO', 'admin'),
  user(2, 'AU', 'app_user'),
  user(3, 'CU', 'alice'),
  user(4, 'CU', 'bob'),
  user(5, 'CU', 'carol'),
  user(6, 'CO', 'officer')
]

/** What the recording replicator was told. */
export interface RecordingReplicator extends Replicator {
  created: Array<{ handle: number, minServers: number, timeoutMs: number }>
  deleted: number[]
  /** Decides keyCreated's outcome; resolves by default. */
  onKeyCreated: (record: KeyRecord, minServers: number, timeoutMs: number) => Promise<void>
}

function recordingReplicator (): RecordingReplicator {
  const r: RecordingReplicator = {
    created: [],
    deleted: [],
    onKeyCreated: async () => {},
    keyCreated: async (record, minServers, timeoutMs) => {
      r.created.push({ handle: record.handle, minServers, timeoutMs })
      await r.onKeyCreated(record, minServers, timeoutMs)
    },
    keyDeleted: handle => { r.deleted.push(handle) },
    peersChanged: () => {},
    start: async () => {},
    stop: async () => {}
  }
  return r
}

/** One HSM in memory. */
export interface TestHsm {
  ctx: HsmContext
  keys: Store<KeyRecord | KeyTombstone>
  users: Store<UserRecord>
  replicator: RecordingReplicator
  sessions: Set<Session>
  /** A new session, logged in as `userName` (or nobody). */
  session: (userName?: string) => Session
  /** Calls a handler as `session`. */
  call: <O extends OperationName>(session: Session, op: O, args: OperationArgs<O>) => Promise<OperationResult<O>>
}

const handlers: HandlerTable = { ...keyHandlers, ...maskedObjectHandlers, ...peerHandlers }

/** A fresh in-memory HSM of `cluster` (a new cluster by default). */
export async function testHsm (options: { cluster?: TestCluster, slot?: number, keysMax?: number, users?: readonly UserRecord[], hsmId?: string } = {}): Promise<TestHsm> {
  const cluster = options.cluster ?? testCluster()
  const slot = options.slot ?? 0
  const hsmId = options.hsmId ?? `hsm-test${slot}aaaaaa`
  const identityKeys = generateSigningKeyPair()
  const identity: HsmIdentity = {
    hsmId,
    clusterId: cluster.clusterId,
    lineage: cluster.lineage,
    slot,
    maskingKey: cluster.maskingKey,
    identity: identityKeys,
    certificate: issueCertificate(cluster.anchor.secretKey, { hsmId, clusterId: cluster.clusterId, publicKey: identityKeys.publicKey }),
    anchorPublicKey: cluster.anchor.publicKey,
    label: 'cavium',
    serialNumber: '3.0A0101-ICM000001'
  }
  const keys = memoryStore<KeyRecord | KeyTombstone>()
  const users = memoryStore<UserRecord>()
  await users.apply((options.users ?? TEST_USERS).map(u => ({ op: 'put' as const, id: String(u.userId), value: u })))
  const replicator = recordingReplicator()
  const sessions = new Set<Session>()
  let next = 6
  let chain: Promise<unknown> = Promise.resolve()
  const keysMax = options.keysMax ?? 3300
  const ctx: HsmContext = {
    identity,
    limits: { keysMax, usersMax: 1024, loginFailuresMax: 5 },
    users,
    keys: new KeyTable({ store: keys, nextHandle: () => slot * 262144 + next++, keysMax, sessions }),
    sessions,
    replicator,
    peers: () => [],
    runExclusive: async <T>(task: () => Promise<T>): Promise<T> => {
      const run = chain.then(task, task)
      chain = run.catch(() => {})
      return await run
    }
  }
  let sessionId = 1
  const session = (userName?: string): Session => {
    const s: Session = { id: sessionId++, sessionKeys: new Map() }
    if (userName !== undefined) {
      const u = [...users.values()].find(x => x.userName === userName)
      if (u === undefined) throw new Error(`no test user ${userName}`)
      s.user = { userId: u.userId, userType: u.userType, userName: u.userName }
    }
    sessions.add(s)
    return s
  }
  const call = async <O extends OperationName>(s: Session, op: O, args: OperationArgs<O>): Promise<OperationResult<O>> => {
    const handler = handlers[op]
    if (handler === undefined) throw new Error(`no handler for ${op}`)
    return await (handler as (c: HsmContext, s: Session, a: OperationArgs<O>) => Promise<OperationResult<O>>)(ctx, s, args)
  }
  return { ctx, keys, users, replicator, sessions, session, call }
}

/** Expects a handler call to fail with the return code `key`. */
export async function expectCode (promise: Promise<unknown>, key: ReturnCodeKey): Promise<WireError> {
  const info = ReturnCode[key]
  try {
    await promise
  } catch (err) {
    expect(err).toBeInstanceOf(WireError)
    expect((err as WireError).code, (err as Error).message).toBe(info.name)
    return err as WireError
  }
  throw new Error(`expected ${info.name}, but the call succeeded`)
}

/** The live (non-tombstone) token key under `handle`. */
export function storedKey (hsm: TestHsm, handle: number): KeyRecord | undefined {
  const record = hsm.keys.get(String(handle))
  return record === undefined || 'deleted' in record ? undefined : record
}
