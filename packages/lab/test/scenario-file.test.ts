/**
 * Scenario files and the scenario command line, in process, for everything that needs no HSM: a
 * file is checked whole (every problem with its place), names are checked against the topology,
 * every shipped scenario is valid, one seed draws one schedule, and the exit codes of a bad
 * command line (2), a bad file (1) and a lab that cannot start (3) come with the replay line when
 * a seed was chosen.
 */
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { SCENARIO_EXIT, main, parseScenario, readScenario, resolveScenario } from '../src/index.js'
import { Nemesis } from '../src/scenario/nemesis.js'
import { Random } from '../src/scenario/random.js'

const SCENARIOS_DIR = new URL('../../../scripts/scenarios/', import.meta.url).pathname

async function run (argv: string[], cwd: string): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, { stdout: t => { stdout += t }, stderr: t => { stderr += t }, cwd })
  return { code, stdout, stderr }
}

const minimal = {
  name: 'minimal',
  durationMs: 1000,
  workload: [{ ops: [{ op: 'createKey', cluster: 'us-east-1/primary' }] }]
}

describe('scenario files', () => {
  it('fill in the defaults', () => {
    const scenario = parseScenario(minimal)
    expect(scenario).toEqual({
      name: 'minimal',
      durationMs: 1000,
      settleTimeoutMs: 30_000,
      requestTimeoutMs: 5_000,
      workload: [{ name: 'stream-0', clients: 1, startMs: 0, stopMs: 1000, pauseMs: [0, 50], ops: [{ op: 'createKey', weight: 1, cluster: 'us-east-1/primary', sizesBytes: [16, 24, 32] }] }],
      schedule: []
    })
  })

  it('list every problem of a file with its place', () => {
    const bad = {
      name: 'bad',
      durationMs: 5000,
      colour: 'blue',
      workload: [{ clients: 0, ops: [{ op: 'dance' }, { op: 'syncKey', from: 'us-east-1/primary', to: 'us-east-1/primary' }] }],
      schedule: [
        { atMs: 100, fault: { type: 'partition' } },
        { atMs: 200, heal: 'all', kill: 'us-east-1/primary/hsm-0' },
        { atMs: 9000, fault: { type: 'latency', group: 'wan', between: ['a', 'b'], ms: 10 } },
        { atMs: 300, kill: 'primary' },
        { atMs: 400, fault: { type: 'flap', group: 'x', untilMs: 1000, upMs: [5, 1], downMs: [0, 0] } }
      ]
    }
    let message = ''
    try { parseScenario(bad, 'bad.json') } catch (err) { message = (err as Error).message; expect((err as { code?: string }).code).toBe('LAB_ERR_SCENARIO') }
    expect(message.split('\n')).toEqual([
      'bad.json is not a valid scenario:',
      '  scenario: unknown field "colour" (allowed: name, description, topology, seed, durationMs, settleTimeoutMs, requestTimeoutMs, workload, schedule)',
      '  workload[0].clients: must be a whole number from 1 to 16, not 0',
      '  workload[0].ops[0].op: must be one of createKey, createUser, syncKey, syncUser, createBackup, copyBackup, shareKey, deleteKey, not "dance"',
      '  workload[0].ops[1].to: must differ from "from"',
      '  schedule[0].fault.group: is missing (a fault group: a region, "<region>/<cluster>", "<region>/<cluster>/hsm-N", or another group of the lab\'s links)',
      '  schedule[1]: needs exactly one of "fault", "heal" and "kill" (it has heal, kill)',
      '  schedule[2].fault: needs exactly one of "group" (every link of a group) and "between" (the links between two groups)',
      '  schedule[2].atMs: must not be after durationMs (5000): every fault is healed when the workload ends',
      '  schedule[3].kill: must be an HSM as "<region>/<cluster>/hsm-N" (N: its server id in the cluster) or a control plane as "<region>/control-plane", not "primary"',
      '  schedule[4].fault.upMs: must be [min, max]: two whole numbers of milliseconds, min ≤ max, not an array',
      '  schedule[4].fault.downMs: must allow some time down (max above 0)'
    ])
  })

  it('check the names a scenario uses against its topology', async () => {
    const scenario = parseScenario({
      name: 'names',
      durationMs: 1000,
      workload: [{
        ops: [
          { op: 'createKey', cluster: 'us-east-1/secondary' },
          { op: 'createKey', cluster: 'us-east-1/primary', as: 'bob', minServers: 3 },
          { op: 'copyBackup', cluster: 'us-east-1/primary', to: 'us-east-1' },
          { op: 'syncKey', from: 'us-east-1/primary', to: 'ap-south-1/other' }
        ]
      }],
      schedule: [{ atMs: 0, kill: 'us-west-2/dr/hsm-2' }, { atMs: 0, kill: 'ap-south-1/control-plane' }]
    })
    await expect(resolveScenario(scenario, '/x/names.json', async () => '')).rejects.toThrow([
      '/x/names.json does not fit its topology:',
      '  workload[0].ops[0].cluster: names cluster us-east-1/secondary, which the topology does not have (it has us-east-1/primary, us-west-2/dr, eu-west-1/replica)',
      '  workload[0].ops[1].as: bob is not a crypto user (CU) of us-east-1/primary in the topology',
      '  workload[0].ops[1].minServers: us-east-1/primary has only 2 HSMs',
      '  workload[0].ops[2].to: a backup is copied to another region, not its own',
      '  workload[0].ops[3].to: names cluster ap-south-1/other, which the topology does not have (it has us-east-1/primary, us-west-2/dr, eu-west-1/replica)',
      '  schedule[0].kill: us-west-2/dr has 2 HSMs, hsm-0 to hsm-1',
      '  schedule[1].kill: names region ap-south-1, which the topology does not have'
    ].join('\n'))
  })

  it('refuse syncs between clusters of different lineages, and take inline topologies', async () => {
    const scenario = parseScenario({
      name: 'lineages',
      durationMs: 1000,
      topology: {
        regions: [{ name: 'us-east-1', clusters: [
          { name: 'a', hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'carol', password: 'Carol1234' }] },
          { name: 'b', hsms: 1, activate: { admin: 'Admin5678' } }
        ] }]
      },
      workload: [{ ops: [{ op: 'syncKey', from: 'us-east-1/a', to: 'us-east-1/b' }] }]
    })
    let written = ''
    await expect(resolveScenario(scenario, '/x/l.json', async () => { written = '/tmp/t.json'; return written })).rejects.toThrow(
      'workload[0].ops[0]: us-east-1/a and us-east-1/b are not of one lineage'
    )
    expect(written).toBe('/tmp/t.json')
  })

  it('every shipped scenario is valid and fits its topology', async () => {
    const files = readdirSync(SCENARIOS_DIR).filter(f => f.endsWith('.json'))
    expect(files.length).toBeGreaterThanOrEqual(4)
    for (const file of files) {
      const scenario = await readScenario(join(SCENARIOS_DIR, file))
      const resolved = await resolveScenario(scenario, join(SCENARIOS_DIR, file), async () => { throw new Error('no inline topology expected') })
      expect(resolved.clusters.size, file).toBeGreaterThan(0)
      // Quick enough for CI: the workload, plus a settle that is usually well under a second.
      expect(scenario.durationMs, file).toBeLessThanOrEqual(15_000)
    }
  })

  it('draw one schedule per seed', async () => {
    const scenario = await readScenario(join(SCENARIOS_DIR, 'cluster-flapping-links.json'))
    const plan = (seed: number): Array<{ atMs: number, what: string }> => new Nemesis({
      faults: undefined,
      status: async () => { throw new Error('not used') },
      restart: async () => {},
      log: () => {},
      now: () => 0,
      signal: new AbortController().signal
    }, scenario.schedule, new Random(seed)).planned()
    const first = plan(12)
    expect(plan(12)).toEqual(first)
    expect(plan(13)).not.toEqual(first)
    expect(first[0]).toEqual({ atMs: 1000, what: 'partition us-east-1/primary/hsm-1' })
    expect(first.filter(a => a.what === 'partition us-east-1/primary/hsm-1').length).toBeGreaterThan(3)
    expect(first.at(-1)?.what).toMatch(/^heal /)
    expect(first.every((a, i) => i === 0 || (first[i - 1]?.atMs ?? 0) <= a.atMs)).toBe(true)
  })
})

describe('hsmlab scenario', () => {
  it('exits 2 for a bad command line, with the help', async () => {
    const cwd = tmpDir()
    for (const argv of [['scenario'], ['scenario', 'walk', 'x.json'], ['scenario', 'run'], ['scenario', 'run', 'x.json', '--seed', 'abc'], ['scenario', 'run', 'x.json', '--speed', '3']]) {
      const r = await run(argv, cwd)
      expect(r.code, argv.join(' ')).toBe(SCENARIO_EXIT.USAGE)
      expect(r.stderr, argv.join(' ')).toContain('hsmlab scenario: ')
    }
    const help = await run(['scenario', '--help'], cwd)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('usage: hsmlab scenario run FILE [--seed N] [--dir DIR]')
  })

  it('exits 1 for a file that is not a valid scenario; with a seed chosen, ends with the replay line', async () => {
    const cwd = tmpDir()
    const missing = await run(['scenario', 'run', 'nope.json'], cwd)
    expect(missing.code).toBe(SCENARIO_EXIT.INVALID)
    expect(missing.stdout).toContain('INVALID SCENARIO: cannot read the scenario file nope.json: no such file')
    expect(missing.stdout).not.toContain('replay:')
    writeFileSync(join(cwd, 'names.json'), JSON.stringify({ ...minimal, workload: [{ ops: [{ op: 'createUser', cluster: 'us-east-1/nowhere' }] }] }))
    const names = await run(['scenario', 'run', 'names.json', '--seed', '77'], cwd)
    expect(names.code).toBe(SCENARIO_EXIT.INVALID)
    expect(names.stdout).toContain('names cluster us-east-1/nowhere')
    expect(names.stdout.trimEnd().split('\n').at(-1)).toBe('replay: hsmlab scenario run names.json --seed 77')
  })

  it('exits 3 (crash) when the lab cannot be started, with the replay line', async () => {
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'ok.json'), JSON.stringify(minimal))
    writeFileSync(join(cwd, 'not-a-dir'), 'a file where the lab directory should be')
    const r = await run(['scenario', 'run', 'ok.json', '--seed', '8', '--dir', 'not-a-dir'], cwd)
    expect(r.code).toBe(SCENARIO_EXIT.CRASH)
    expect(r.stdout).toMatch(/^seed 8$/m)
    expect(r.stdout).toContain('FAIL crash: the lab did not come up: ')
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('replay: hsmlab scenario run ok.json --seed 8')
  })

  it('documents distinct exit codes', () => {
    expect(new Set(Object.values(SCENARIO_EXIT)).size).toBe(Object.keys(SCENARIO_EXIT).length)
    expect(SCENARIO_EXIT).toEqual({ PASS: 0, INVALID: 1, USAGE: 2, CRASH: 3, LIVENESS: 4, CORRECTNESS: 5 })
  })
})
