/**
 * Helpers of the control-plane end-to-end tests: a control plane as a real process
 * (`hsmlab-control-plane`, port 0, ready line), cleaned up with every HSM it spawned even when it
 * was killed with SIGKILL; an SDK client; and `activeCluster`, which walks a new cluster through
 * the AWS runbook: create, create-hsm, sign the ClusterCsr with openssl, initialize, activate
 * (PRECO changes its password over @hsmlab/client).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CloudHSMV2Client, CreateClusterCommand, CreateHsmCommand, DescribeClustersCommand, InitializeClusterCommand } from '@aws-sdk/client-cloudhsm-v2'
import { expect, onTestFinished } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { CONTROL_PLANE_BIN_PATH, ControlPlaneClient } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { createManufacturerKey, writeManufacturerKey } from '@hsmlab/hsm'
import { isRunning, spawnNode, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'

export const CREDENTIALS = { accessKeyId: 'AKIDHSMLABE2E', secretAccessKey: 'hsmlab-e2e-secret' }
export const SUBNETS = ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1']

/** A control-plane process. */
export interface CpProcess {
  proc: SpawnedProcess
  pid: number
  port: number
  url: string
  region: string
  dataDir: string
}

/** Kills every HSM process a control plane recorded in its state file (they outlive a SIGKILLed control plane). */
export function killHsmsOf (dataDir: string): void {
  let state: { hsms?: Record<string, { pid?: number }> }
  try {
    state = JSON.parse(readFileSync(join(dataDir, 'state.json'), 'utf8')) as typeof state
  } catch {
    return
  }
  for (const hsm of Object.values(state.hsms ?? {})) {
    if (hsm.pid === undefined || !isRunning(hsm.pid)) continue
    try {
      if (readFileSync(`/proc/${hsm.pid}/cmdline`, 'utf8').includes(dataDir)) process.kill(hsm.pid, 'SIGKILL')
    } catch { /* gone */ }
  }
}

/** A manufacturer key file in `dir`. */
export async function manufacturerKey (dir: string): Promise<string> {
  const file = join(dir, 'manufacturer.key')
  await writeManufacturerKey(file, createManufacturerKey())
  return file
}

/** Starts `hsmlab-control-plane` and waits for its ready line. */
export async function startCp (opts: { region: string, dataDir: string, keyFile: string, regionsFile?: string, args?: string[] }): Promise<CpProcess> {
  onTestFinished(() => { killHsmsOf(opts.dataDir) })
  const proc = spawnNode(CONTROL_PLANE_BIN_PATH, [
    '--region', opts.region, '--data-dir', opts.dataDir, '--hsm-manufacturer-key-file', opts.keyFile, '--port', '0',
    '--transition-delay-ms', '100', '--log-level', 'info',
    ...(opts.regionsFile === undefined ? [] : ['--regions-file', opts.regionsFile]),
    ...(opts.args ?? [])
  ], { name: `control plane ${opts.region}` })
  const ready = await waitFor(() => {
    const line = proc.stdout().split('\n')[0] ?? ''
    if (!line.endsWith('}') || !proc.stdout().includes('\n')) return undefined
    return JSON.parse(line) as { event: string, pid: number, region: string, port: number }
  }, { what: `the ready line of the ${opts.region} control plane`, timeoutMs: 20_000 })
  expect(ready).toEqual({ event: 'ready', pid: proc.child.pid, region: opts.region, port: expect.any(Number) })
  return { proc, pid: ready.pid, port: ready.port, url: `http://127.0.0.1:${ready.port}`, region: opts.region, dataDir: opts.dataDir }
}

/** An AWS SDK client for a region, through `url`. */
export function sdk (url: string, region: string): CloudHSMV2Client {
  const client = new CloudHSMV2Client({ region, endpoint: url, credentials: CREDENTIALS, maxAttempts: 1 })
  onTestFinished(() => { client.destroy() })
  return client
}

/** Connects to an HSM of a cluster as its clients do (trust anchor from HsmlabTrustAnchor). */
export async function connectHsm (api: ControlPlaneClient, clusterId: string, hsmId: string): Promise<HsmConnection> {
  const cluster = await api.getCluster(clusterId)
  const hsm = cluster?.Hsms?.find(h => h.HsmId === hsmId)
  if (cluster?.HsmlabTrustAnchor === undefined || hsm?.HsmlabEndpoint === undefined) throw new Error(`no endpoint for ${hsmId}`)
  const connection = await HsmConnection.connect({ url: hsm.HsmlabEndpoint, trustAnchor: decodeTrustAnchor(cluster.HsmlabTrustAnchor), expectedClusterId: clusterId })
  onTestFinished(async () => { await connection.close() })
  return connection
}

/** Signs a ClusterCsr with a fresh customer CA (openssl, as the AWS runbook does). */
export function signCsr (dir: string, csr: string): { signedCert: string, trustAnchor: string } {
  writeFileSync(join(dir, 'cluster.csr'), csr)
  const run = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }) }
  run('req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'customerCA.key', '-out', 'customerCA.crt', '-days', '3652', '-subj', '/CN=customerCA')
  run('x509', '-req', '-days', '3652', '-in', 'cluster.csr', '-CA', 'customerCA.crt', '-CAkey', 'customerCA.key', '-CAcreateserial', '-out', 'signed.crt')
  return { signedCert: readFileSync(join(dir, 'signed.crt'), 'utf8'), trustAnchor: readFileSync(join(dir, 'customerCA.crt'), 'utf8') }
}

/** A new cluster of one HSM taken to ACTIVE the way the AWS runbook does; resolves with its ids and the new CO password. */
export async function activeCluster (url: string, region: string, dir: string): Promise<{ clusterId: string, hsmId: string, password: string }> {
  const client = sdk(url, region)
  const api = new ControlPlaneClient({ endpoint: url, region })
  const created = await client.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS }))
  const clusterId = created.Cluster?.ClusterId ?? ''
  expect(created.Cluster?.State).toBe('CREATE_IN_PROGRESS')
  await api.waitForCluster(clusterId, 'UNINITIALIZED')
  const hsm = (await client.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: `${region}a` }))).Hsm
  expect(hsm?.State).toBe('CREATE_IN_PROGRESS')
  const hsmId = hsm?.HsmId ?? ''
  const ready = await api.waitForHsm(clusterId, hsmId, 'ACTIVE', { timeoutMs: 30_000 })
  expect(ready.HsmlabPid).toBeTypeOf('number')
  expect(isRunning(ready.HsmlabPid ?? 0)).toBe(true)
  const described = (await client.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }))).Clusters?.[0]
  expect(described?.State).toBe('UNINITIALIZED')
  const csr = described?.Certificates?.ClusterCsr ?? ''
  expect(csr).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/)
  const { signedCert, trustAnchor } = signCsr(dir, csr)
  const init = await client.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: signedCert, TrustAnchor: trustAnchor }))
  expect(init).toMatchObject({ State: 'INITIALIZE_IN_PROGRESS', StateMessage: 'Cluster is initializing. State will change to INITIALIZED upon completion.' })
  await api.waitForCluster(clusterId, 'INITIALIZED')
  const connection = await connectHsm(api, clusterId, hsmId)
  await connection.call('login', { userType: 'PRECO', userName: 'admin', password: 'password' })
  const password = 'Admin1234'
  await connection.call('changePassword', { userType: 'PRECO', userName: 'admin', password })
  await connection.close()
  const active = await api.waitForCluster(clusterId, 'ACTIVE')
  expect(active.Certificates?.ClusterCertificate).toBe(signedCert)
  expect(active.Certificates?.ClusterCsr).toBeUndefined()
  return { clusterId, hsmId, password }
}

