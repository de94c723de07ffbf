/**
 * Helpers of the backup tests, which play the control plane: it holds each cluster's trust
 * anchor (never a masking key, never the manufacturer key in memory), writes provision files,
 * starts `hsmlab-hsm --provision FILE`, signs backup requests and keeps backups as bytes.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { generateSigningKeyPair } from '@hsmlab/crypto'
import type { SigningKeyPair } from '@hsmlab/crypto'
import type { OperationResult } from '@hsmlab/protocol'
import { tmpDir } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'
import {
  createManufacturerKey, issueHsmIdentity, randomResourceId, signBackupRequest, writeManufacturerKey, writeProvisionFile
} from '../src/index.js'
import { readReadyLine, spawnHsm } from './helpers.js'
import type { ReadyLine } from './helpers.js'

/** One installation: a directory and a manufacturer key file the HSMs are started with. */
export interface Installation {
  dir: string
  keyFile: string
}

/** What the control plane knows of a cluster. */
export interface PlaneCluster {
  clusterId: string
  anchor: SigningKeyPair
}

/** An HSM the control plane made: where its data and provision file are. */
export interface PlaneHsm {
  hsmId: string
  cluster: PlaneCluster
  dataDir: string
  keyFile: string
  provisionFile: string
}

/** A running one. */
export interface RunningPlaneHsm extends PlaneHsm {
  proc: SpawnedProcess
  ready: ReadyLine
  url: string
}

export async function newInstallation (): Promise<Installation> {
  const dir = tmpDir('hsmlab-backup-test-')
  const keyFile = join(dir, 'manufacturer.key')
  await writeManufacturerKey(keyFile, createManufacturerKey())
  return { dir, keyFile }
}

export function newPlaneCluster (): PlaneCluster {
  return { clusterId: randomResourceId('cluster'), anchor: generateSigningKeyPair() }
}

/** Writes the provision file of a new HSM of `cluster` (restoring `backupFile` if given). */
export async function planHsm (installation: Installation, cluster: PlaneCluster, options: { slot?: number, backupFile?: string, label?: string } = {}): Promise<PlaneHsm> {
  const hsmId = randomResourceId('hsm')
  const { identity, certificate } = issueHsmIdentity(cluster.anchor.secretKey, { hsmId, clusterId: cluster.clusterId })
  const provisionFile = join(installation.dir, `${hsmId}.provision.json`)
  await writeProvisionFile(provisionFile, {
    hsmId,
    clusterId: cluster.clusterId,
    slot: options.slot ?? 0,
    label: options.label,
    anchorPublicKey: cluster.anchor.publicKey,
    identitySecretKey: identity.secretKey,
    certificate,
    backupFile: options.backupFile
  })
  return { hsmId, cluster, dataDir: join(installation.dir, 'hsms', hsmId), keyFile: installation.keyFile, provisionFile }
}

/** Starts `hsmlab-hsm --provision` on a planned HSM (without waiting). */
export function spawnPlanned (hsm: PlaneHsm, keyFile = hsm.keyFile): SpawnedProcess {
  return spawnHsm({ dataDir: hsm.dataDir, keyFile }, ['--provision', hsm.provisionFile])
}

/** Starts it and waits for its ready line. */
export async function runPlanned (hsm: PlaneHsm): Promise<RunningPlaneHsm> {
  const proc = spawnPlanned(hsm)
  const ready = await readReadyLine(proc)
  return { ...hsm, proc, ready, url: `ws://${ready.host}:${ready.port}` }
}

/** A client connection checked against the cluster's anchor and id, closed when the test ends. */
export async function connectPlane (hsm: Pick<RunningPlaneHsm, 'url' | 'cluster'>): Promise<HsmConnection> {
  const conn = await HsmConnection.connect({ url: hsm.url, trustAnchor: hsm.cluster.anchor.publicKey, expectedClusterId: hsm.cluster.clusterId })
  onTestFinished(async () => { await conn.close() })
  return conn
}

/** Logs in on a new connection. */
export async function loginPlane (hsm: Pick<RunningPlaneHsm, 'url' | 'cluster'>, userType: 'CO' | 'CU' | 'PRECO', userName: string, password: string): Promise<HsmConnection> {
  const conn = await connectPlane(hsm)
  await conn.call('login', { userType, userName, password })
  return conn
}

/** Asks an HSM for a backup the way the control plane does, signed for now. */
export async function exportBackup (hsm: Pick<RunningPlaneHsm, 'url' | 'cluster' | 'hsmId'>): Promise<OperationResult<'exportBackup'>> {
  const conn = await connectPlane(hsm)
  const requestedAtMs = Date.now()
  return await conn.call('exportBackup', { requestedAtMs, signature: signBackupRequest(hsm.cluster.anchor.secretKey, hsm.hsmId, requestedAtMs) })
}

/** Stores backup bytes in a file, as the control plane would, and returns its path. */
export async function storeBackup (installation: Installation, backup: Uint8Array, name = `backup-${Date.now()}.bin`): Promise<string> {
  const path = join(installation.dir, name)
  await writeFile(path, backup, { mode: 0o600 })
  return path
}
