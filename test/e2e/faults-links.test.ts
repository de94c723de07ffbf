/**
 * Goal: every link of a lab runs through its fault proxy, on by default, named so that a person
 * can tell which link it is; any Toxiproxy client sees the links and can slow them; the faults a
 * topology declares are set once the lab is up; and a CMU command to a server cut off by a fault
 * reports that server's failure and completes on the others.
 *
 * Method: the default two-region lab (startLab) with a topology that adds WAN latency and a seed;
 * toxiproxy-node-client (a real Toxiproxy client) against `faults.endpoint` of `hsmlab status
 * --json`; ControlPlaneClient and HsmConnection to time what crosses a slowed link; the real CMU
 * bin (short --request-timeout-ms) while `hsmlab fault blackhole` / `partition` cut one HSM.
 */
import { readFileSync } from 'node:fs'
import { Toxiproxy } from 'toxiproxy-node-client'
import type { ICreateToxicBody, Latency } from 'toxiproxy-node-client'
import { describe, expect, it } from 'vitest'
import { HsmConnection, readCmuConfig } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { startLab } from '@hsmlab/testing'
import type { LabStatusCluster, LabStatusHsm, LabStatusJson } from '@hsmlab/testing'
import { startCmuBin, usersSection } from './cmu-helpers.js'

const DEFAULT_REGIONS = [
  { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 2, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }] },
  { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 2, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
]

function clusterOf (status: LabStatusJson, region: string, name: string): LabStatusCluster {
  const cluster = status.regions.find(r => r.name === region)?.clusters.find(c => c.name === name)
  if (cluster === undefined) throw new Error(`no cluster ${region}/${name} in the status`)
  return cluster
}

const strip = (url: unknown): string => String(url).replace(/^[a-z]+:\/\//, '')

async function elapsedMs (work: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  await work()
  return performance.now() - started
}

describe('the fault layer of a lab', () => {
  it('puts every link behind a named proxy that Toxiproxy clients drive, sets the topology\'s faults, and CMU survives a cut server', async () => {
    const lab = await startLab({
      lean: true,
      topology: { regions: DEFAULT_REGIONS, faults: [{ type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitter: 30 }] },
      args: ['--seed', '7']
    })
    const { status } = lab
    const endpoint = status.faults.endpoint as string
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(status.faults.seed).toBe(7)
    expect(await lab.statusJson()).toMatchObject({ state: 'RUNNING', faults: { endpoint, seed: 7, state: 'RUNNING' } })

    // Every link, as a Toxiproxy client lists them.
    const toxiproxy = new Toxiproxy(endpoint)
    const proxies = await toxiproxy.getAll()
    expect(Object.keys(proxies).sort()).toEqual([
      'control/us-east-1/primary/hsm-0', 'control/us-east-1/primary/hsm-1', 'control/us-west-2/dr/hsm-0', 'control/us-west-2/dr/hsm-1',
      'peer/us-east-1/primary/hsm-0->hsm-1', 'peer/us-east-1/primary/hsm-1->hsm-0', 'peer/us-west-2/dr/hsm-0->hsm-1', 'peer/us-west-2/dr/hsm-1->hsm-0',
      'us-east-1/primary/hsm-0', 'us-east-1/primary/hsm-1', 'us-west-2/dr/hsm-0', 'us-west-2/dr/hsm-1',
      'wan/us-east-1->us-west-2', 'wan/us-west-2->us-east-1'
    ])
    // A client link listens on its HSM's own address (another port) and leads to the HSM; the
    // configurations and the status name it.
    for (const cluster of [clusterOf(status, 'us-east-1', 'primary'), clusterOf(status, 'us-west-2', 'dr')]) {
      const config = await readCmuConfig(cluster.cmuConfig)
      cluster.hsms.forEach((hsm, i) => {
        const proxy = proxies[`${cluster.region as string}/${cluster.name}/hsm-${i}`]
        expect(proxy?.listen).toBe(strip(hsm.endpoint))
        expect(proxy?.upstream).toBe(strip(hsm.directEndpoint))
        expect(strip(hsm.endpoint).split(':')[0]).toBe(hsm.name)
        expect(config.servers[i]).toMatchObject({ name: hsm.name, hostname: hsm.name, port: Number(strip(hsm.endpoint).split(':')[1]) })
      })
    }
    // The WAN links lead to the other region's control plane.
    expect(proxies['wan/us-east-1->us-west-2']?.upstream).toBe(strip(status.regions[1]?.controlPlane?.endpoint))

    // The topology's latency is on both WAN links, both directions; a request forwarded across
    // the WAN (DescribeBackups for us-west-2 asked of us-east-1) waits for it each way.
    for (const name of ['wan/us-east-1->us-west-2', 'wan/us-west-2->us-east-1']) {
      const proxy = await toxiproxy.get(name)
      for (const stream of ['upstream', 'downstream']) {
        const toxic = (await proxy.getToxic<Latency>(`latency_${stream}`)).toJson()
        expect(toxic).toEqual({ name: `latency_${stream}`, type: 'latency', stream, toxicity: 1, attributes: { latency: 150, jitter: 30 } })
      }
    }
    const east = new ControlPlaneClient({ endpoint: status.regions[0]?.controlPlane?.endpoint as string, region: 'us-east-1' })
    expect(await elapsedMs(async () => await east.forRegion('us-west-2').describeBackups())).toBeGreaterThanOrEqual(240)
    const list = await lab.hsmlab(['fault', 'list'])
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/^fault proxy http:\/\/127\.0\.0\.1:\d+ {2}seed 7 {2}faults set\n/)
    expect(list.stdout).toMatch(/\nwan\/us-east-1->us-west-2 +127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+ +ok +latency_upstream\(latency=150,jitter=30\) latency_downstream\(latency=150,jitter=30\)\n/)
    const healed = await lab.hsmlab(['fault', 'heal'])
    expect(healed.code, healed.stderr).toBe(0)
    await expect((await toxiproxy.get('wan/us-east-1->us-west-2')).getToxic('latency_upstream')).rejects.toThrow()

    // A Toxiproxy client adds a latency toxic to a client link: an HSM round trip through it waits.
    const primary = clusterOf(status, 'us-east-1', 'primary')
    const hsm0 = primary.hsms[0] as LabStatusHsm
    const anchor = decodeTrustAnchor(readFileSync(primary.trustAnchor as string, 'utf8'))
    const connection = await HsmConnection.connect({ url: hsm0.endpoint, trustAnchor: anchor, expectedClusterId: primary.id })
    try {
      const proxy = await toxiproxy.get('us-east-1/primary/hsm-0')
      // No name: the server names it (checked below); the client's type asks for one all the same.
      const toxic = await proxy.addToxic<Latency>({ type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 400, jitter: 0 } } as ICreateToxicBody<Latency>)
      expect(toxic.name).toBe('latency_downstream')
      expect(await elapsedMs(async () => await connection.call('getHsmInfo', {}))).toBeGreaterThanOrEqual(390)
      await toxic.remove()
      await expect(proxy.getToxic('latency_downstream')).rejects.toThrow()
    } finally {
      await connection.close()
    }

    // Unknown groups and links between nothing are refused, naming what the lab has.
    const unknown = await lab.hsmlab(['fault', 'partition', 'eu-west-1'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("the lab has no group 'eu-west-1'; name a region, a cluster or an HSM of the lab (regions: us-east-1, us-west-2;")
    const nothing = await lab.hsmlab(['fault', 'latency', 'us-east-1', 'us-east-1/primary', '--ms', '10'])
    expect(nothing.code).toBe(2)
    expect(nothing.stderr).toContain("no link runs between 'us-east-1' and 'us-east-1/primary'")

    // CMU, connected to both HSMs of primary; hsm-1 is blackholed: a command waits for it until its
    // request timeout, reports it, and completes on server 0.
    const [name0, name1] = [hsm0.name as string, primary.hsms[1]?.name as string]
    const cmu = startCmuBin([primary.cmuConfig, '--request-timeout-ms', '1000'])
    let at = await cmu.waitForOutput('aws-cloudhsm>')
    cmu.type('loginHSM CO admin Admin1234')
    at = await cmu.waitForOutput(`loginHSM success on server 1(${name1})\n`, at)
    const blackhole = await lab.hsmlab(['fault', 'blackhole', 'us-east-1/primary/hsm-1'])
    expect(blackhole.code, blackhole.stderr).toBe(0)
    expect(blackhole.stdout).toBe('blackholed us-east-1/primary/hsm-1: 3 links\n  peer/us-east-1/primary/hsm-0->hsm-1\n  peer/us-east-1/primary/hsm-1->hsm-0\n  us-east-1/primary/hsm-1\n')
    cmu.type('listUsers')
    await cmu.waitForOutput(`listUsers failed on server 1(${name1})\n`, at)
    const users = usersSection(`server 0(${name0})`, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CU', 'alice']])
    expect(cmu.process.stdout()).toContain(`aws-cloudhsm>listUsers\n${users}listUsers failed: server did not respond within 1000 ms\nlistUsers failed on server 1(${name1})\n`)
    expect((await lab.hsmlab(['fault', 'heal', 'us-east-1/primary/hsm-1'])).code).toBe(0)
    cmu.type('quit')
    expect(await cmu.process.exited).toBe(0)

    // A second session; hsm-0 is partitioned: its connection is reset, a command reports it as not
    // connected, and completes on server 1.
    const again = startCmuBin([primary.cmuConfig, '--request-timeout-ms', '1000'])
    at = await again.waitForOutput('aws-cloudhsm>')
    const partition = await lab.hsmlab(['fault', 'partition', hsm0.id])
    expect(partition.code, partition.stderr).toBe(0)
    again.type('listUsers')
    await again.waitForOutput('aws-cloudhsm>', at)
    expect(again.process.stdout()).toContain(`aws-cloudhsm>listUsers\nlistUsers failed: server is not connected\nlistUsers failed on server 0(${name0})\n` +
      usersSection(`server 1(${name1})`, [[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CU', 'alice']]))
    again.type('quit')
    expect(await again.process.exited).toBe(0)
    expect((await lab.hsmlab(['fault', 'heal'])).code).toBe(0)
  })
})
