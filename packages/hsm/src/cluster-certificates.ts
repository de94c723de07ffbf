/**
 * The cluster certificate and the customer CA as this HSM holds them (getCert 8 and 4): the
 * SignedCert and TrustAnchor of InitializeCluster, PEM, byte for byte as the customer gave them.
 * The control plane hands them to every HSM of the cluster (setClusterCertificates, signed by the
 * cluster's trust anchor); they are kept in the sealed meta store, so they survive a restart, and
 * backups carry them, so an HSM added later and every cluster made from a backup hold them too.
 * An HSM of a cluster that was never initialized holds none.
 *
 * They are set once, as a cluster is initialized once: the same pair again is a repeat and
 * changes nothing; another pair is refused.
 */
import { X509Certificate } from 'node:crypto'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { Store } from '@hsmlab/store'
import { META_CLUSTER_CERTIFICATES } from './data-dir.js'
import type { ClusterCertificates, MetaRecord } from './data-dir.js'

/** Throws RET_INVALID_INPUT unless both are PEM X.509 certificates and the customer CA's key signed the cluster certificate. */
export function checkClusterCertificates (certificates: ClusterCertificates): void {
  const parse = (text: string, what: string): X509Certificate => {
    try {
      return new X509Certificate(text)
    } catch (err) {
      throw new WireError(ReturnCode.INVALID_INPUT, `the ${what} is not a PEM X.509 certificate: ${(err as Error).message}`)
    }
  }
  const signed = parse(certificates.clusterCertificate, 'cluster certificate')
  const anchor = parse(certificates.trustAnchor, 'customer CA certificate')
  if (!signed.verify(anchor.publicKey)) {
    throw new WireError(ReturnCode.INVALID_INPUT, 'the cluster certificate is not signed by the customer CA certificate given with it')
  }
}

/** The durable cluster certificates of one HSM, in its meta store. */
export class ClusterCertificateBook {
  private readonly meta: Store<MetaRecord>

  constructor (meta: Store<MetaRecord>) {
    this.meta = meta
  }

  /** The certificates held, or undefined before the cluster was initialized. */
  current (): ClusterCertificates | undefined {
    const record = this.meta.get(META_CLUSTER_CERTIFICATES)
    if (record?.kind !== 'cluster-certificates') return undefined
    return { clusterCertificate: record.clusterCertificate, trustAnchor: record.trustAnchor }
  }

  /**
   * Stores checked certificates durably. The pair held already is a repeat; another pair is
   * refused (RET_INVALID_INPUT). Callers run it inside `ctx.runExclusive`.
   */
  async set (certificates: ClusterCertificates): Promise<void> {
    const held = this.current()
    if (held !== undefined) {
      if (held.clusterCertificate === certificates.clusterCertificate && held.trustAnchor === certificates.trustAnchor) return
      throw new WireError(ReturnCode.INVALID_INPUT, 'this HSM holds the certificates its cluster was initialized with already; a cluster is initialized once')
    }
    checkClusterCertificates(certificates)
    await this.meta.apply([{
      op: 'put',
      id: META_CLUSTER_CERTIFICATES,
      value: { kind: 'cluster-certificates', clusterCertificate: certificates.clusterCertificate, trustAnchor: certificates.trustAnchor }
    }])
  }
}
