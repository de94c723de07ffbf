/**
 * Goal (issues 12 and 16, `hsmlab up` speed): a lab that no application reaches through PKCS#11
 * (most tests, a CI job) can leave the client daemons out with `hsmlab up --no-clients`, as
 * `--no-console` leaves the console out: no daemon process, `status` says NONE for every cluster
 * (and so does its text); the choice is recorded, `--clients` brings them back, and a later
 * `--no-clients` stops those that run.
 *
 * Method: a lab of one cluster of one HSM without the console; the daemons' processes are found by
 * their pids in `status --json` and their command line (`hsmlab-client`, the lab's dir).
 */
import { readFileSync, readdirSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { isProcessAlive } from '@hsmlab/process'
import { startLab, waitFor } from '@hsmlab/testing'
import type { LabStatusJson } from '@hsmlab/testing'

interface ClientJson { state: string, pid: number | null, socket: string }

function clientsOf (status: LabStatusJson): ClientJson[] {
  return (status as unknown as { regions: Array<{ clusters: Array<{ client: ClientJson }> }> }).regions.flatMap(r => r.clusters.map(c => c.client))
}

/** Pids of hsmlab-client processes whose command line names `dir`. */
function daemonsOf (dir: string): number[] {
  return readdirSync('/proc').filter(p => /^\d+$/.test(p)).map(Number).filter(pid => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      return cmd.includes('hsmlab-client') && cmd.includes(dir)
    } catch {
      return false
    }
  })
}

describe('issue 16: hsmlab up --no-clients', () => {
  it('starts no client daemon, says NONE, and --clients brings them back', async () => {
    const lab = await startLab({
      topology: { regions: [{ name: 'us-east-1', clusters: [{ name: 'solo', hsms: 1, activate: { admin: 'Admin1234' }, users: [] }] }] },
      args: ['--no-console', '--no-clients']
    })
    expect(clientsOf(lab.status).map(c => [c.state, c.pid])).toEqual([['NONE', null]])
    expect(daemonsOf(lab.dir)).toEqual([])
    expect((await lab.hsmlab(['status'])).stdout).toContain('PKCS#11: no client daemon')

    // Recorded: a plain `up` leaves them out too.
    expect(clientsOf(await lab.up()).map(c => c.state)).toEqual(['NONE'])
    expect(daemonsOf(lab.dir)).toEqual([])

    // --clients brings them back, ready when `up` returns.
    const back = JSON.parse((await lab.hsmlab(['up', '--clients', '--json'])).stdout) as LabStatusJson
    const [client] = clientsOf(back)
    expect(client?.state).toBe('RUNNING')
    expect(daemonsOf(lab.dir)).toEqual([client?.pid])

    // --no-clients again stops the one that runs.
    expect(clientsOf(JSON.parse((await lab.hsmlab(['up', '--no-clients', '--json'])).stdout) as LabStatusJson).map(c => c.state)).toEqual(['NONE'])
    await waitFor(() => !isProcessAlive(client?.pid as number), { timeoutMs: 10_000 })
    expect(daemonsOf(lab.dir)).toEqual([])
  })
})
