/**
 * The fault layer without processes: the links a lab has, their names and groups (so that a
 * region's group holds exactly the links that cross its boundary), the links between two groups,
 * the faults a topology may declare, and `hsmlab fault`'s command line up to the point where it
 * needs a running lab. With real processes: test/e2e/faults-*.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { LAB_ERR_TOPOLOGY, main, parseTopology } from '../src/index.js'
import { groupIndex, linksBetween, planLinks } from '../src/fault-links.js'

/** The default lab's shape: us-east-1/primary and us-west-2/dr, 2 HSMs each. */
const input = {
  regions: [
    { name: 'us-east-1', controlPlane: '127.0.0.1:4001', clusters: [{ name: 'primary', hsms: [{ id: 'hsm-aaaaaaaaaaa', address: '127.1.1.4:5001' }, { id: 'hsm-bbbbbbbbbbb', address: '127.1.2.4:5002' }] }] },
    { name: 'us-west-2', controlPlane: '127.0.0.1:4002', clusters: [{ name: 'dr', hsms: [{ id: 'hsm-ccccccccccc', address: '127.4.1.4:5003' }, { id: 'hsm-ddddddddddd', address: '127.4.2.4:5004' }] }] }
  ]
}

async function run (argv: string[], cwd: string): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, { stdout: t => { stdout += t }, stderr: t => { stderr += t }, cwd })
  return { code, stdout, stderr }
}

describe('the links of a lab', () => {
  it('names every link so a person can tell which it is, with the upstream it leads to', () => {
    const links = planLinks(input)
    expect(links.map(l => [l.name, l.kind, l.listenHost, l.upstream])).toEqual([
      ['us-east-1/primary/hsm-0', 'client', '127.1.1.4', '127.1.1.4:5001'],
      ['us-east-1/primary/hsm-1', 'client', '127.1.2.4', '127.1.2.4:5002'],
      ['peer/us-east-1/primary/hsm-0->hsm-1', 'peer', '127.1.2.4', '127.1.2.4:5002'],
      ['peer/us-east-1/primary/hsm-1->hsm-0', 'peer', '127.1.1.4', '127.1.1.4:5001'],
      ['control/us-east-1/primary/hsm-0', 'control', '127.1.1.4', '127.1.1.4:5001'],
      ['control/us-east-1/primary/hsm-1', 'control', '127.1.2.4', '127.1.2.4:5002'],
      ['us-west-2/dr/hsm-0', 'client', '127.4.1.4', '127.4.1.4:5003'],
      ['us-west-2/dr/hsm-1', 'client', '127.4.2.4', '127.4.2.4:5004'],
      ['peer/us-west-2/dr/hsm-0->hsm-1', 'peer', '127.4.2.4', '127.4.2.4:5004'],
      ['peer/us-west-2/dr/hsm-1->hsm-0', 'peer', '127.4.1.4', '127.4.1.4:5003'],
      ['control/us-west-2/dr/hsm-0', 'control', '127.4.1.4', '127.4.1.4:5003'],
      ['control/us-west-2/dr/hsm-1', 'control', '127.4.2.4', '127.4.2.4:5004'],
      ['wan/us-east-1->us-west-2', 'wan', '127.0.0.1', '127.0.0.1:4002'],
      ['wan/us-west-2->us-east-1', 'wan', '127.0.0.1', '127.0.0.1:4001']
    ])
    const peer = links.find(l => l.name === 'peer/us-east-1/primary/hsm-0->hsm-1')
    expect(peer).toMatchObject({ hsmId: 'hsm-bbbbbbbbbbb', from: 'hsm-aaaaaaaaaaa' })
  })

  it('groups: a region, a cluster or an HSM holds the links across its boundary; the links inside keep working', () => {
    const groups = groupIndex(planLinks(input))
    expect(groups.get('us-west-2')).toEqual(['us-west-2/dr/hsm-0', 'us-west-2/dr/hsm-1', 'wan/us-east-1->us-west-2', 'wan/us-west-2->us-east-1'])
    expect(groups.get('us-east-1/primary')).toEqual(['us-east-1/primary/hsm-0', 'us-east-1/primary/hsm-1'])
    const hsm1 = ['us-east-1/primary/hsm-1', 'peer/us-east-1/primary/hsm-0->hsm-1', 'peer/us-east-1/primary/hsm-1->hsm-0']
    expect(groups.get('us-east-1/primary/hsm-1')).toEqual(hsm1)
    expect(groups.get('hsm-bbbbbbbbbbb')).toEqual(hsm1)
    expect(groups.get('wan')).toEqual(['wan/us-east-1->us-west-2', 'wan/us-west-2->us-east-1'])
    expect(groups.get('peer/us-west-2/dr')).toEqual(['peer/us-west-2/dr/hsm-0->hsm-1', 'peer/us-west-2/dr/hsm-1->hsm-0'])
    expect(groups.get('control/us-east-1')).toHaveLength(2)
  })

  it('finds the links between two regions, or two HSMs, and none between a region and its own cluster', () => {
    const links = planLinks(input)
    expect(linksBetween(links, 'us-east-1', 'us-west-2')).toEqual(['wan/us-east-1->us-west-2', 'wan/us-west-2->us-east-1'])
    expect(linksBetween(links, 'us-east-1/primary/hsm-0', 'hsm-bbbbbbbbbbb')).toEqual(['peer/us-east-1/primary/hsm-0->hsm-1', 'peer/us-east-1/primary/hsm-1->hsm-0'])
    expect(linksBetween(links, 'us-east-1', 'us-east-1/primary')).toEqual([])
    expect(linksBetween(links, 'us-east-1', 'nowhere')).toEqual([])
  })
})

describe('faults in a topology', () => {
  const regions = [
    { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 2, activate: { admin: 'Admin1234' } }] },
    { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 2, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
  ]

  it('accepts latency between regions, partitions and reset_peer of groups the lab will have', () => {
    const topology = parseTopology({
      regions,
      faults: [
        { type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitter: 30 },
        { type: 'partition', group: 'us-east-1/primary/hsm-1' },
        { type: 'reset-peer', group: 'wan', timeoutMs: 100 },
        { type: 'latency', group: 'peer/us-west-2/dr', ms: 5, toxicity: 0.5 }
      ]
    })
    expect(topology.faults).toEqual([
      { type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitter: 30 },
      { type: 'partition', group: 'us-east-1/primary/hsm-1' },
      { type: 'reset_peer', group: 'wan', timeoutMs: 100 },
      { type: 'latency', group: 'peer/us-west-2/dr', ms: 5, toxicity: 0.5 }
    ])
    expect(parseTopology({ regions, faults: [] }).faults).toBeUndefined()
  })

  it('refuses unknown types and groups, missing or bad numbers, and latency where no link runs, naming each place', () => {
    let message = ''
    try {
      parseTopology({
        regions,
        faults: [
          { type: 'flood', group: 'us-east-1' },
          { type: 'partition', group: 'eu-west-1' },
          { type: 'latency', between: ['us-east-1', 'us-west-2'] },
          { type: 'latency', between: ['us-east-1', 'us-east-1/primary'], ms: 10 },
          { type: 'latency', between: ['us-east-1', 'us-west-2'], ms: -1, jitter: 1.5 },
          { type: 'blackhole', group: 'us-west-2', ms: 3 },
          { type: 'reset_peer', group: 'wan', between: ['us-east-1', 'us-west-2'] }
        ]
      }, 'topo.json')
    } catch (err) {
      expect((err as { code?: string }).code).toBe(LAB_ERR_TOPOLOGY)
      message = (err as Error).message
    }
    expect(message).toContain('faults[0].type: must be one of partition, blackhole, latency, reset_peer, not "flood"')
    expect(message).toMatch(/faults\[1\]\.group: the lab has no group "eu-west-1" \(regions: us-east-1, us-west-2; clusters: us-east-1\/primary, us-west-2\/dr;/)
    expect(message).toContain('faults[2].ms: is missing (whole milliseconds, 0 to 3600000)')
    expect(message).toContain('faults[3].between: no link runs between "us-east-1" and "us-east-1/primary"')
    expect(message).toContain('faults[4].ms: must be a whole number of milliseconds from 0 to 3600000, not -1')
    expect(message).toContain('faults[4].jitter: must be a whole number of milliseconds from 0 to 3600000, not 1.5')
    expect(message).toContain('faults[5]: unknown field "ms" (allowed: type, group)')
    expect(message).toContain('faults[6]: needs exactly one of "group" (every link of a group) and "between" (the links between two groups)')
  })
})

describe('hsmlab fault, before a lab runs', () => {
  it('prints its help, and refuses bad command lines with exit code 2', async () => {
    const cwd = tmpDir()
    const help = await run(['fault', '--help'], cwd)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('usage: hsmlab fault <partition|blackhole|latency|reset-peer|heal|list>')
    for (const [argv, message] of [
      [['fault'], 'name a fault command'],
      [['fault', 'melt', 'us-east-1'], "unknown fault command 'melt'"],
      [['fault', 'partition'], "'hsmlab fault partition' takes one GROUP"],
      [['fault', 'latency', 'us-east-1', 'us-west-2'], '--ms N is required (milliseconds)'],
      [['fault', 'latency', 'us-east-1', 'us-west-2', '--ms', 'soon'], "--ms must be a whole number of milliseconds, not 'soon'"],
      [['fault', 'partition', 'us-east-1', '--ms', '5'], "--ms does not apply to 'hsmlab fault partition'"],
      [['fault', 'list', '--colour'], "Unknown option '--colour'"]
    ] as Array<[string[], string]>) {
      const r = await run(argv, cwd)
      expect(r.code, argv.join(' ')).toBe(2)
      expect(r.stderr).toContain(message)
    }
  })

  it('says there is no lab (exit 1, LAB_ERR_NO_LAB)', async () => {
    const r = await run(['fault', 'list', '--dir', 'nolab'], tmpDir())
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^hsmlab fault list: \[LAB_ERR_NO_LAB\] there is no lab in /)
  })

  it('up refuses a bad --seed and --faults with --no-faults before anything starts', async () => {
    const cwd = tmpDir()
    const seed = await run(['up', '--seed', 'x'], cwd)
    expect(seed.code).toBe(2)
    expect(seed.stderr).toContain("--seed must be a whole number")
    const both = await run(['up', '--faults', '--no-faults'], cwd)
    expect(both.code).toBe(2)
    expect(both.stderr).toContain('give --faults or --no-faults, not both')
  })
})
