/**
 * Issue 9 §1: every table of the lab looked up by a name from outside (a topology's and a scenario
 * file's keys and types, `hsmlab fault`'s subcommands, `hsmlab up --control-plane REGION=URL`'s
 * regions, `hsmlab`'s own commands) answers only its own entries. A name every JavaScript object
 * inherits (`constructor`, `__proto__`, `toString`, ...) gets the documented error for an unknown
 * name, with its place, never a crash (a TypeError, exit 1) and never an inherited member.
 */
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { LAB_ERR_SCENARIO, LAB_ERR_TOPOLOGY, main, parseScenario, parseTopology } from '../src/index.js'

const INHERITED = Object.getOwnPropertyNames(Object.prototype)

async function run (argv: string[], cwd: string): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, { stdout: t => { stdout += t }, stderr: t => { stderr += t }, cwd })
  return { code, stdout, stderr }
}

function thrown (work: () => unknown): { code?: unknown, message: string } {
  try {
    work()
  } catch (err) {
    return err as { code?: unknown, message: string }
  }
  throw new Error('it did not throw')
}

const cluster = { name: 'primary', hsms: 1, activate: { admin: 'Admin1234' } }

describe('inherited names in the lab', () => {
  it('a scenario: as an operation or a fault type, the documented unknown-name problem', () => {
    for (const name of INHERITED) {
      const err = thrown(() => parseScenario({
        name: 'n',
        durationMs: 1000,
        workload: [{ ops: [{ op: name, cluster: 'us-east-1/primary' }] }],
        schedule: [{ atMs: 0, fault: { type: name, group: 'us-east-1' } }]
      }))
      expect(err.code).toBe(LAB_ERR_SCENARIO)
      expect(err.message).toContain(`workload[0].ops[0].op: must be one of createKey, createUser, syncKey, syncUser, createBackup, copyBackup, shareKey, deleteKey, not "${name}"`)
      expect(err.message).toContain(`schedule[0].fault.type: must be one of partition, blackhole, latency, reset-peer, flap, not "${name}"`)
    }
  })

  it('a scenario: as a field, an unknown field', () => {
    const json = JSON.parse('{"name":"n","durationMs":1000,"workload":[{"ops":[{"op":"createKey","cluster":"us-east-1/primary","__proto__":{"as":"x"},"constructor":1}]}]}') as unknown
    const err = thrown(() => parseScenario(json))
    expect(err.code).toBe(LAB_ERR_SCENARIO)
    expect(err.message).toContain('workload[0].ops[0]: unknown field "__proto__"')
    expect(err.message).toContain('workload[0].ops[0]: unknown field "constructor"')
  })

  it('a topology: as a field, a fault type or a fault group, the documented problem', () => {
    for (const name of INHERITED) {
      const json = JSON.parse(JSON.stringify({
        regions: [{ name: 'us-east-1', clusters: [cluster] }],
        faults: [{ type: name, group: 'us-east-1' }, { type: 'partition', group: name }]
      }).replace('"hsms"', `"${name}":1,"hsms"`)) as unknown
      const err = thrown(() => parseTopology(json, 'topology.json'))
      expect(err.code).toBe(LAB_ERR_TOPOLOGY)
      expect(err.message).toContain(`regions[0].clusters[0]: unknown field "${name}"`)
      expect(err.message).toContain(`faults[0].type: must be one of partition, blackhole, latency, reset_peer, not "${name}"`)
      expect(err.message).toContain(`faults[1].group: the lab has no group "${name}"`)
    }
  })

  it('a topology: inherited names are ordinary cluster and user names', () => {
    const topology = parseTopology({
      regions: [{ name: 'us-east-1', clusters: [{ ...cluster, name: 'constructor', users: [{ type: 'CU', name: 'toString', password: 'Passw0rd1' }, { type: 'CU', name: '__proto__', password: 'Passw0rd2' }] }] }]
    })
    expect(topology.regions[0]?.clusters[0]?.name).toBe('constructor')
    expect(topology.regions[0]?.clusters[0]?.users.map(u => u.name)).toEqual(['toString', '__proto__'])
  })

  it('hsmlab and hsmlab fault: an unknown command, exit 2', async () => {
    const cwd = tmpDir()
    for (const name of INHERITED) {
      const top = await run([name], cwd)
      expect({ name, code: top.code }).toEqual({ name, code: 2 })
      expect(top.stderr).toContain(`hsmlab: unknown command '${name}'`)
      const fault = await run(['fault', name, 'us-east-1'], cwd)
      expect({ name, code: fault.code }).toEqual({ name, code: 2 })
      expect(fault.stderr).toContain(`unknown fault command '${name}'`)
    }
  })

  it('hsmlab up --control-plane: a region the topology does not have, before anything starts', async () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      const cwd = tmpDir()
      const r = await run(['up', '--control-plane', `${name}=http://127.0.0.1:9`], cwd)
      expect({ name, code: r.code }).toEqual({ name, code: 2 })
      expect(r.stderr).toContain(`--control-plane names region ${name}, which the lab's topology does not have`)
    }
  })
})
