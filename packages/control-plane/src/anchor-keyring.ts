/**
 * The trust-anchor secret keys of a region's clusters, owned by the engine (control-plane.ts) and
 * kept apart from everything the API handlers reach. The control plane needs them after a cluster
 * is initialised: it issues each new HSM's identity and signs the peer lists and backup requests
 * it sends to the HSMs. The state (`state.json`) is read by every handler and rendered into
 * answers; an operation that answered with the wrong object once handed every cluster's key out
 * (issue 9), so the keys are not there but here: `anchors.json` in the data directory, mode 0600,
 * written atomically, used only through the narrow functions below, none of which returns a
 * secret key.
 *
 * Migration: state files written before the keyring held `anchorSecretKey` (and the CSR's private
 * key, `csrKeyPem`) in each cluster record. `moveLegacySecrets` moves the anchor keys here (durably,
 * first), then drops both fields from the state, keeping the CSR's public key.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateSigningKeyPair } from '@hsmlab/crypto'
import { issueHsmIdentity, signBackupRequest, signClusterCertificates, signPeers, signSyncHello, signSyncRole } from '@hsmlab/hsm'
import type { ClusterCertificates, IssuedHsmIdentity } from '@hsmlab/hsm'
import type { PeerAddress, SyncRole } from '@hsmlab/protocol'
import { writeFileAtomic } from '@hsmlab/process'
import { ANCHOR_KEYRING_FILE_NAME } from './defaults.js'
import { ControlPlaneError, CP_ERR_STATE } from './errors.js'
import type { StateStore } from './state-store.js'
import { publicKeyPemOf } from './x509.js'

const FORMAT = 'hsmlab-anchor-keyring/v1'

interface KeyringFile {
  format: typeof FORMAT
  /** Cluster id → the anchor's Ed25519 secret key (64 bytes), base64. */
  anchors: Record<string, string>
}

/** The secret keys of the trust anchors, by cluster id. */
export class AnchorKeyring {
  readonly file: string
  private readonly keys: Map<string, Uint8Array>
  private queue: Promise<unknown> = Promise.resolve()

  private constructor (file: string, keys: Map<string, Uint8Array>) {
    this.file = file
    this.keys = keys
  }

  /** Reads `anchors.json` of `dataDir` (none yet: an empty keyring). */
  static async open (dataDir: string): Promise<AnchorKeyring> {
    const file = join(dataDir, ANCHOR_KEYRING_FILE_NAME)
    let text: string | undefined
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ControlPlaneError(CP_ERR_STATE, `cannot read the trust-anchor keyring ${file}: ${(err as Error).message}`, { cause: err })
      }
    }
    const keys = new Map<string, Uint8Array>()
    if (text !== undefined) {
      let json: Partial<KeyringFile>
      try {
        json = JSON.parse(text) as Partial<KeyringFile>
      } catch (err) {
        throw new ControlPlaneError(CP_ERR_STATE, `the trust-anchor keyring ${file} is not JSON (${(err as Error).message}); restore it from a copy of the data directory`, { cause: err })
      }
      if (json.format !== FORMAT || typeof json.anchors !== 'object' || json.anchors === null) {
        throw new ControlPlaneError(CP_ERR_STATE, `the trust-anchor keyring ${file} is not a ${FORMAT} file`)
      }
      for (const [clusterId, secret] of Object.entries(json.anchors)) {
        if (typeof secret === 'string') keys.set(clusterId, new Uint8Array(Buffer.from(secret, 'base64')))
      }
    }
    return new AnchorKeyring(file, keys)
  }

  /** True while the keyring holds the anchor of `clusterId` (from its creation until it is DELETED). */
  has (clusterId: string): boolean {
    return this.keys.has(clusterId)
  }

  /** The clusters whose anchors it holds. */
  clusterIds (): string[] {
    return [...this.keys.keys()]
  }

  /** Makes the trust anchor of a new cluster, durably; resolves with its public key (the secret stays here). */
  async create (clusterId: string): Promise<Uint8Array> {
    const anchor = generateSigningKeyPair()
    await this.change(keys => { keys.set(clusterId, anchor.secretKey) })
    return anchor.publicKey
  }

  /** Forgets the anchors of these clusters (DELETED, or never recorded), durably. */
  async remove (clusterIds: readonly string[]): Promise<void> {
    if (!clusterIds.some(id => this.keys.has(id))) return
    await this.change(keys => { for (const id of clusterIds) keys.delete(id) })
  }

  /** A new HSM's identity key pair and certificate, signed by its cluster's anchor. */
  issueIdentity (clusterId: string, hsmId: string): IssuedHsmIdentity {
    return issueHsmIdentity(this.secretOf(clusterId), { hsmId, clusterId })
  }

  /** The anchor's signature of the peer list `hsmId` gets (setPeers). */
  signPeers (clusterId: string, hsmId: string, peers: readonly PeerAddress[], version: number): Uint8Array {
    return signPeers(this.secretOf(clusterId), hsmId, peers, version)
  }

  /** The anchor's signature of the cluster certificate and customer CA `hsmId` gets (setClusterCertificates). */
  signClusterCertificates (clusterId: string, hsmId: string, certificates: ClusterCertificates): Uint8Array {
    return signClusterCertificates(this.secretOf(clusterId), hsmId, certificates)
  }

  /** The anchor's signature of a request for a backup of `hsmId` (exportBackup). */
  signBackupRequest (clusterId: string, hsmId: string, requestedAtMs: number): Uint8Array {
    return signBackupRequest(this.secretOf(clusterId), hsmId, requestedAtMs)
  }

  /** The anchor's signature that opens the synchronisation operations on `hsmId` (syncHello). */
  signSyncHello (clusterId: string, hsmId: string, requestedAtMs: number): Uint8Array {
    return signSyncHello(this.secretOf(clusterId), hsmId, requestedAtMs)
  }

  /** The anchor's signature of the synchronisation role `hsmId` gets (setSyncRole). */
  signSyncRole (clusterId: string, hsmId: string, role: SyncRole, primaryClusterId: string | undefined, version: number): Uint8Array {
    return signSyncRole(this.secretOf(clusterId), hsmId, role, primaryClusterId, version)
  }

  /** Adds anchors found elsewhere (a state file of the old format), durably. */
  async adopt (anchors: ReadonlyArray<[string, Uint8Array]>): Promise<void> {
    if (anchors.length === 0) return
    await this.change(keys => { for (const [id, secret] of anchors) keys.set(id, secret) })
  }

  private secretOf (clusterId: string): Uint8Array {
    const secret = this.keys.get(clusterId)
    if (secret === undefined) throw new ControlPlaneError(CP_ERR_STATE, `the keyring holds no trust anchor for cluster ${clusterId} (it is deleted)`)
    return secret
  }

  /** Applies `edit` to a copy of the keys, writes it, and only then makes it current; one change at a time. */
  private async change (edit: (keys: Map<string, Uint8Array>) => void): Promise<void> {
    const run = async (): Promise<void> => {
      const next = new Map(this.keys)
      edit(next)
      const file: KeyringFile = { format: FORMAT, anchors: Object.fromEntries([...next].map(([id, secret]) => [id, Buffer.from(secret).toString('base64')])) }
      await writeFileAtomic(this.file, JSON.stringify(file), { mode: 0o600 })
      this.keys.clear()
      for (const [id, secret] of next) this.keys.set(id, secret)
    }
    const done = this.queue.then(run, run)
    this.queue = done.catch(() => {})
    await done
  }
}

/** The secret fields cluster records had in state files written before the keyring. */
interface LegacySecrets {
  anchorSecretKey?: string
  csrKeyPem?: string
}

/**
 * Moves the secrets an old state file holds into the keyring (durably, first), then drops them
 * from the state, keeping the CSR's public key. Interrupted, it is done again on the next start.
 */
export async function moveLegacySecrets (store: StateStore, keyring: AnchorKeyring): Promise<void> {
  const legacy = Object.values(store.state.clusters).filter(c => {
    const old = c as unknown as LegacySecrets
    return old.anchorSecretKey !== undefined || old.csrKeyPem !== undefined
  })
  if (legacy.length === 0) return
  await keyring.adopt(legacy.flatMap(c => {
    const secret = (c as unknown as LegacySecrets).anchorSecretKey
    return secret === undefined || c.state === 'DELETED' ? [] : [[c.clusterId, new Uint8Array(Buffer.from(secret, 'base64'))] as [string, Uint8Array]]
  }))
  await store.transact(draft => {
    for (const { clusterId } of legacy) {
      const cluster = draft.clusters[clusterId]
      if (cluster === undefined) continue
      const old = cluster as unknown as LegacySecrets
      if (old.csrKeyPem !== undefined && cluster.csrPublicKeyPem === undefined) cluster.csrPublicKeyPem = publicKeyPemOf(old.csrKeyPem)
      delete old.anchorSecretKey
      delete old.csrKeyPem
    }
  })
}
