/**
 * Goal: `hsmlab up --control-plane REGION=URL` builds the default lab through control planes it
 * did not start (the Docker lab's setup, where each runs in its own container): it uses them as
 * they are, remembers them, reports them, never stops them; and when one is gone, `status` says
 * so and probes its HSMs over the network rather than by pid.
 *
 * Method: two `hsmlab-control-plane` processes started by the test, as Docker starts them (API on
 * every interface, `--hsm-host` for their HSMs), sharing a regions file and a manufacturer key;
 * the real `hsmlab` bin (up, up again, down, status); SIGKILL for the control plane that goes.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runHsmlab, tmpDir } from '@hsmlab/testing'
import type { LabStatusJson } from '@hsmlab/testing'
import { DEFAULT_TOPOLOGY_PATH } from '@hsmlab/lab'
import { manufacturerKey, startCp } from './control-plane-helpers.js'

async function healthOf (url: string): Promise<unknown> {
  return await (await fetch(`${url}/_hsmlab/health`)).json()
}

describe('hsmlab up --control-plane', () => {
  it('builds the lab through control planes it did not start, remembers them, and leaves them running', async () => {
    const dir = tmpDir('hsmlab-elsewhere-')
    const keyFile = await manufacturerKey(dir)
    const regionsFile = join(dir, 'regions.json')
    const docker = (hsmHost: string): string[] => ['--host', '0.0.0.0', '--hsm-host', hsmHost]
    const east = await startCp({ region: 'us-east-1', dataDir: join(dir, 'east'), keyFile, regionsFile, args: docker('127.0.0.1') })
    const west = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile, args: docker('127.0.0.2') })
    writeFileSync(regionsFile, JSON.stringify({ 'us-east-1': east.url, 'us-west-2': west.url }))
    const lab = join(dir, 'lab')
    // The default lab's two first regions (its third, eu-west-1, would need a third control plane here).
    const topology = join(dir, 'topology.json')
    const { regions } = JSON.parse(readFileSync(DEFAULT_TOPOLOGY_PATH, 'utf8')) as { regions: Array<{ name: string, clusters: Array<Record<string, unknown>> }> }
    const twoRegions = regions.filter(r => r.name !== 'eu-west-1').map(r => ({ ...r, clusters: r.clusters.map(({ sync: _sync, ...c }) => c) }))
    writeFileSync(topology, JSON.stringify({ regions: twoRegions }))

    const up = await runHsmlab(['up', '--dir', lab, '--json', '--topology', topology, '--control-plane', `us-east-1=${east.url}`, '--control-plane', `us-west-2=${west.url}/`])
    expect(up.code, up.stderr).toBe(0)
    const status = JSON.parse(up.stdout) as LabStatusJson
    expect(status.state).toBe('RUNNING')
    expect(status.regions.map(r => r.controlPlane)).toMatchObject([
      { endpoint: east.url, pid: east.pid, state: 'RUNNING' },
      { endpoint: west.url, pid: west.pid, state: 'RUNNING' }
    ])
    const hsms = status.regions.map(r => r.clusters.flatMap(c => c.hsms.map(h => h.endpoint)))
    expect(hsms[0]).toEqual([expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/), expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/)])
    expect(hsms[1]).toEqual([expect.stringMatching(/^ws:\/\/127\.0\.0\.2:\d+$/), expect.stringMatching(/^ws:\/\/127\.0\.0\.2:\d+$/)])

    // Remembered: `up` without the flags uses them again, and finds nothing to do.
    const again = await runHsmlab(['up', '--dir', lab])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toContain('nothing to start: 2 control planes and 4 HSMs running')

    // `down` stops nothing of theirs, and says so.
    const down = await runHsmlab(['down', '--dir', lab])
    expect(down.code, down.stderr).toBe(0)
    expect(down.stdout).toContain('stopped 0 control planes and 0 HSM processes')
    expect(down.stdout).toContain(`left running: the control plane of us-east-1 (${east.url}), the control plane of us-west-2 (${west.url})`)
    expect(await healthOf(east.url)).toEqual({ region: 'us-east-1', pid: east.pid })
    expect(await healthOf(west.url)).toEqual({ region: 'us-west-2', pid: west.pid })

    // One goes (its HSMs run on): its region is DOWN, its HSMs are probed by a handshake.
    await west.proc.kill()
    const after = await runHsmlab(['status', '--dir', lab, '--json'])
    expect(after.code, after.stderr).toBe(0)
    const seen = JSON.parse(after.stdout) as LabStatusJson
    expect(seen.state).toBe('PARTIAL')
    expect(seen.regions[0]?.controlPlane).toMatchObject({ endpoint: east.url, pid: east.pid, state: 'RUNNING' })
    expect(seen.regions[1]?.controlPlane).toMatchObject({ endpoint: west.url, pid: null, state: 'DOWN' })
    expect(seen.regions[1]?.clusters[0]).toMatchObject({ name: 'dr', state: 'UNKNOWN', stateMessage: 'the control plane of us-west-2 does not answer: run hsmlab up' })
    expect(seen.regions[1]?.clusters[0]?.hsms.map(h => h.state)).toEqual(['ACTIVE', 'ACTIVE'])
  })
})
