/**
 * Issue 15, item 5: certificates that openssl can check.
 *
 * Goal: the guide's "Verify the identity and authenticity of your cluster's HSM"
 * (verify-hsm-identity.md) works as written on an hsmlab cluster: the CSR and the three
 * certificates are taken with `aws cloudhsmv2 describe-clusters --query ...` into the guide's file
 * names, the chains are made with `cat` and checked with `openssl verify -CAfile`, and the public
 * keys of the HsmCertificate and the ClusterCsr are the same (`openssl x509 -pubkey`, `openssl req
 * -pubkey`, `diff`); the roots are hsmlab's stand-ins, made from the installation's manufacturer key
 * as the lab writes them. The CSR signed with openssl initializes the cluster, and a cluster made
 * from its backup shows the same ClusterCertificate.
 * Method: one `hsmlab-control-plane` process with real HSM processes; the AWS CLI and openssl run
 * as a user runs them, in a shell, in one directory.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { ROOT_FILE_NAMES, standInRoots } from '@hsmlab/crypto'
import { readManufacturerKey } from '@hsmlab/hsm'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { activeCluster, manufacturerKey, startCp, SUBNETS } from './control-plane-helpers.js'

const ENV = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_PAGER: '', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_MAX_ATTEMPTS: '1' }

/** Runs a shell command line in `cwd` as the guide shows it; its standard output. */
function sh (cwd: string, line: string): string {
  return execFileSync('sh', ['-c', line], { cwd, env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

describe('issue 15: the HSM certificates openssl checks (verify-hsm-identity)', () => {
  it('the guide\'s procedure verifies both chains and the CSR\'s key; a cluster made from a backup has its ClusterCertificate', async () => {
    const dir = tmpDir('hsmlab-i15-certs-')
    const keyFile = await manufacturerKey(dir)
    const cp = await startCp({ region: 'us-east-1', dataDir: join(dir, 'cp'), keyFile })
    const api = new ControlPlaneClient({ endpoint: cp.url, region: 'us-east-1' })
    const aws = `aws cloudhsmv2 --endpoint-url ${cp.url} --region us-east-1`
    const roots = standInRoots(await readManufacturerKey(keyFile))
    writeFileSync(join(dir, ROOT_FILE_NAMES.aws), roots.aws.certPem)
    writeFileSync(join(dir, ROOT_FILE_NAMES.manufacturer), roots.manufacturer.certPem)

    const clusterId = (JSON.parse(sh(dir, `${aws} create-cluster --hsm-type hsm2m.medium --subnet-ids ${SUBNETS.join(' ')} --output json`)) as { Cluster: { ClusterId: string } }).Cluster.ClusterId
    await api.waitForCluster(clusterId, 'UNINITIALIZED')
    sh(dir, `${aws} create-hsm --cluster-id ${clusterId} --availability-zone us-east-1a`)
    await waitFor(async () => (await api.getCluster(clusterId))?.Certificates?.ClusterCsr, { what: 'the ClusterCsr', timeoutMs: 30_000 })

    // Get Certificates from the HSM (AWS CLI), file names as the guide has them.
    for (const [member, file] of [['ClusterCsr', `${clusterId}_ClusterCsr.csr`], ['HsmCertificate', `${clusterId}_HsmCertificate.crt`],
      ['AwsHardwareCertificate', `${clusterId}_AwsHardwareCertificate.crt`], ['ManufacturerHardwareCertificate', `${clusterId}_ManufacturerHardwareCertificate.crt`]]) {
      sh(dir, `${aws} describe-clusters --filters clusterIds=${clusterId} --output text --query 'Clusters[].Certificates.${member ?? ''}' > ${file ?? ''}`)
    }
    // Verify Certificate Chains.
    sh(dir, `cat ${clusterId}_AwsHardwareCertificate.crt ${ROOT_FILE_NAMES.aws} > ${clusterId}_AWS_chain.crt`)
    expect(sh(dir, `openssl verify -CAfile ${clusterId}_AWS_chain.crt ${clusterId}_HsmCertificate.crt`)).toBe(`${clusterId}_HsmCertificate.crt: OK\n`)
    sh(dir, `cat ${clusterId}_ManufacturerHardwareCertificate.crt ${ROOT_FILE_NAMES.manufacturer} > ${clusterId}_manufacturer_chain.crt`)
    expect(sh(dir, `openssl verify -CAfile ${clusterId}_manufacturer_chain.crt ${clusterId}_HsmCertificate.crt`)).toBe(`${clusterId}_HsmCertificate.crt: OK\n`)
    // A chain to the other root does not verify: the two roots are distinct.
    sh(dir, `cat ${clusterId}_AwsHardwareCertificate.crt ${ROOT_FILE_NAMES.manufacturer} > wrong_chain.crt`)
    expect(() => sh(dir, `openssl verify -CAfile wrong_chain.crt ${clusterId}_HsmCertificate.crt`)).toThrow()
    // Extract and Compare Public Keys.
    sh(dir, `openssl x509 -in ${clusterId}_HsmCertificate.crt -pubkey -noout > ${clusterId}_HsmCertificate.pub`)
    sh(dir, `openssl req -in ${clusterId}_ClusterCsr.csr -pubkey -noout > ${clusterId}_ClusterCsr.pub`)
    expect(readFileSync(join(dir, `${clusterId}_HsmCertificate.pub`), 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/)
    expect(sh(dir, `diff ${clusterId}_HsmCertificate.pub ${clusterId}_ClusterCsr.pub`)).toBe('')
    // The CSR is signed by its key.
    expect(sh(dir, `openssl req -in ${clusterId}_ClusterCsr.csr -verify -noout 2>&1`)).toMatch(/verify OK/i)

    // The CSR signed as the runbook does initializes a cluster; its backup carries the ClusterCertificate to a cluster made from it.
    const source = await activeCluster(cp.url, 'us-east-1', join(dir))
    const certificate = (await api.getCluster(source.clusterId))?.Certificates?.ClusterCertificate
    expect(certificate).toMatch(/^-----BEGIN CERTIFICATE-----/)
    const backup = await waitFor(async () => (await api.describeBackups()).Backups.find(b => b.ClusterId === source.clusterId && b.BackupState === 'READY'), { what: 'the activation backup' })
    const clone = (JSON.parse(sh(dir, `${aws} create-cluster --hsm-type hsm2m.medium --subnet-ids ${SUBNETS.join(' ')} --source-backup-id ${backup.BackupId} --output json`)) as { Cluster: { ClusterId: string } }).Cluster.ClusterId
    const described = JSON.parse(sh(dir, `${aws} describe-clusters --filters clusterIds=${clone} --output json`)) as { Clusters: Array<{ Certificates?: { ClusterCertificate?: string } }> }
    expect(described.Clusters[0]?.Certificates?.ClusterCertificate).toBe(certificate)
  })
})
