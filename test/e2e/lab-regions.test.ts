/**
 * Goal: the default lab — us-east-1/primary and its clone us-west-2/dr, each behind its region's
 * control plane — comes up as DESIGN.md's contract says, and behaves like cloned clusters of the
 * real service: the clone starts with the source's users and lineage, and afterwards nothing
 * crosses between them except what CMU's syncKey and syncUser carry, through the cross-cluster
 * configuration the lab writes. A control plane killed with SIGKILL is brought back by `up` with
 * its clusters and HSMs.
 *
 * Method: the real `hsmlab` bin (startLab, default topology) in a temporary directory; the real
 * KMU and CMU bins for keys and users; the control planes' API through ControlPlaneClient (and the
 * AWS CLI when it is installed); SIGKILL for the crash. A second test builds a clone in the same
 * region (no copy across regions).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { HsmConnection, readCmuConfig } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { isRunning, spawnProcess, startLab, waitFor } from '@hsmlab/testing'
import type { LabStatusCluster, LabStatusHsm, LabStatusJson } from '@hsmlab/testing'
import { runCmuBin } from './cmu-helpers.js'
import { kmuOnce, numberAfter } from './kmu-driver.js'

function clusterOf (status: LabStatusJson, region: string, name: string): LabStatusCluster {
  const cluster = status.regions.find(r => r.name === region)?.clusters.find(c => c.name === name)
  if (cluster === undefined) throw new Error(`no cluster ${region}/${name} in the status`)
  return cluster
}

/** Per server of a CMU output's findAllKeys: how many keys, and their hash (none without keys). */
function keyHashes (stdout: string): Map<number, { count: number, hash?: string }> {
  const out = new Map<number, { count: number, hash?: string }>()
  for (const section of stdout.split(/(?=Keys on server \d+\()/).slice(1)) {
    const server = Number(/^Keys on server (\d+)\(/.exec(section)?.[1])
    const count = Number(/Number of keys found (\d+)/.exec(section)?.[1])
    const hash = /Key Hash:\n([0-9a-f]+)\n/.exec(section)?.[1]
    out.set(server, hash === undefined ? { count } : { count, hash })
  }
  return out
}

/** Per server of a CMU output's listUsers: the user names. */
function userNames (stdout: string): Map<number, string[]> {
  const out = new Map<number, string[]>()
  for (const section of stdout.split(/(?=Users on server \d+\()/).slice(1)) {
    const server = Number(/^Users on server (\d+)\(/.exec(section)?.[1])
    out.set(server, [...section.matchAll(/^\s+\d+\s+(?:CO|CU|AU|PCO|PRECO)\s+(\S+)/gm)].map(m => m[1] as string))
  }
  return out
}

async function cmu (config: string, session: string[]): Promise<string> {
  const run = await runCmuBin([config], session.map(l => `${l}\n`).join(''))
  expect(run.code, run.stderr).toBe(0)
  return run.stdout
}

async function loginWorks (cluster: LabStatusCluster, hsm: LabStatusHsm, userType: 'CO' | 'CU', userName: string, password: string): Promise<boolean> {
  const config = await readCmuConfig(cluster.cmuConfig)
  const anchor = decodeTrustAnchor(readFileSync(config.servers[0]?.caFile ?? '', 'utf8'))
  const connection = await HsmConnection.connect({ url: hsm.endpoint, trustAnchor: anchor, expectedClusterId: cluster.id })
  try {
    await connection.call('login', { userType, userName, password })
    await connection.call('logout', {})
    return true
  } catch {
    return false
  } finally {
    await connection.close()
  }
}

function hasAwsCli (): boolean {
  try {
    execFileSync('aws', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe('the default lab: two regions, a cluster and its clone', () => {
  it('clones primary into us-west-2, syncs only through syncKey/syncUser, and survives a killed control plane', async () => {
    const lab = await startLab({ lean: true })
    const { status } = lab

    // Every control plane runs (eu-west-1's holds the replica of primary's synchronisation task:
    // issue-12-lab-sync-cli.test.ts); both clusters are ACTIVE with 2 HSMs; the clone has the source's lineage.
    expect(status.regions.map(r => r.name)).toEqual(['us-east-1', 'us-west-2', 'eu-west-1'])
    for (const region of status.regions) {
      expect(region.controlPlane?.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(isRunning(region.controlPlane?.pid as number)).toBe(true)
    }
    const primary = clusterOf(status, 'us-east-1', 'primary')
    const dr = clusterOf(status, 'us-west-2', 'dr')
    for (const cluster of [primary, dr]) {
      expect(cluster.state).toBe('ACTIVE')
      expect(cluster.hsms.map(h => h.state)).toEqual(['ACTIVE', 'ACTIVE'])
    }
    expect(dr.id).not.toBe(primary.id)
    expect(dr.lineage).toBe(primary.lineage)
    expect(dr.cloneOf).toBe('us-east-1/primary')

    // The clone was made the AWS way: from a copy, in us-west-2, of a backup of primary.
    const west = new ControlPlaneClient({ endpoint: status.regions[1]?.controlPlane?.endpoint as string, region: 'us-west-2' })
    const drCluster = await west.getCluster(dr.id)
    const copy = await west.getBackup(drCluster?.SourceBackupId as string)
    expect(copy).toMatchObject({ BackupState: 'READY', SourceRegion: 'us-east-1', SourceCluster: primary.id })
    expect(copy?.ClusterId).toBeUndefined()

    // The cross-cluster configuration: one HSM of the source, then one of the clone, each with its own trust anchor.
    const crossFile = status.cmuConfigs['us-east-1/primary->us-west-2/dr'] as string
    expect(Object.keys(status.cmuConfigs)).toEqual(['us-east-1/primary->us-west-2/dr', 'us-east-1/primary->eu-west-1/replica'])
    expect(existsSync(crossFile)).toBe(true)
    const cross = await readCmuConfig(crossFile)
    expect(cross.servers.map(s => `ws://${s.hostname}:${s.port}`)).toEqual([primary.hsms[0]?.endpoint, dr.hsms[0]?.endpoint])
    expect(cross.servers[0]?.caFile).toBe(primary.trustAnchor)
    expect(cross.servers[1]?.caFile).toBe(dr.trustAnchor)

    // The clone has the source's users as they were at the backup.
    for (const hsm of dr.hsms) expect(await loginWorks(dr, hsm, 'CU', 'alice', 'Alice1234')).toBe(true)

    // A key alice makes on the primary now stays there...
    const made = await kmuOnce(lab.cwd, ['--config', primary.cmuConfig, 'singlecmd', 'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'Alice1234', 'genSymKey', '-t', '31', '-s', '32', '-l', 'after-clone'])
    expect(made.code, made.err).toBe(0)
    const handle = numberAfter(made.out, 'Key Handle:')
    const before = keyHashes(await cmu(crossFile, ['loginHSM CO admin Admin1234', 'findAllKeys 3 1', 'quit']))
    expect(before.get(0)?.count).toBe(1)
    expect(before.get(1)?.count).toBe(0)
    // ...until a CO copies it with syncKey, in server mode on the source.
    const synced = await cmu(crossFile, ['loginHSM CO admin Admin1234', 'server 0', `syncKey ${handle} 1`, 'exit', 'findAllKeys 3 1', 'quit'])
    expect(synced).toContain('syncKey success')
    const after = keyHashes(synced)
    expect(after.get(0)?.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(after.get(1)?.hash).toBe(after.get(0)?.hash)
    // Inside the clone, the key then reaches its other HSM by the cluster's own replication.
    await waitFor(async () => {
      const inside = keyHashes(await cmu(dr.cmuConfig, ['loginHSM CO admin Admin1234', 'findAllKeys 3 1', 'quit']))
      return inside.get(1)?.hash === after.get(0)?.hash ? true : undefined
    }, { timeoutMs: 20_000, what: 'the synced key on the clone\'s second HSM' })

    // A user created on the primary now reaches the clone only through syncUser.
    const created = await cmu(primary.cmuConfig, ['loginHSM CO admin Admin1234', 'createUser CU bob Bob12345', 'y', 'listUsers', 'quit'])
    const bobId = Number(/^\s+(\d+)\s+CU\s+bob\b/m.exec(created)?.[1])
    expect(bobId).toBeGreaterThan(3)
    expect(userNames(await cmu(crossFile, ['listUsers', 'quit'])).get(1)).not.toContain('bob')
    expect(await loginWorks(dr, dr.hsms[0] as LabStatusHsm, 'CU', 'bob', 'Bob12345')).toBe(false)
    const userSynced = await cmu(crossFile, ['loginHSM CO admin Admin1234', 'server 0', `syncUser ${bobId} 1`, 'exit', 'listUsers', 'quit'])
    expect(userSynced).toContain('syncUser success')
    expect(userNames(userSynced).get(1)).toContain('bob')
    expect(await loginWorks(dr, dr.hsms[0] as LabStatusHsm, 'CU', 'bob', 'Bob12345')).toBe(true)

    // `hsmlab backup` makes a backup now and prints its id; the control plane has it READY.
    const backupRun = await lab.hsmlab(['backup', 'us-west-2/dr'])
    expect(backupRun.code, backupRun.stderr).toBe(0)
    const backupId = backupRun.stdout.trim()
    expect(backupId).toMatch(/^backup-[2-7a-z]{11,16}$/)
    expect(await west.getBackup(backupId)).toMatchObject({ BackupState: 'READY', ClusterId: dr.id })

    // The AWS CLI, against any control plane, with any credentials: the region picks the control plane.
    if (hasAwsCli()) {
      const aws = spawnProcess('aws', ['cloudhsmv2', 'describe-clusters', '--endpoint-url', status.regions[0]?.controlPlane?.endpoint as string, '--region', 'us-west-2', '--output', 'json'], {
        name: 'aws', env: { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' }
      })
      expect(await aws.exited, aws.stderr()).toBe(0)
      const described = JSON.parse(aws.stdout()) as { Clusters: Array<{ ClusterId: string, State: string }> }
      expect(described.Clusters.map(c => [c.ClusterId, c.State])).toEqual([[dr.id, 'ACTIVE']])
    }

    // SIGKILL the clone's control plane: its HSMs run on; status says the control plane is down.
    const westPid = status.regions[1]?.controlPlane?.pid as number
    process.kill(westPid, 'SIGKILL')
    const down = await waitFor(async () => {
      const s = await lab.statusJson()
      return s.regions[1]?.controlPlane?.pid === null ? s : undefined
    }, { timeoutMs: 10_000, what: 'the killed control plane to be reported down' })
    expect(down.state).toBe('PARTIAL')
    expect(clusterOf(down, 'us-west-2', 'dr').hsms.map(h => h.state)).toEqual(['ACTIVE', 'ACTIVE'])

    // `up` starts it again, on the same endpoint, with its cluster; it adopts the HSMs still running.
    const upRun = await lab.hsmlab(['up'])
    expect(upRun.code, upRun.stderr).toBe(0)
    expect(upRun.stdout).toContain('started 1 control plane')
    const back = await lab.statusJson()
    expect(back.state).toBe('RUNNING')
    expect(back.regions[1]?.controlPlane?.endpoint).toBe(status.regions[1]?.controlPlane?.endpoint)
    expect(back.regions[1]?.controlPlane?.pid).not.toBe(westPid)
    expect(back.regions[0]?.controlPlane?.pid).toBe(status.regions[0]?.controlPlane?.pid)
    const drBack = clusterOf(back, 'us-west-2', 'dr')
    expect(drBack.id).toBe(dr.id)
    expect(drBack.state).toBe('ACTIVE')
    expect(drBack.hsms.map(h => [h.id, h.pid, h.endpoint, h.state])).toEqual(dr.hsms.map(h => [h.id, h.pid, h.endpoint, 'ACTIVE']))
    expect(await loginWorks(drBack, drBack.hsms[0] as LabStatusHsm, 'CU', 'bob', 'Bob12345')).toBe(true)

    // A second `up` on a running lab starts nothing.
    const again = await lab.hsmlab(['up'])
    expect(again.stdout).toContain('nothing to start: 3 control planes and 5 HSMs running')
  })

  it('clones a cluster in its own region: created straight from a backup, no copy', async () => {
    const lab = await startLab({
      lean: true,
      topology: {
        regions: [{
          name: 'eu-west-1',
          clusters: [
            { name: 'main', hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'carol', password: 'Carol1234' }] },
            { name: 'twin', hsms: 1, cloneOf: { region: 'eu-west-1', cluster: 'main' } }
          ]
        }]
      }
    })
    const main = clusterOf(lab.status, 'eu-west-1', 'main')
    const twin = clusterOf(lab.status, 'eu-west-1', 'twin')
    expect([main.state, twin.state]).toEqual(['ACTIVE', 'ACTIVE'])
    expect(twin.lineage).toBe(main.lineage)
    const api = new ControlPlaneClient({ endpoint: lab.status.regions[0]?.controlPlane?.endpoint as string, region: 'eu-west-1' })
    const source = await api.getBackup((await api.getCluster(twin.id))?.SourceBackupId as string)
    expect(source?.ClusterId).toBe(main.id)
    expect(await loginWorks(twin, twin.hsms[0] as LabStatusHsm, 'CU', 'carol', 'Carol1234')).toBe(true)
    expect(Object.keys(lab.status.cmuConfigs)).toEqual(['eu-west-1/main->eu-west-1/twin'])
    const users = userNames(await cmu(lab.status.cmuConfigs['eu-west-1/main->eu-west-1/twin'] as string, ['listUsers', 'quit']))
    expect(users.get(0)).toEqual(users.get(1))
  })
})
