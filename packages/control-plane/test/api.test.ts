// The API through the AWS SDK against an in-process control plane, without HSM processes: the
// wire format (target, JSON, epoch seconds), the lifecycle that needs no HSM (create → UNINITIALIZED
// → delete), and each operation's error paths with the exact `__type`. Real HSMs: test/e2e.
import {
  CopyBackupToRegionCommand, CreateClusterCommand, CreateHsmCommand, DeleteBackupCommand, DeleteClusterCommand, DeleteHsmCommand,
  DescribeBackupsCommand, DescribeClustersCommand, InitializeClusterCommand, ListTagsCommand, ModifyBackupAttributesCommand,
  ModifyClusterCommand, RestoreBackupCommand, TagResourceCommand, UntagResourceCommand
} from '@aws-sdk/client-cloudhsm-v2'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { ControlPlaneClient, startControlPlane } from '../src/index.js'
import type { ControlPlaneOptions } from '../src/index.js'
import { main } from '../src/bin/control-plane.js'
import { DUMMY_CREDENTIALS, expectAwsError, sdkClient, startTestControlPlane, writeRegionsFile } from './helpers.js'

const SUBNETS = ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1']
const INVALID = 'CloudHsmInvalidRequestException'
const NOT_FOUND = 'CloudHsmResourceNotFoundException'
const UNKNOWN_CLUSTER = 'cluster-aaaaaaaaaaa'
const UNKNOWN_BACKUP = 'backup-aaaaaaaaaaa'

async function post (url: string, target: string | undefined, body: string): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.1', ...(target === undefined ? {} : { 'x-amz-target': target }) },
    body
  })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

describe('cloudhsmv2 API (no HSM processes)', () => {
  it('creates a cluster that goes CREATE_IN_PROGRESS → UNINITIALIZED, describes, tags and deletes it', async () => {
    const cp = await startTestControlPlane()
    const sdk = sdkClient(cp.url)
    const created = await sdk.send(new CreateClusterCommand({
      HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, TagList: [{ Key: 'team', Value: 'crypto' }], BackupRetentionPolicy: { Type: 'DAYS', Value: '30' }
    }))
    const cluster = created.Cluster
    expect(cluster).toMatchObject({
      State: 'CREATE_IN_PROGRESS', Hsms: [], Certificates: {}, BackupPolicy: 'DEFAULT', HsmType: 'hsm2m.medium',
      BackupRetentionPolicy: { Type: 'DAYS', Value: '30' }, SubnetMapping: { 'us-east-1a': SUBNETS[0], 'us-east-1b': SUBNETS[1] },
      TagList: [{ Key: 'team', Value: 'crypto' }]
    })
    expect(cluster?.ClusterId).toMatch(/^cluster-[2-7a-z]{11}$/)
    expect(cluster?.VpcId).toMatch(/^vpc-[0-9a-f]{17}$/)
    expect(cluster?.SecurityGroup).toMatch(/^sg-[0-9a-f]{17}$/)
    expect(cluster?.CreateTimestamp).toBeInstanceOf(Date)
    expect(Math.abs((cluster?.CreateTimestamp?.getTime() ?? 0) - Date.now())).toBeLessThan(60_000)
    const id = cluster?.ClusterId ?? ''
    // Members newer than this SDK (3.332) and hsmlab's extensions, through ControlPlaneClient.
    const raw = await new ControlPlaneClient({ endpoint: cp.url, region: 'us-east-1' }).getCluster(id)
    expect(raw).toMatchObject({ Mode: 'FIPS', NetworkType: 'IPV4' })
    expect(raw?.HsmlabTrustAnchor).toMatch(/^-----BEGIN HSMLAB TRUST ANCHOR-----/)
    await waitFor(async () => (await sdk.send(new DescribeClustersCommand({ Filters: { clusterIds: [id] } }))).Clusters?.[0]?.State === 'UNINITIALIZED', { what: 'UNINITIALIZED' })
    expect((await sdk.send(new DescribeClustersCommand({ Filters: { states: ['ACTIVE'] } }))).Clusters).toEqual([])
    expect((await sdk.send(new DescribeClustersCommand({ Filters: { vpcIds: [cluster?.VpcId ?? ''] } }))).Clusters).toHaveLength(1)

    await sdk.send(new TagResourceCommand({ ResourceId: id, TagList: [{ Key: 'env', Value: 'lab' }, { Key: 'team', Value: 'keys' }] }))
    expect((await sdk.send(new ListTagsCommand({ ResourceId: id }))).TagList).toEqual([{ Key: 'team', Value: 'keys' }, { Key: 'env', Value: 'lab' }])
    const firstPage = await sdk.send(new ListTagsCommand({ ResourceId: id, MaxResults: 1 }))
    expect(firstPage.TagList).toHaveLength(1)
    const second = await sdk.send(new ListTagsCommand({ ResourceId: id, MaxResults: 1, NextToken: firstPage.NextToken }))
    expect(second.TagList).toEqual([{ Key: 'env', Value: 'lab' }])
    expect(second.NextToken).toBeUndefined()
    await sdk.send(new UntagResourceCommand({ ResourceId: id, TagKeyList: ['team', 'absent'] }))
    expect((await sdk.send(new ListTagsCommand({ ResourceId: id }))).TagList).toEqual([{ Key: 'env', Value: 'lab' }])

    const modified = await sdk.send(new ModifyClusterCommand({ ClusterId: id, BackupRetentionPolicy: { Type: 'DAYS', Value: '379' } }))
    expect(modified.Cluster?.BackupRetentionPolicy).toEqual({ Type: 'DAYS', Value: '379' })

    const deleting = await sdk.send(new DeleteClusterCommand({ ClusterId: id }))
    expect(deleting.Cluster).toMatchObject({ State: 'DELETE_IN_PROGRESS', StateMessage: 'The cluster is being deleted.' })
    await waitFor(async () => (await sdk.send(new DescribeClustersCommand({}))).Clusters?.[0]?.State === 'DELETED', { what: 'DELETED' })
    await expectAwsError(sdk.send(new DeleteClusterCommand({ ClusterId: id })), INVALID, /in state DELETED/)
  })

  it('pages DescribeClusters and enforces the cluster quota', async () => {
    const cp = await startTestControlPlane('us-east-1', { tuning: { clustersMax: 3 } })
    const sdk = sdkClient(cp.url)
    for (let i = 0; i < 3; i++) await sdk.send(new CreateClusterCommand({ HsmType: 'hsm1.medium', SubnetIds: [SUBNETS[0] ?? ''] }))
    await expectAwsError(sdk.send(new CreateClusterCommand({ HsmType: 'hsm1.medium', SubnetIds: [SUBNETS[0] ?? ''] })), INVALID, /limit of 3 clusters/)
    const first = await sdk.send(new DescribeClustersCommand({ MaxResults: 2 }))
    expect(first.Clusters).toHaveLength(2)
    const rest = await sdk.send(new DescribeClustersCommand({ MaxResults: 2, NextToken: first.NextToken }))
    expect(rest.Clusters).toHaveLength(1)
    expect(rest.NextToken).toBeUndefined()
    await expectAwsError(sdk.send(new DescribeClustersCommand({ NextToken: 'garbage' })), INVALID, /NextToken/)
  })

  it('answers every error path with the exact __type and changes nothing', async () => {
    const cp = await startTestControlPlane()
    const sdk = sdkClient(cp.url)
    const send = sdk.send.bind(sdk) as (command: unknown) => Promise<unknown>
    // CreateCluster
    await expectAwsError(send(new CreateClusterCommand({ SubnetIds: SUBNETS } as never)), INVALID, /Value null at 'hsmType' failed to satisfy constraint: Member must not be null/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-xyz'] })), INVALID, /subnetIds.1.member/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [] })), INVALID, /length greater than or equal to 1/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm9.huge', SubnetIds: SUBNETS })), INVALID, /not supported/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [SUBNETS[0] ?? '', SUBNETS[0] ?? ''] })), INVALID, /listed twice/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, BackupRetentionPolicy: { Type: 'DAYS', Value: '6' } })), INVALID, /between 7 - 379/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, BackupRetentionPolicy: { Type: 'DAYS', Value: '1000' } })), INVALID, /length less than or equal to 3/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, SourceBackupId: UNKNOWN_BACKUP })), NOT_FOUND, /Backup backup-aaaaaaaaaaa not found/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, SourceBackupId: `arn:aws:cloudhsm:us-west-2:111122223333:backup/${UNKNOWN_BACKUP}` })), INVALID, /copy it to us-east-1/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, TagList: [{ Key: 'aws:x', Value: '1' }] })), 'CloudHsmTagException', /reserved/)
    await expectAwsError(send(new CreateClusterCommand({ HsmType: 'hsm1.medium', SubnetIds: SUBNETS, Mode: 'NON_FIPS' } as never)), INVALID, /NON_FIPS/)
    expect((await sdk.send(new DescribeClustersCommand({}))).Clusters).toEqual([])
    // DescribeClusters
    await expectAwsError(send(new DescribeClustersCommand({ Filters: { color: ['red'] } })), INVALID, /Invalid filter 'color'/)
    await expectAwsError(send(new DescribeClustersCommand({ Filters: { states: ['HAPPY'] } })), INVALID, /filter states/)
    await expectAwsError(send(new DescribeClustersCommand({ MaxResults: 0 })), INVALID, /greater than or equal to 1/)
    // One cluster still CREATE_IN_PROGRESS (a long delay) for the wrong-state paths.
    const slow = await startTestControlPlane('us-east-1', { tuning: { clusterCreateDelayMs: 60_000 } })
    const slowSdk = sdkClient(slow.url)
    const slowSend = slowSdk.send.bind(slowSdk) as (command: unknown) => Promise<unknown>
    const id = (await slowSdk.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS }))).Cluster?.ClusterId ?? ''
    // DeleteCluster
    await expectAwsError(send(new DeleteClusterCommand({ ClusterId: UNKNOWN_CLUSTER })), NOT_FOUND, /Cluster cluster-aaaaaaaaaaa not found/)
    await expectAwsError(send(new DeleteClusterCommand({ ClusterId: 'cluster-1' })), INVALID, /regular expression pattern/)
    await expectAwsError(slowSend(new DeleteClusterCommand({ ClusterId: id })), INVALID, /in state CREATE_IN_PROGRESS/)
    // InitializeCluster
    await expectAwsError(send(new InitializeClusterCommand({ ClusterId: UNKNOWN_CLUSTER } as never)), INVALID, /signedCert.*must not be null/)
    await expectAwsError(send(new InitializeClusterCommand({ ClusterId: UNKNOWN_CLUSTER, SignedCert: 'x', TrustAnchor: 'y' })), NOT_FOUND)
    await expectAwsError(slowSend(new InitializeClusterCommand({ ClusterId: id, SignedCert: 'x', TrustAnchor: 'y' })), INVALID, /in state CREATE_IN_PROGRESS/)
    await expectAwsError(send(new InitializeClusterCommand({ ClusterId: UNKNOWN_CLUSTER, SignedCert: '<cert>', TrustAnchor: 'y' })), INVALID, /regular expression pattern/)
    // ModifyCluster
    await expectAwsError(slowSend(new ModifyClusterCommand({ ClusterId: id } as never)), INVALID, /needs BackupRetentionPolicy or HsmType/)
    await expectAwsError(send(new ModifyClusterCommand({ ClusterId: UNKNOWN_CLUSTER, BackupRetentionPolicy: { Type: 'DAYS', Value: '30' } })), NOT_FOUND)
    await expectAwsError(slowSend(new ModifyClusterCommand({ ClusterId: id, BackupRetentionPolicy: { Type: 'DAYS', Value: '30' } })), INVALID, /CREATE_IN_PROGRESS/)
    // CreateHsm
    await expectAwsError(send(new CreateHsmCommand({ ClusterId: UNKNOWN_CLUSTER, AvailabilityZone: 'us-east-1a' })), NOT_FOUND)
    await expectAwsError(send(new CreateHsmCommand({ ClusterId: UNKNOWN_CLUSTER, AvailabilityZone: 'east' })), INVALID, /availabilityZone/)
    await expectAwsError(slowSend(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: 'us-east-1a' })), INVALID, /in state CREATE_IN_PROGRESS/)
    // DeleteHsm
    await expectAwsError(slowSend(new DeleteHsmCommand({ ClusterId: id })), INVALID, /exactly one of HsmId, EniId and EniIp/)
    await expectAwsError(slowSend(new DeleteHsmCommand({ ClusterId: id, HsmId: 'hsm-aaaaaaaaaaa' })), NOT_FOUND, /HSM hsm-aaaaaaaaaaa not found/)
    await expectAwsError(send(new DeleteHsmCommand({ ClusterId: UNKNOWN_CLUSTER, EniIp: '127.1.1.4' })), NOT_FOUND)
    await expectAwsError(send(new DeleteHsmCommand({ ClusterId: UNKNOWN_CLUSTER, EniId: 'eni-zz' })), INVALID, /eniId/)
    // Backups
    await expectAwsError(send(new DescribeBackupsCommand({ Filters: { states: ['GONE'] } })), INVALID, /filter states/)
    await expectAwsError(send(new DescribeBackupsCommand({ Filters: { neverExpires: ['maybe'] } })), INVALID, /neverExpires/)
    await expectAwsError(send(new DescribeBackupsCommand({ MaxResults: 51 })), INVALID, /less than or equal to 50/)
    expect((await sdk.send(new DescribeBackupsCommand({}))).Backups).toEqual([])
    await expectAwsError(send(new DeleteBackupCommand({ BackupId: UNKNOWN_BACKUP })), NOT_FOUND)
    await expectAwsError(send(new RestoreBackupCommand({ BackupId: UNKNOWN_BACKUP })), NOT_FOUND)
    await expectAwsError(send(new ModifyBackupAttributesCommand({ BackupId: UNKNOWN_BACKUP, NeverExpires: true })), NOT_FOUND)
    await expectAwsError(send(new ModifyBackupAttributesCommand({ BackupId: UNKNOWN_BACKUP } as never)), INVALID, /neverExpires/)
    await expectAwsError(send(new CopyBackupToRegionCommand({ BackupId: UNKNOWN_BACKUP, DestinationRegion: 'us-west-2' })), NOT_FOUND)
    await expectAwsError(send(new CopyBackupToRegionCommand({ BackupId: UNKNOWN_BACKUP, DestinationRegion: 'mars-1' })), INVALID, /destinationRegion/)
    // Tags
    await expectAwsError(send(new TagResourceCommand({ ResourceId: UNKNOWN_CLUSTER, TagList: [{ Key: 'a', Value: 'b' }] })), NOT_FOUND)
    await expectAwsError(slowSend(new TagResourceCommand({ ResourceId: id, TagList: Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) })).then(async () =>
      await slowSend(new TagResourceCommand({ ResourceId: id, TagList: [{ Key: 'one-more', Value: 'v' }] }))), 'CloudHsmResourceLimitExceededException', /at most 50/)
    await expectAwsError(send(new TagResourceCommand({ ResourceId: UNKNOWN_CLUSTER, TagList: [{ Key: 'a', Value: 'b' }, { Key: 'a', Value: 'c' }] })), 'CloudHsmTagException', /more than once/)
    await expectAwsError(send(new ListTagsCommand({ ResourceId: 'hsm-aaaaaaaaaaa' })), INVALID, /resourceId/)
    await expectAwsError(send(new UntagResourceCommand({ ResourceId: UNKNOWN_BACKUP, TagKeyList: ['a'] })), NOT_FOUND)
  })

  it('answers protocol errors: unknown operation, a body that is not JSON, a wrong path', async () => {
    const cp = await startTestControlPlane()
    expect(await post(cp.url, 'BaldrApiService.Nope', '{}')).toMatchObject({ status: 400, json: { __type: 'UnknownOperationException' } })
    // Served since issue 15: without a ResourceArn it is a request error, not an unknown operation.
    expect(await post(cp.url, 'BaldrApiService.GetResourcePolicy', '{}')).toMatchObject({ status: 400, json: { __type: 'CloudHsmInvalidRequestException' } })
    expect(await post(cp.url, undefined, '{}')).toMatchObject({ status: 400, json: { __type: 'UnknownOperationException' } })
    expect(await post(cp.url, 'BaldrApiService.DescribeClusters', '{not json')).toMatchObject({ status: 400, json: { __type: 'SerializationException' } })
    expect(await post(cp.url, 'BaldrApiService.DescribeClusters', '')).toMatchObject({ status: 200, json: { Clusters: [] } })
    const res = await post(cp.url, 'BaldrApiService.DeleteCluster', '{"ClusterId":"cluster-aaaaaaaaaaa"}')
    expect(res).toEqual({ status: 400, json: { __type: NOT_FOUND, message: 'Cluster cluster-aaaaaaaaaaa not found' } })
  })

  it('checks SigV4 signatures when it has credentials', async () => {
    const cp = await startTestControlPlane('us-east-1', { credentials: DUMMY_CREDENTIALS })
    expect((await sdkClient(cp.url).send(new DescribeClustersCommand({}))).Clusters).toEqual([])
    await expectAwsError(sdkClient(cp.url, 'us-east-1', { ...DUMMY_CREDENTIALS, secretAccessKey: 'wrong' }).send(new DescribeClustersCommand({})), 'InvalidSignatureException')
    await expectAwsError(sdkClient(cp.url, 'us-east-1', { ...DUMMY_CREDENTIALS, accessKeyId: 'AKIDOTHER' }).send(new DescribeClustersCommand({})), 'UnrecognizedClientException')
    expect(await post(cp.url, 'BaldrApiService.DescribeClusters', '{}')).toMatchObject({ status: 403, json: { __type: 'MissingAuthenticationTokenException' } })
    const signed = new ControlPlaneClient({ endpoint: cp.url, region: 'us-east-1', credentials: DUMMY_CREDENTIALS })
    expect((await signed.describeClusters()).Clusters).toEqual([])
  })

  it('serves every region from one endpoint: the region of the credential scope, forwarded by the regions file', async () => {
    const dir = tmpDir()
    const regionsFile = join(dir, 'regions.json')
    const east = await startTestControlPlane('us-east-1', { regionsFile })
    const west = await startTestControlPlane('us-west-2', { regionsFile })
    await writeRegionsFile(regionsFile, { 'us-east-1': east.url, 'us-west-2': west.url })
    const viaEast = sdkClient(east.url, 'us-west-2')
    const created = await viaEast.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS }))
    expect(created.Cluster?.SubnetMapping).toEqual({ 'us-west-2a': SUBNETS[0], 'us-west-2b': SUBNETS[1] })
    expect((await sdkClient(west.url, 'us-west-2').send(new DescribeClustersCommand({}))).Clusters).toHaveLength(1)
    expect((await sdkClient(east.url, 'us-east-1').send(new DescribeClustersCommand({}))).Clusters).toHaveLength(0)
    await expectAwsError(sdkClient(east.url, 'eu-west-1').send(new DescribeClustersCommand({})), INVALID, /Region eu-west-1 is not available/)
    const unsigned = new ControlPlaneClient({ endpoint: east.url, region: 'us-west-2' })
    expect((await unsigned.describeClusters()).Clusters).toHaveLength(1)
    await expect(unsigned.deleteCluster(UNKNOWN_CLUSTER)).rejects.toMatchObject({ code: 'CP_ERR_API', awsType: NOT_FOUND, statusCode: 400 })
  })
})

describe('HSM addressing: --hsm-host', () => {
  it('refuses an hsmHost that clients cannot reach, with per-hsm addressing, and shared addressing on every interface without one', async () => {
    const base = { region: 'us-east-1', dataDir: tmpDir(), manufacturerKeyFile: join(tmpDir(), 'manufacturer.key') }
    const refused = async (options: Partial<ControlPlaneOptions>, message: RegExp): Promise<void> => {
      await expect(startControlPlane({ ...base, ...options })).rejects.toMatchObject({ code: 'CP_ERR_INVALID_ARGUMENT', message: expect.stringMatching(message) })
    }
    await refused({ hsmHost: '10.0.0.4', hsmAddressing: 'per-hsm' }, /shared addressing only/)
    await refused({ hsmHost: '0.0.0.0' }, /IPv4 address clients can reach/)
    await refused({ hsmHost: 'cp-us-east-1' }, /IPv4 address clients can reach/)
    await refused({ host: '0.0.0.0', hsmAddressing: 'shared' }, /give hsmHost/)
    // The bin passes the flag on, and reports the refusal with its code.
    let stderr = ''
    const code = await main(['--region', 'us-east-1', '--data-dir', base.dataDir, '--hsm-manufacturer-key-file', base.manufacturerKeyFile, '--hsm-host', '0.0.0.0'],
      { stdout: () => {}, stderr: text => { stderr += text } })
    expect(code).toBe(1)
    expect(stderr).toContain('[CP_ERR_INVALID_ARGUMENT] hsmHost must be an IPv4 address')
  })

  it('with hsmHost the API listens on host, every HSM gets hsmHost as its EniIp (shared addressing), and IpAddress must be it', async () => {
    // No HSM process here (an HSM bin that does not exist): only where the API puts the HSM matters.
    const cp = await startTestControlPlane('us-east-1', { host: '0.0.0.0', hsmHost: '127.0.0.9', hsmBinPath: join(tmpDir(), 'no-hsm.js') })
    expect(cp.host).toBe('0.0.0.0')
    const api = new ControlPlaneClient({ endpoint: `http://127.0.0.1:${cp.port}`, region: 'us-east-1' })
    const cluster = await api.createCluster({ HsmType: 'hsm1.medium', SubnetIds: SUBNETS })
    await api.waitForCluster(cluster.ClusterId ?? '', 'UNINITIALIZED')
    await expect(api.createHsm({ ClusterId: cluster.ClusterId ?? '', AvailabilityZone: 'us-east-1a', IpAddress: '127.1.1.4' }))
      .rejects.toMatchObject({ awsType: INVALID, message: expect.stringContaining('every HSM of this hsmlab region listens on 127.0.0.9') })
    // Recorded before any process exists: the address is decided by the API.
    const hsm = await api.createHsm({ ClusterId: cluster.ClusterId ?? '', AvailabilityZone: 'us-east-1b' })
    expect(hsm.EniIp).toBe('127.0.0.9')
  })

  it('with per-hsm addressing an HSM gets an address of its region and availability zone: 127.<region>.<zone>.<host>', async () => {
    const cp = await startTestControlPlane('us-west-2', { hsmAddressing: 'per-hsm', hsmBinPath: join(tmpDir(), 'no-hsm.js') })
    const api = new ControlPlaneClient({ endpoint: `http://127.0.0.1:${cp.port}`, region: 'us-west-2' })
    const cluster = await api.createCluster({ HsmType: 'hsm1.medium', SubnetIds: SUBNETS })
    await api.waitForCluster(cluster.ClusterId ?? '', 'UNINITIALIZED')
    const zone = Object.keys(cluster.SubnetMapping ?? {}).sort()[0] ?? ''
    expect(zone).toBe('us-west-2a')
    await expect(api.createHsm({ ClusterId: cluster.ClusterId ?? '', AvailabilityZone: zone, IpAddress: '127.0.1.4' }))
      .rejects.toMatchObject({ awsType: INVALID, message: expect.stringContaining('is not in the subnet of us-west-2a (127.4.1.0/24, hosts .4 to .254)') })
    const hsm = await api.createHsm({ ClusterId: cluster.ClusterId ?? '', AvailabilityZone: zone })
    expect(hsm.EniIp).toBe('127.4.1.4')
  })
})
