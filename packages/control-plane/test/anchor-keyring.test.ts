/**
 * The trust-anchor keyring (issue 9): the secret keys of the clusters' anchors are in
 * `anchors.json` (0600), never in `state.json`, which every API handler reads; the CSR's private
 * key is not kept at all; and a state file written before the keyring (secrets in each cluster
 * record) is migrated at start, with its clusters still issuing HSM identities.
 */
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { ControlPlaneClient } from '../src/index.js'
import { manufacturerKeyFile, startTestControlPlane } from './helpers.js'

const SUBNETS = ['subnet-0123456789abcdef0']

describe('the trust-anchor keyring', () => {
  it('keeps anchor secrets out of state.json, and migrates a state file that has them', async () => {
    const dataDir = tmpDir('hsmlab-cp-keyring-')
    const keyFile = await manufacturerKeyFile()
    const first = await startTestControlPlane('us-east-1', { dataDir, manufacturerKeyFile: keyFile })
    const api = new ControlPlaneClient({ endpoint: first.url, region: 'us-east-1' })
    const created = await api.createCluster({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS })
    const clusterId = created.ClusterId ?? ''
    await api.waitForCluster(clusterId, 'UNINITIALIZED')
    await first.stop()

    // Written by this version: no secret in the state, the anchor in the keyring (0600).
    const statePath = join(dataDir, 'state.json')
    const keyringPath = join(dataDir, 'anchors.json')
    const stateText = readFileSync(statePath, 'utf8')
    expect(stateText).not.toMatch(/anchorSecretKey|csrKeyPem|PRIVATE KEY/)
    expect(statSync(keyringPath).mode & 0o777).toBe(0o600)
    const keyring = JSON.parse(readFileSync(keyringPath, 'utf8')) as { anchors: Record<string, string> }
    const secret = keyring.anchors[clusterId]
    expect(Buffer.from(secret ?? '', 'base64')).toHaveLength(64)

    // The state file as the code before the keyring wrote it: the secrets in the cluster record.
    const state = JSON.parse(stateText) as { clusters: Record<string, Record<string, unknown>> }
    const record = state.clusters[clusterId] as Record<string, unknown>
    const csrKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    record.anchorSecretKey = secret
    record.csrKeyPem = csrKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    delete record.csrPublicKeyPem
    writeFileSync(statePath, JSON.stringify(state))
    rmSync(keyringPath)

    // Started on it: the secrets move to the keyring, the CSR keeps only its public key.
    const second = await startTestControlPlane('us-east-1', { dataDir, manufacturerKeyFile: keyFile })
    const migrated = readFileSync(statePath, 'utf8')
    expect(migrated).not.toMatch(/anchorSecretKey|csrKeyPem|PRIVATE KEY/)
    const migratedRecord = (JSON.parse(migrated) as typeof state).clusters[clusterId]
    expect(migratedRecord?.csrPublicKeyPem).toBe(csrKey.publicKey.export({ type: 'spki', format: 'pem' }).toString())
    expect(statSync(keyringPath).mode & 0o777).toBe(0o600)
    expect((JSON.parse(readFileSync(keyringPath, 'utf8')) as typeof keyring).anchors[clusterId]).toBe(secret)

    // The cluster still issues identities from its anchor: its first HSM is provisioned and ACTIVE.
    const again = new ControlPlaneClient({ endpoint: second.url, region: 'us-east-1' })
    const hsm = await again.createHsm({ ClusterId: clusterId, AvailabilityZone: 'us-east-1a' })
    await again.waitForHsm(clusterId, hsm.HsmId, 'ACTIVE', { timeoutMs: 30_000 })
  })
})
