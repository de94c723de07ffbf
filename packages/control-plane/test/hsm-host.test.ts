// HSM hosts (`hsmlab-hsm-host`, real processes) driven by an in-process control plane started
// with a hosts file (`hsmHostsFile`, RemoteHsmSupervisor): CreateHsm places an HSM on a free host
// of its availability zone, whose process is the host's child, not the control plane's; a full
// zone answers the capacity error and changes nothing; an HSM killed with SIGKILL is noticed
// through the host and restarted there; a host killed with SIGKILL and started again adopts its
// HSM, which runs on untouched and is still supervised; DeleteHsm frees the host. The Docker lab
// on hosts: test/e2e/docker-compose.test.ts.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { isProcessAlive } from '@hsmlab/process'
import { spawnNode, tmpDir, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'
import { ControlPlaneClient, CP_ERR_HSM_HOSTS_FILE, HSM_HOST_BIN_PATH, startControlPlane } from '../src/index.js'
import type { HsmHostReport } from '../src/index.js'
import { expectAwsError, manufacturerKeyFile, startTestControlPlane } from './helpers.js'

const SUBNET = 'subnet-0123456789abcdef0'
const WAIT = { timeoutMs: 20_000, intervalMs: 20 }

/** Kills every process whose command line names `dir` when the test ends (an HSM outlives a host killed with SIGKILL). */
function reapProcessesIn (dir: string): void {
  onTestFinished(() => {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
      try {
        if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir)) process.kill(Number(name), 'SIGKILL')
      } catch {
        // Gone meanwhile.
      }
    }
  })
}

/** The parent pid of a process (/proc/PID/stat, field 4). */
function parentOf (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

interface RunningHost { proc: SpawnedProcess, pid: number, port: number, url: string }

/** Starts `hsmlab-hsm-host` for `address` on `dataDir` and waits for its ready line. */
async function startHost (address: string, dataDir: string, keyFile: string, port = 0): Promise<RunningHost> {
  const proc = spawnNode(HSM_HOST_BIN_PATH, ['--address', address, '--data-dir', dataDir, '--hsm-manufacturer-key-file', keyFile, '--port', String(port)], { name: `hsm host ${address}` })
  const ready = await waitFor(() => {
    const line = proc.stdout().split('\n').find(l => l.includes('"ready"'))
    return line === undefined ? undefined : JSON.parse(line) as { pid: number, address: string, port: number }
  }, { timeoutMs: 10_000, what: `the ready line of the HSM host ${address}` })
  expect(ready).toMatchObject({ pid: proc.child.pid, address })
  return { proc, pid: ready.pid, port: ready.port, url: `http://127.0.0.1:${ready.port}` }
}

async function report (host: RunningHost): Promise<HsmHostReport> {
  return await (await fetch(`${host.url}/hsm`)).json() as HsmHostReport
}

describe('HSM hosts', () => {
  it('runs the HSMs of a control plane on their hosts: placement, capacity, supervision, a host restarted, deletion', async () => {
    const dir = tmpDir('hsmlab-hsm-host-')
    reapProcessesIn(dir)
    const keyFile = await manufacturerKeyFile(dir)
    const address = '127.1.1.20'
    let host = await startHost(address, join(dir, 'host-a'), keyFile)
    const hostsFile = join(dir, 'hsm-hosts.json')
    writeFileSync(hostsFile, JSON.stringify([{ address, availabilityZone: 'us-east-1a', url: host.url }]))
    // A host that stays unanswered this long counts as gone; far longer than the restart below takes.
    const cp = await startTestControlPlane('us-east-1', { hsmHostsFile: hostsFile, manufacturerKeyFile: keyFile, tuning: { hsmHostUnreachableMs: 30_000, hsmHostWaitMs: 2_000 } })
    const api = new ControlPlaneClient({ endpoint: cp.url, region: 'us-east-1' })
    const cluster = async (): Promise<string> => {
      const id = (await api.createCluster({ HsmType: 'hsm2m.medium', SubnetIds: [SUBNET] })).ClusterId ?? ''
      await api.waitForCluster(id, 'UNINITIALIZED', WAIT)
      return id
    }
    const [first, second] = await Promise.all([cluster(), cluster()])
    expect(await report(host)).toEqual({ address, state: 'none' })

    // Placed on the host: its address is the HSM's, its process the host's child.
    const created = await api.createHsm({ ClusterId: first, AvailabilityZone: 'us-east-1a' })
    expect(created.EniIp).toBe(address)
    const hsm = await api.waitForHsm(first, created.HsmId, 'ACTIVE', WAIT)
    expect(hsm.HsmlabEndpoint).toMatch(new RegExp(`^ws://${address.replaceAll('.', '\\.')}:\\d+$`))
    const pid = hsm.HsmlabPid ?? 0
    expect(parentOf(pid)).toBe(host.pid)
    expect(await report(host)).toEqual({ address, state: 'running', hsmId: created.HsmId, pid, port: Number(hsm.HsmlabEndpoint?.split(':')[2]) })

    // The zone's only host is taken: the capacity error, and no HSM recorded.
    await expectAwsError(api.createHsm({ ClusterId: second, AvailabilityZone: 'us-east-1a' }), 'CloudHsmResourceLimitExceededException', /Insufficient capacity in availability zone us-east-1a/)
    await expectAwsError(api.createHsm({ ClusterId: second, AvailabilityZone: 'us-east-1a', IpAddress: '127.1.1.21' }), 'CloudHsmInvalidRequestException', /not available in us-east-1a: its HSM hosts are at 127\.1\.1\.20/)
    expect((await api.getCluster(second))?.Hsms).toEqual([])

    // Killed: the control plane hears it from the host and restarts it there, at the same endpoint.
    const restarted = async (before: number): Promise<number> => await waitFor(async () => {
      const now = (await api.getCluster(first))?.Hsms?.[0]
      return now?.State === 'ACTIVE' && now.HsmlabPid !== undefined && now.HsmlabPid !== before && now.HsmlabEndpoint === hsm.HsmlabEndpoint ? now.HsmlabPid : undefined
    }, { timeoutMs: 20_000, what: `HSM ${created.HsmId} restarted (it was pid ${before})` })
    process.kill(pid, 'SIGKILL')
    const again = await restarted(pid)
    expect(parentOf(again)).toBe(host.pid)

    // The host dies (SIGKILL) and starts again on its directory: it adopts the HSM, which ran on.
    await host.proc.kill()
    expect(isProcessAlive(again)).toBe(true)
    host = await startHost(address, join(dir, 'host-a'), keyFile, host.port)
    expect(await report(host)).toMatchObject({ state: 'running', hsmId: created.HsmId, pid: again })
    // Still the same process for the control plane (the host was back well within hsmHostUnreachableMs)...
    expect((await api.getCluster(first))?.Hsms?.[0]).toMatchObject({ State: 'ACTIVE', HsmlabPid: again })
    // ... and still supervised: the adopted process killed is noticed through the new host.
    process.kill(again, 'SIGKILL')
    await restarted(again)

    // Deleted: the host forgets it and deletes its data; the other cluster's HSM takes the host.
    await api.deleteHsm({ ClusterId: first, HsmId: created.HsmId })
    await api.waitForHsm(first, created.HsmId, 'DELETED', WAIT)
    expect(await report(host)).toEqual({ address, state: 'none' })
    expect(readdirSync(join(dir, 'host-a', 'hsms'))).toEqual([])
    const next = await api.createHsm({ ClusterId: second, AvailabilityZone: 'us-east-1a' })
    expect(next.EniIp).toBe(address)
    await api.waitForHsm(second, next.HsmId, 'ACTIVE', WAIT)

    // A control plane that stops leaves its HSMs to their hosts; a host's SIGTERM stops its HSM
    // (as `docker compose down` stops the control plane's container, then the HSMs').
    const last = (await report(host)).pid ?? 0
    await cp.stop()
    expect(await report(host)).toMatchObject({ state: 'running', pid: last })
    host.proc.child.kill('SIGTERM')
    expect(await host.proc.exited).toBe(0)
    expect(isProcessAlive(last)).toBe(false)
  })

  it('refuses a hosts file that is not a list of hosts of its region, or given with hsmHost', async () => {
    const dir = tmpDir('hsmlab-hsm-hosts-')
    const keyFile = await manufacturerKeyFile(dir)
    const refused = async (hosts: unknown, message: RegExp, extra: object = {}): Promise<void> => {
      const file = join(dir, 'hsm-hosts.json')
      writeFileSync(file, JSON.stringify(hosts))
      await expect(startControlPlane({ region: 'us-east-1', dataDir: join(dir, 'cp'), manufacturerKeyFile: keyFile, hsmHostsFile: file, ...extra }))
        .rejects.toMatchObject({ message: expect.stringMatching(message) })
    }
    const host = { address: '127.1.1.20', availabilityZone: 'us-east-1a', url: 'http://127.0.0.1:1' }
    await refused({}, /must be a JSON list of hosts/)
    await refused([{ ...host, availabilityZone: 'us-west-2a' }], /availabilityZone "us-west-2a", not one of us-east-1a/)
    await refused([{ ...host, address: '0.0.0.0' }], /no IPv4 address/)
    await refused([host, host], /lists address 127\.1\.1\.20 twice/)
    await refused([host], /give neither hsmHost nor hsmAddressing/, { hsmHost: '127.0.0.1' })
    await expect(startControlPlane({ region: 'us-east-1', dataDir: join(dir, 'cp'), manufacturerKeyFile: keyFile, hsmHostsFile: join(dir, 'none.json') }))
      .rejects.toMatchObject({ code: CP_ERR_HSM_HOSTS_FILE })
  })
})
