/**
 * What anyone may ask an HSM without logging in: getHSMInfo, getCert; `setPeers`, by which
 * the lab (holder of the cluster's trust anchor) tells an HSM which HSMs share its cluster; and
 * `setClusterCertificates`, by which the control plane gives it the certificates the cluster was
 * initialized with (getCert 8 and 4).
 */
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { HsmInfo, PeerAddress } from '@hsmlab/protocol'
import type { Handler, HandlerTable } from '../context.js'
import { isTombstone } from '../context.js'
import { isResourceId } from '../ids.js'
import type { ClusterCertificateBook } from '../cluster-certificates.js'
import type { PeerBook } from '../peers.js'
import { HSM_MODEL, verifyClusterCertificates, verifyPeers } from '../provisioning.js'

/** Firmware version getHSMInfo reports. */
export const FIRMWARE_VERSION = '3.4.0'
/** "FIPS mode with single factor authentication", as the AWS example numbers it (reference A.9). */
export const FIPS_STATE = 2

/** What the info handlers need besides the context. */
export interface InfoHandlerDeps {
  /** PEM-armoured text by certificate type (certificates.ts): the ones the HSM makes itself. */
  certificates: ReadonlyMap<number, string>
  /** The cluster certificate (8) and customer CA (4), once the cluster is initialized. */
  clusterCertificates: ClusterCertificateBook
  peerBook: PeerBook
}

function toPeerAddress (value: unknown, index: number): PeerAddress {
  const v = value as Record<string, unknown>
  const keys = Object.keys(v)
  if (typeof v.hsmId !== 'string' || !isResourceId('hsm', v.hsmId) || typeof v.endpoint !== 'string' ||
      !/^wss?:\/\/[^\s/]+/.test(v.endpoint) || keys.length !== 2) {
    throw new WireError(ReturnCode.INVALID_INPUT, `peers[${index}] must be { hsmId: 'hsm-…', endpoint: 'ws://host:port' }`)
  }
  return { hsmId: v.hsmId, endpoint: v.endpoint }
}

/** The info handlers. */
export function createInfoHandlers (deps: InfoHandlerDeps): HandlerTable {
  const getHsmInfo: Handler<'getHsmInfo'> = async (ctx, session) => {
    const { identity, limits } = ctx
    let keyCount = 0
    for (const key of ctx.keys.values()) if (!isTombstone(key)) keyCount++
    const info: HsmInfo = {
      hsmId: identity.hsmId,
      clusterId: identity.clusterId,
      lineage: identity.lineage,
      label: identity.label,
      model: HSM_MODEL,
      serialNumber: identity.serialNumber,
      firmwareVersion: FIRMWARE_VERSION,
      fipsState: FIPS_STATE,
      totalTokenObjects: limits.keysMax,
      freeTokenObjects: Math.max(0, limits.keysMax - keyCount),
      userCount: ctx.users.size,
      keyCount
    }
    if (session.user !== undefined) info.loggedInAs = { userName: session.user.userName, userType: session.user.userType }
    const sync = ctx.syncRole?.()
    if (sync !== undefined && sync.role !== 'none') {
      info.syncRole = sync.primaryClusterId === undefined ? { role: sync.role } : { role: sync.role, primaryClusterId: sync.primaryClusterId }
    }
    return info
  }

  const getCertificate: Handler<'getCertificate'> = async (ctx, _session, { certType }) => {
    if (certType === 4 || certType === 8) {
      const held = deps.clusterCertificates.current()
      if (held === undefined) {
        throw new WireError(ReturnCode.INVALID_INPUT, `no certificate of type ${certType}: cluster ${ctx.identity.clusterId} is not initialized (InitializeCluster gives it the cluster certificate and the customer CA)`)
      }
      return { pem: certType === 4 ? held.trustAnchor : held.clusterCertificate }
    }
    const pem = deps.certificates.get(certType)
    if (pem === undefined) throw new WireError(ReturnCode.INVALID_INPUT, `no certificate of type ${certType}`)
    return { pem }
  }

  const setClusterCertificates: Handler<'setClusterCertificates'> = async (ctx, _session, { clusterCertificate, trustAnchor, signature }) => {
    const { identity } = ctx
    const certificates = { clusterCertificate, trustAnchor }
    if (!verifyClusterCertificates(identity.anchorPublicKey, identity.hsmId, certificates, signature)) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `the cluster certificates are not signed by the trust anchor of cluster ${identity.clusterId} for ${identity.hsmId}`)
    }
    await ctx.runExclusive(async () => { await deps.clusterCertificates.set(certificates) })
    return {}
  }

  const setPeers: Handler<'setPeers'> = async (ctx, _session, args) => {
    const peers = args.peers.map(toPeerAddress)
    const { identity } = ctx
    if (!verifyPeers(identity.anchorPublicKey, identity.hsmId, peers, args.version, args.signature)) {
      throw new WireError(ReturnCode.PERMISSION_DENIED, `the peer list is not signed by the trust anchor of cluster ${identity.clusterId} for ${identity.hsmId}`)
    }
    await ctx.runExclusive(async () => {
      const current = deps.peerBook.version()
      if (args.version <= current) {
        throw new WireError(ReturnCode.INVALID_INPUT, `peer list version ${args.version} is not newer than the stored version ${current}`)
      }
      await deps.peerBook.set(peers, args.version, args.signature)
    })
    ctx.replicator.peersChanged(ctx.peers())
    return {}
  }

  return { getHsmInfo, getCertificate, setPeers, setClusterCertificates }
}
