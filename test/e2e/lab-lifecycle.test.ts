/**
 * Goal: `hsmlab up`, `status` and `down` keep the lab's contract (DESIGN.md) with real processes,
 * for a single-region topology without clones (through its control plane, like every lab): the
 * status JSON has the contract's shape, every HSM answers as itself, activated clusters have
 * their users, a killed HSM is restarted by its control plane (same port, same data) and `up`
 * waits for it, and `down` leaves no process behind.
 *
 * Method: the real `hsmlab` bin (startLab) in a temporary directory, a topology of two clusters
 * (one activated with 2 HSMs, one left new with 1 HSM); checks through the client library, the
 * CMU bin (`hsmlab cmu`) and `hsmlab status --json`; SIGKILL for the crash.
 */
import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { describe, expect, it } from 'vitest'
import { HsmConnection, readCmuConfig } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { HSMLAB_BIN, isRunning, spawnNode, startLab } from '@hsmlab/testing'
import type { LabStatusCluster, LabStatusHsm, LabStatusJson } from '@hsmlab/testing'

const topology = {
  regions: [{
    name: 'us-east-1',
    clusters: [
      {
        name: 'primary',
        hsms: 2,
        activate: { admin: 'Admin1234' },
        users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }, { type: 'CO', name: 'officer2', password: 'Officer1234' }]
      },
      { name: 'spare', hsms: 1 }
    ]
  }]
}

function clusterOf (status: LabStatusJson, name: string): LabStatusCluster {
  const cluster = status.regions.flatMap(r => r.clusters).find(c => c.name === name)
  if (cluster === undefined) throw new Error(`no cluster ${name} in the status`)
  return cluster
}

function hsmsOf (status: LabStatusJson): LabStatusHsm[] {
  return status.regions.flatMap(r => r.clusters).flatMap(c => c.hsms)
}

async function connect (cluster: LabStatusCluster, hsm: LabStatusHsm): Promise<HsmConnection> {
  const config = await readCmuConfig(cluster.cmuConfig)
  const anchor = decodeTrustAnchor(readFileSync(config.servers[0]?.caFile ?? '', 'utf8'))
  return await HsmConnection.connect({ url: hsm.endpoint, trustAnchor: anchor, expectedClusterId: cluster.id })
}

/** Logs in on one HSM and out again; throws (with the HSM's return code) if the login fails. */
async function login (cluster: LabStatusCluster, hsm: LabStatusHsm, userType: 'CO' | 'CU' | 'PRECO', userName: string, password: string): Promise<void> {
  const connection = await connect(cluster, hsm)
  try {
    await connection.call('login', { userType, userName, password })
    await connection.call('logout', {})
  } finally {
    await connection.close()
  }
}

describe('hsmlab up / status / down', () => {
  it('keeps the contract through a crash, a restart and a stop', async () => {
    const lab = await startLab({ topology })
    const status = lab.status

    // The contract's shape.
    expect(status.dir).toBe(lab.dir)
    // Every link runs through the lab's fault proxy (test/e2e/faults-*.test.ts).
    expect(status.faults).toMatchObject({ endpoint: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) as unknown, state: 'RUNNING' })
    expect(status.cmuConfigs).toEqual({})
    expect(status.regions.map(r => r.name)).toEqual(['us-east-1'])
    const controlPlane = status.regions[0]?.controlPlane
    expect(controlPlane?.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(isRunning(controlPlane?.pid as number)).toBe(true)
    expect(status.regions[0]?.clusters.map(c => c.name)).toEqual(['primary', 'spare'])
    for (const cluster of status.regions[0]?.clusters ?? []) {
      expect(cluster.id).toMatch(/^cluster-[2-7a-z]{11}$/)
      expect(typeof cluster.lineage).toBe('string')
      expect(isAbsolute(cluster.cmuConfig) && existsSync(cluster.cmuConfig)).toBe(true)
      for (const hsm of cluster.hsms) {
        expect(hsm.id).toMatch(/^hsm-[2-7a-z]{11}$/)
        expect(hsm.state).toBe('ACTIVE')
        expect(typeof hsm.pid).toBe('number')
        expect(hsm.endpoint).toMatch(/^ws:\/\/127\.\d+\.\d+\.\d+:\d+$/)
      }
    }
    const primary = clusterOf(status, 'primary')
    const spare = clusterOf(status, 'spare')
    expect(primary.state).toBe('ACTIVE')
    expect(spare.state).toBe('INITIALIZED')
    expect(hsmsOf(status)).toHaveLength(3)

    // `status --json` probes again and agrees; the CMU configuration lists the cluster in server order.
    const again = await lab.statusJson()
    expect(hsmsOf(again).map(h => [h.id, h.pid, h.state, h.endpoint])).toEqual(hsmsOf(status).map(h => [h.id, h.pid, h.state, h.endpoint]))
    const config = await readCmuConfig(primary.cmuConfig)
    expect(config.servers.map(s => `ws://${s.hostname}:${s.port}`)).toEqual(primary.hsms.map(h => h.endpoint))

    // Every HSM answers as itself; the activated cluster has its CO and users, the other its PRECO.
    for (const cluster of [primary, spare]) {
      for (const hsm of cluster.hsms) {
        const connection = await connect(cluster, hsm)
        expect(connection.hsmId).toBe(hsm.id)
        await connection.close()
      }
    }
    for (const hsm of primary.hsms) {
      await login(primary, hsm, 'CO', 'admin', 'Admin1234')
      await login(primary, hsm, 'CU', 'alice', 'Alice1234')
      await login(primary, hsm, 'CO', 'officer2', 'Officer1234')
    }
    await login(spare, spare.hsms[0] as LabStatusHsm, 'PRECO', 'admin', 'password')

    // The CMU shell, through `hsmlab cmu`, logs in as the CO on both HSMs.
    const cmu = spawnNode(HSMLAB_BIN, ['cmu', primary.cmuConfig], { name: 'hsmlab cmu' })
    cmu.write('loginHSM CO admin Admin1234\nlogoutHSM\nquit\n')
    cmu.child.stdin.end()
    expect(await cmu.exited).toBe(0)
    expect(cmu.stdout()).toContain('loginHSM success on server 0(')
    expect(cmu.stdout()).toContain('loginHSM success on server 1(')

    // SIGKILL one HSM: its control plane restarts it (same address, same data), and `up` waits
    // until it is ACTIVE again without starting anything itself.
    const victim = primary.hsms[1] as LabStatusHsm
    const survivor = primary.hsms[0] as LabStatusHsm
    process.kill(victim.pid as number, 'SIGKILL')
    const upRun = await lab.hsmlab(['up'])
    expect(upRun.code).toBe(0)
    expect(upRun.stdout).toContain('nothing to start: 1 control plane and 3 HSMs running')
    const restarted = await lab.statusJson()
    const before = new Map(hsmsOf(status).map(h => [h.id, h]))
    for (const hsm of hsmsOf(restarted)) {
      expect(hsm.state).toBe('ACTIVE')
      expect(hsm.endpoint).toBe(before.get(hsm.id)?.endpoint)
      if (hsm.id === victim.id) expect(hsm.pid).not.toBe(victim.pid)
      else expect(hsm.pid).toBe(before.get(hsm.id)?.pid)
    }
    expect(restarted.regions[0]?.controlPlane?.pid).toBe(controlPlane?.pid)
    expect(clusterOf(restarted, 'primary').state).toBe('ACTIVE')
    const back = clusterOf(restarted, 'primary').hsms[1] as LabStatusHsm
    await login(clusterOf(restarted, 'primary'), back, 'CU', 'alice', 'Alice1234')
    await login(clusterOf(restarted, 'primary'), survivor, 'CU', 'alice', 'Alice1234')

    // `down` stops every process; a second `down` has nothing to do.
    const pids = [...hsmsOf(restarted).map(h => h.pid as number), controlPlane?.pid as number, restarted.faults.pid as number]
    const down = await lab.down()
    const clusters = restarted.regions.flatMap(r => r.clusters).length
    expect(down.stdout).toContain(`stopped 1 control plane and 3 HSM processes, ${clusters} client daemons, the console and the fault proxy of`)
    for (const pid of pids) expect(isRunning(pid)).toBe(false)
    const stopped = await lab.statusJson()
    expect(hsmsOf(stopped).every(h => h.state === 'DOWN' && h.pid === null)).toBe(true)
    expect(stopped.regions[0]?.controlPlane?.pid).toBeNull()
    expect(stopped.state).toBe('STOPPED')
    expect((await lab.down()).stdout).toContain('stopped 0 control planes and 0 HSM processes')

    // And `up` brings the whole lab back with its data: same addresses, activation kept.
    const revived = await lab.up()
    expect(hsmsOf(revived).map(h => [h.id, h.endpoint, h.state])).toEqual(hsmsOf(status).map(h => [h.id, h.endpoint, 'ACTIVE']))
    await login(clusterOf(revived, 'primary'), clusterOf(revived, 'primary').hsms[0] as LabStatusHsm, 'CO', 'admin', 'Admin1234')
    await lab.down(['--purge'])
    expect(existsSync(lab.dir)).toBe(false)
  })
})
