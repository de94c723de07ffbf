import type { PeerAddress } from '@hsmlab/protocol'
import type { Store } from '@hsmlab/store'
import { META_PEERS, readPeerList } from './data-dir.js'
import type { MetaRecord } from './data-dir.js'

/**
 * The peers of this HSM, as the lab last set them (signed by the cluster's trust anchor), kept in
 * the meta store so that a restarted HSM knows its cluster before anyone tells it again.
 */
export class PeerBook {
  private readonly meta: Store<MetaRecord>
  private readonly selfId: string

  constructor (meta: Store<MetaRecord>, selfId: string) {
    this.meta = meta
    this.selfId = selfId
  }

  /** The peers, this HSM left out. */
  list (): PeerAddress[] {
    const stored = readPeerList(this.meta)
    if (stored === undefined) return []
    return stored.peers.filter(p => p.hsmId !== this.selfId).map(p => ({ hsmId: p.hsmId, endpoint: p.endpoint }))
  }

  /** Version of the stored list; -1 before the first `setPeers`. */
  version (): number {
    return readPeerList(this.meta)?.version ?? -1
  }

  /** Stores a verified list durably. */
  async set (peers: PeerAddress[], version: number, signature: Uint8Array): Promise<void> {
    await this.meta.apply([{ op: 'put', id: META_PEERS, value: { kind: 'peers', peers, version, signature } }])
  }
}
