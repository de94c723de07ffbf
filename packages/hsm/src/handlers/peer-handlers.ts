/**
 * The HSM-to-HSM operations that keep a cluster's token keys in step (reference G.3): peerHello
 * (the other end proves it is an HSM of this cluster), then peerPush (a new key, sent by the HSM
 * that made it), peerDelete (a deleted key), peerInventory and peerFetch (anti-entropy: what an
 * HSM holds, and one key of it). replication.ts is the calling side.
 *
 * Every peer* operation but peerHello needs `session.peer`, else RET_PEER_UNAUTHENTICATED.
 *
 * In-cluster replication only ever adds keys and tombstones, never changes a key an HSM already
 * holds: a pushed or fetched key whose handle is present is left alone (changed attributes or
 * shares are repaired with syncKey, which is a masked-object insert), and one whose handle was
 * deleted here is ignored. Handles are never reused, so a tombstone always wins. Replicated keys
 * are not counted against `keysMax` (the HSM that made them did) nor checked for unique IDs or
 * for their owner existing here (users are not replicated, reference G.3).
 *
 * Each key that arrives is published on `node:diagnostics_channel` as `hsmlab:hsm:replicated`
 * (`REPLICATED_CHANNEL`, replication.ts; the bench measures replication lag with it).
 */
import { CryptoError } from '@hsmlab/crypto'
import type { HsmCertificate } from '@hsmlab/crypto'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { Handler, HandlerTable, HsmContext, Session } from '../context.js'
import { isTombstone } from '../context.js'
import { inventorySummary, keyDigest } from '../key-digest.js'
import { maskKey, openMasked, readMaskedKey } from '../masked-objects.js'
import { storeReplicatedKey } from '../replication.js'

function requirePeer (session: Session): string {
  if (session.peer === undefined) {
    throw new WireError(ReturnCode.PEER_UNAUTHENTICATED, 'this connection has not proved that it is an HSM of this cluster (peerHello)')
  }
  return session.peer.hsmId
}

/** What peerInventory answers: every live token key with its digest, and every deleted handle. */
export function keyInventory (ctx: HsmContext): { keys: Array<[number, string]>, deleted: number[] } {
  const keys: Array<[number, string]> = []
  const deleted: number[] = []
  for (const record of ctx.keys.values()) {
    if (isTombstone(record)) deleted.push(record.handle)
    else keys.push([record.handle, keyDigest(record)])
  }
  return { keys, deleted }
}

function readCertificate (value: Record<string, unknown>): HsmCertificate | undefined {
  const { hsmId, clusterId, publicKey, signature } = value
  if (typeof hsmId !== 'string' || typeof clusterId !== 'string' || !(publicKey instanceof Uint8Array) || !(signature instanceof Uint8Array)) return undefined
  return { hsmId, clusterId, publicKey: new Uint8Array(publicKey), signature: new Uint8Array(signature) }
}

const peerHello: Handler<'peerHello'> = async (ctx, session, args) => {
  const channel = session.channel
  if (channel === undefined) throw new WireError(ReturnCode.PEER_UNAUTHENTICATED, 'this connection has no secure channel to prove an identity over')
  const certificate = readCertificate(args.certificate)
  if (certificate === undefined) throw new WireError(ReturnCode.PEER_UNAUTHENTICATED, 'the peer certificate is malformed')
  try {
    channel.verifyIdentity(ctx.identity.anchorPublicKey, { certificate, signature: args.signature })
  } catch (err) {
    if (err instanceof CryptoError) throw new WireError(ReturnCode.PEER_UNAUTHENTICATED, err.message, { cause: err })
    throw err
  }
  if (certificate.clusterId !== ctx.identity.clusterId) {
    throw new WireError(ReturnCode.PEER_UNAUTHENTICATED, `${certificate.hsmId} belongs to cluster ${certificate.clusterId}, not ${ctx.identity.clusterId}`)
  }
  session.peer = { hsmId: certificate.hsmId }
  return { hsmId: ctx.identity.hsmId }
}

const peerInventory: Handler<'peerInventory'> = async (ctx, session, { unlessSummary }) => {
  requirePeer(session)
  if (unlessSummary !== undefined && unlessSummary === inventorySummary(ctx.keys.values())) return { keys: [], deleted: [], same: true }
  return keyInventory(ctx)
}

const peerFetch: Handler<'peerFetch'> = async (ctx, session, { handle }) => {
  requirePeer(session)
  const record = ctx.keys.live(handle)
  if (record === undefined) throw new WireError(ReturnCode.INVALID_HANDLE, `this HSM holds no key with handle ${handle}`)
  return { blob: maskKey(ctx, record) }
}

const peerPush: Handler<'peerPush'> = async (ctx, session, { blob }) => {
  const from = requirePeer(session)
  const { kind, payload } = openMasked(ctx, blob)
  if (kind !== 'key') throw new WireError(ReturnCode.INVALID_INPUT, 'peerPush carries keys only')
  await storeReplicatedKey(ctx, readMaskedKey(payload).record, from)
  return {}
}

const peerDelete: Handler<'peerDelete'> = async (ctx, session, { handle }) => {
  requirePeer(session)
  await ctx.keys.tombstoneCopies([handle])
  return {}
}

/** The peer handlers. */
export const peerHandlers: HandlerTable = {
  peerHello,
  peerInventory,
  peerFetch,
  peerPush,
  peerDelete
}
