/**
 * Issue 15, item 5: the cluster certificate and the customer CA as the HSMs hold them.
 *
 * Goal: once a cluster is initialized (InitializeCluster with SignedCert and TrustAnchor), every
 * HSM of it, and of a cluster made from its backup, answers getCert 8 and 4 with exactly those
 * certificates, as PEM X.509 that openssl reads and verifies (cloudhsm_mgmt_util-getCert.md,
 * key_mgmt_util-getCert.md); InitializeCluster refuses a SignedCert that does not fit, with the
 * API's CloudHsmInvalidRequestException, and changes nothing.
 * Method: a lab (the real `hsmlab` bin) of a two-HSM cluster in us-east-1 and its clone in
 * us-west-2, initialized by the lab with its own customer CA; the real CMU bin in server mode and
 * the real KMU bin write the certificates; openssl checks them as a user would; the real AWS CLI
 * describes the cluster and sends InitializeCluster for a new cluster of the lab's control plane.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { startLab, waitFor } from '@hsmlab/testing'
import { SUBNETS } from './control-plane-helpers.js'
import { kmuOnce } from './kmu-driver.js'
import { clusterOf, cmu, outputOf } from './regions-helpers.js'

const ENV = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_PAGER: '', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_MAX_ATTEMPTS: '1' }

/** Runs a shell command line in `cwd` as a user runs it; its standard output. */
function sh (cwd: string, line: string): string {
  return execFileSync('sh', ['-c', line], { cwd, env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Runs a shell command line that must fail; its standard error. */
function shFails (cwd: string, line: string): string {
  try {
    execFileSync('sh', ['-c', line], { cwd, env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    return String((err as { stderr?: string }).stderr)
  }
  throw new Error(`'${line}' succeeded`)
}

const TOPOLOGY = {
  regions: [
    { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 2, activate: { admin: 'Admin1234' } }] },
    { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
  ]
}

describe('issue 15: getCert 4 and 8 are the customer CA and cluster certificate of InitializeCluster', () => {
  it('every HSM of the cluster and of its clone answers them as given; CMU and KMU write them; openssl verifies; a bad SignedCert is refused', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const dir = lab.cwd
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const endpoint = lab.status.regions.find(r => r.name === 'us-east-1')?.controlPlane?.endpoint as string
    const aws = `aws cloudhsmv2 --endpoint-url ${endpoint} --region us-east-1`
    const customerCa = readFileSync(join(lab.dir, 'ca', 'issuing-ca.crt'), 'utf8')
    sh(dir, `${aws} describe-clusters --filters clusterIds=${primary.id} --output text --query 'Clusters[].Certificates.ClusterCertificate' > described.crt`)
    const clusterCertificate = readFileSync(join(dir, 'described.crt'), 'utf8').trim() + '\n'
    expect(clusterCertificate).toMatch(/^-----BEGIN CERTIFICATE-----\n/)

    // CMU, in server mode on each HSM (cloudhsm_mgmt_util-getCert.md).
    const f = (file: string): string => join(dir, file)
    const session = [
      'server 0', `getCert ${f('customerCA.crt')} 4`, `getCert ${f('cluster.crt')} 8`, 'exit',
      'server 1', `getCert ${f('customerCA-1.crt')} 4`, `getCert ${f('cluster-1.crt')} 8`, 'exit', 'quit'
    ]
    const out = await cmu(primary.cmuConfig, session)
    for (const line of session.filter(l => l.startsWith('getCert'))) expect(outputOf(out, line)).toBe('getCert Success\n')
    for (const file of ['customerCA.crt', 'customerCA-1.crt']) expect(readFileSync(f(file), 'utf8')).toBe(customerCa)
    for (const file of ['cluster.crt', 'cluster-1.crt']) expect(readFileSync(f(file), 'utf8').trim()).toBe(clusterCertificate.trim())
    // openssl reads them and verifies the cluster certificate with the customer CA.
    expect(sh(dir, 'openssl x509 -in customerCA.crt -noout -subject')).toMatch(/^subject=.*hsmlab lab customer CA/)
    expect(sh(dir, 'openssl x509 -in cluster.crt -noout -subject')).toMatch(/^subject=/)
    expect(sh(dir, 'openssl verify -CAfile customerCA.crt cluster.crt')).toBe('cluster.crt: OK\n')

    // KMU (key_mgmt_util-getCert.md): -t as its syntax, -s as its example.
    for (const [args, file, expected] of [[['-f', 'kmu-cluster.crt', '-t', '8'], 'kmu-cluster.crt', clusterCertificate], [['-f', 'userRoot.crt', '-s', '4'], 'userRoot.crt', customerCa]] as const) {
      const run = await kmuOnce(dir, ['--config', primary.cmuConfig, 'singlecmd', 'getCert', ...args])
      expect(run.code, `${run.out}\n${run.err}`).toBe(0)
      expect(run.out).toContain('\nCfm3GetCert() returned 0 :HSM Return: SUCCESS\n')
      expect(readFileSync(f(file), 'utf8').trim()).toBe(expected.trim())
    }

    // The clone, made from the primary's backup in another region, holds the same two.
    const cloned = await cmu(dr.cmuConfig, ['server 0', `getCert ${f('dr-customerCA.crt')} 4`, `getCert ${f('dr-cluster.crt')} 8`, 'exit', 'quit'])
    expect(cloned).not.toContain('getCert failed')
    expect(readFileSync(f('dr-customerCA.crt'), 'utf8')).toBe(customerCa)
    expect(readFileSync(f('dr-cluster.crt'), 'utf8').trim()).toBe(clusterCertificate.trim())

    // InitializeCluster (the real AWS CLI) refuses a SignedCert that does not fit, and changes nothing.
    const api = new ControlPlaneClient({ endpoint, region: 'us-east-1' })
    const clusterId = (JSON.parse(sh(dir, `${aws} create-cluster --hsm-type hsm2m.medium --subnet-ids ${SUBNETS.join(' ')} --output json`)) as { Cluster: { ClusterId: string } }).Cluster.ClusterId
    await api.waitForCluster(clusterId, 'UNINITIALIZED')
    sh(dir, `${aws} create-hsm --cluster-id ${clusterId} --availability-zone us-east-1a`)
    const csr = await waitFor(async () => (await api.getCluster(clusterId))?.Certificates?.ClusterCsr, { what: 'the ClusterCsr', timeoutMs: 30_000 })
    writeFileSync(f('new.csr'), csr)
    // A root, an intermediate it certifies, and the CSR signed by the intermediate (as the runbook's openssl does).
    sh(dir, "openssl req -new -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.crt -days 365 -subj '/CN=root CA'")
    sh(dir, "openssl req -new -newkey rsa:2048 -nodes -keyout inter.key -out inter.csr -subj '/CN=intermediate CA'")
    writeFileSync(f('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n')
    sh(dir, 'openssl x509 -req -in inter.csr -CA root.crt -CAkey root.key -CAcreateserial -out inter.crt -days 365 -extfile ca.ext')
    sh(dir, 'openssl x509 -req -in new.csr -CA inter.crt -CAkey inter.key -CAcreateserial -out new-signed.crt -days 365')
    sh(dir, 'openssl x509 -req -in inter.csr -CA root.crt -CAkey root.key -CAcreateserial -out wrong-key.crt -days 365')
    const init = (signed: string, anchor: string): string => `${aws} initialize-cluster --cluster-id ${clusterId} --signed-cert file://${signed} --trust-anchor file://${anchor}`
    // The TrustAnchor must be self-signed (the API: "You must use a self-signed certificate").
    expect(shFails(dir, init('new-signed.crt', 'inter.crt'))).toMatch(/CloudHsmInvalidRequestException.*TrustAnchor must be a self-signed certificate/)
    // The SignedCert must carry the CSR's key, and be signed by the TrustAnchor.
    expect(shFails(dir, init('wrong-key.crt', 'root.crt'))).toMatch(/CloudHsmInvalidRequestException.*does not match the cluster's certificate signing request/)
    expect(shFails(dir, init('new-signed.crt', 'root.crt'))).toMatch(/CloudHsmInvalidRequestException.*was not signed by the TrustAnchor/)
    expect(shFails(dir, `${aws} initialize-cluster --cluster-id ${clusterId} --signed-cert 'not a certificate' --trust-anchor file://root.crt`)).toMatch(/CloudHsmInvalidRequestException/)
    const after = (JSON.parse(sh(dir, `${aws} describe-clusters --filters clusterIds=${clusterId} --output json`)) as { Clusters: Array<{ State: string, Certificates?: { ClusterCertificate?: string } }> }).Clusters[0]
    expect(after?.State).toBe('UNINITIALIZED')
    expect(after?.Certificates?.ClusterCertificate).toBeUndefined()
  })
})
