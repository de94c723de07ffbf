/**
 * Goal (issue 9, §1): the control plane answers no inherited member of Object as an operation and
 * hands out no secret in any answer, and nothing it serves lets anyone pass for an HSM of a
 * cluster: peerHello with a forged identity is refused, and so are peerInventory, peerFetch and
 * peerDelete without it, with no key deleted.
 *
 * Method: a one-region lab of one activated cluster with a crypto user who holds one token key
 * (startLab). The API is probed over plain HTTP with the names every object inherits
 * (`constructor`, `__proto__`, `toString`...): each must answer 400 UnknownOperationException.
 * Then every operation the test can call (and the internal paths other regions use) is asked,
 * and no answer may carry secret material. Then an attacker with the client and crypto libraries
 * connects to the HSM, trusting the anchor the API serves, and tries peerHello with certificates
 * it signed itself: with a key of its own, with every 64-byte key found base64-encoded in the
 * answers gathered above (on the code before the fix, the `constructor` answer held each
 * cluster's anchor secret key), and with the HSM's own certificate replayed; then the peer
 * operations without a hello. Each is refused with RET_PEER_UNAUTHENTICATED, and the crypto
 * user's key is still there.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { decodeTrustAnchor, generateSigningKeyPair, issueCertificate } from '@hsmlab/crypto'
import type { HsmCertificate } from '@hsmlab/crypto'
import { KeyType } from '@hsmlab/protocol'
import { startLab } from '@hsmlab/testing'
import type { LabStatusCluster } from '@hsmlab/testing'

const topology = {
  regions: [{
    name: 'eu-west-1',
    clusters: [{ name: 'main', hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}

/** Names every JavaScript object answers; none of them is an operation. */
const INHERITED = [
  'constructor', '__proto__', 'hasOwnProperty', 'valueOf', 'toString', 'toLocaleString', 'isPrototypeOf',
  'propertyIsEnumerable', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__'
]

/** Text that must never be in an answer of the control plane. */
const SECRET_MARKERS = [/anchorSecretKey/i, /PRIVATE KEY/, /identitySecretKey/i, /csrKeyPem/i, /secretKey/i]

interface Answer { what: string, status: number, text: string }

async function post (endpoint: string, target: string, body: unknown): Promise<Answer> {
  const response = await fetch(`${endpoint}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `BaldrApiService.${target}` },
    body: JSON.stringify(body)
  })
  return { what: target, status: response.status, text: await response.text() }
}

async function get (endpoint: string, path: string): Promise<Answer> {
  const response = await fetch(`${endpoint}${path}`)
  const bytes = Buffer.from(await response.arrayBuffer())
  return { what: `GET ${path}`, status: response.status, text: bytes.toString('latin1') }
}

/** Every 64-byte value written in base64 in `text`: what an Ed25519 secret key looks like. */
function secretKeyCandidates (text: string): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const match of text.matchAll(/[A-Za-z0-9+/]{86}==/g)) {
    const bytes = Buffer.from(match[0], 'base64')
    if (bytes.length === 64) out.push(new Uint8Array(bytes))
  }
  return out
}

async function refusedAsPeer (attempt: Promise<unknown>): Promise<void> {
  const error = await attempt.then(() => undefined, (err: unknown) => err as { code?: string, message?: string })
  expect(error, 'the HSM accepted a peer operation from the attacker').toBeDefined()
  expect(error?.code, error?.message).toBe('RET_PEER_UNAUTHENTICATED')
}

describe('the control plane and the peers of a cluster under attack', () => {
  it('answers no inherited name, serves no secret, and nothing it serves forges an HSM identity', async () => {
    const lab = await startLab({ lean: true, topology })
    const endpoint = lab.status.regions[0]?.controlPlane?.endpoint as string
    const cluster = lab.status.regions[0]?.clusters[0] as LabStatusCluster
    const hsm = cluster.hsms[0]
    if (hsm === undefined) throw new Error('one HSM expected')
    const answers: Answer[] = []

    // The inherited names: 400 UnknownOperationException, never a 200 or a 500.
    for (const name of INHERITED) {
      for (const body of [{}, { ClusterId: cluster.id }]) {
        const answer = await post(endpoint, name, body)
        answers.push(answer)
        expect({ name, status: answer.status }).toEqual({ name, status: 400 })
        expect(JSON.parse(answer.text)).toMatchObject({ __type: 'UnknownOperationException' })
      }
    }
    // The same through the region's header and a forwarded region name that is an inherited one.
    const viaRegion = await fetch(`${endpoint}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'BaldrApiService.DescribeClusters', 'x-amz-region': 'constructor' },
      body: '{}'
    })
    expect(viaRegion.status).toBe(400)
    answers.push({ what: 'x-amz-region constructor', status: viaRegion.status, text: await viaRegion.text() })

    // Every operation the test can call, and the internal paths: no secret material in any answer.
    const api = new ControlPlaneClient({ endpoint, region: 'eu-west-1' })
    const backup = await api.waitForBackup((await api.createBackup(cluster.id)).BackupId, 'READY', { timeoutMs: 30_000 })
    const calls: Array<[string, unknown]> = [
      ['DescribeClusters', {}], ['DescribeClusters', { Filters: { clusterIds: [cluster.id] } }], ['DescribeBackups', {}],
      ['ListTags', { ResourceId: cluster.id }], ['ListTags', { ResourceId: backup.BackupId }], ['HsmlabDescribeHsmRoutes', {}],
      ['ModifyCluster', { ClusterId: cluster.id, BackupRetentionPolicy: { Type: 'DAYS', Value: '30' } }],
      ['ModifyBackupAttributes', { BackupId: backup.BackupId, NeverExpires: false }],
      ['TagResource', { ResourceId: cluster.id, TagList: [{ Key: 'k', Value: 'v' }] }], ['UntagResource', { ResourceId: cluster.id, TagKeyList: ['k'] }],
      ['InitializeCluster', { ClusterId: cluster.id, SignedCert: 'x', TrustAnchor: 'y' }], ['CreateHsm', { ClusterId: cluster.id, AvailabilityZone: 'eu-west-1z' }],
      ['DeleteCluster', { ClusterId: cluster.id }], ['DeleteHsm', { ClusterId: cluster.id, HsmId: 'hsm-aaaaaaaaaaa' }],
      ['CopyBackupToRegion', { BackupId: backup.BackupId, DestinationRegion: 'us-east-1' }], ['RestoreBackup', { BackupId: backup.BackupId }],
      ['HsmlabSetHsmRoutes', { Routes: [] }]
    ]
    for (const [target, body] of calls) answers.push(await post(endpoint, target, body))
    expect(answers.filter(a => a.what === 'DescribeClusters').every(a => a.status === 200)).toBe(true)
    for (const path of ['/_hsmlab/health', `/_hsmlab/backups/${backup.BackupId}`, '/_hsmlab/copies/constructor', '/_hsmlab/copies/__proto__', '/_hsmlab/constructor']) {
      answers.push(await get(endpoint, path))
    }
    for (const answer of answers) {
      expect(answer.status, `${answer.what}: ${answer.text.slice(0, 200)}`).toBeLessThan(500)
      for (const marker of SECRET_MARKERS) expect(marker.test(answer.text), `${answer.what} answered ${marker.source}`).toBe(false)
    }

    // alice holds a token key.
    const anchorText = (await api.getCluster(cluster.id))?.HsmlabTrustAnchor as string
    const trustAnchor = decodeTrustAnchor(anchorText)
    const connect = async (peerIdentity?: { secretKey: Uint8Array, certificate: HsmCertificate }): Promise<HsmConnection> => {
      const connection = await HsmConnection.connect({ url: hsm.endpoint, trustAnchor, expectedClusterId: cluster.id, ...(peerIdentity === undefined ? {} : { peerIdentity }) })
      onTestFinished(async () => { await connection.close() })
      return connection
    }
    const alice = await connect()
    await alice.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    const { handle } = await alice.call('generateSymmetricKey', { label: 'kept', keyType: KeyType.AES, sizeBytes: 32 })

    // peerHello with certificates the attacker signed: its own anchor, every key the answers held.
    const attacker = generateSigningKeyPair()
    const anchors = [generateSigningKeyPair().secretKey, ...answers.flatMap(a => secretKeyCandidates(a.text))]
    for (const anchorSecret of anchors) {
      for (const hsmId of [hsm.id, 'hsm-forgedforged1']) {
        const certificate = issueCertificate(anchorSecret, { hsmId, clusterId: cluster.id, publicKey: attacker.publicKey })
        await refusedAsPeer(connect({ secretKey: attacker.secretKey, certificate }))
      }
    }
    // The HSM's own certificate (which every client sees) replayed with the attacker's proof.
    const plain = await connect()
    await refusedAsPeer(connect({ secretKey: attacker.secretKey, certificate: plain.certificate }))
    // The trust anchor the API serves, taken for a secret key: it is only a public key.
    await refusedAsPeer(connect({ secretKey: attacker.secretKey, certificate: issueCertificate(new Uint8Array(64).fill(7), { hsmId: hsm.id, clusterId: cluster.id, publicKey: trustAnchor }) }))

    // Without a hello: every peer operation refused, on a plain connection and after a failed hello.
    for (const connection of [plain, alice]) {
      await refusedAsPeer(connection.call('peerInventory', {}))
      await refusedAsPeer(connection.call('peerFetch', { handle }))
      await refusedAsPeer(connection.call('peerDelete', { handle }))
      await refusedAsPeer(connection.call('peerHello', { certificate: { ...plain.certificate }, signature: new Uint8Array(64) }))
      await refusedAsPeer(connection.call('peerDelete', { handle }))
    }

    // alice's key is still there.
    expect((await alice.call('findKey', { label: 'kept' })).handles).toEqual([handle])
    expect((await alice.call('getKeyInfo', { handle })).handle).toBe(handle)
  })
})
