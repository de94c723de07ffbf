/**
 * Topology validation: what a topology file may hold, and that a bad one is refused with every
 * problem named by its place in the file (docs/lab.md "Topology").
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { DEFAULT_TOPOLOGY_PATH, LAB_ERR_TOPOLOGY, parseTopology, readTopology } from '../src/index.js'

const cluster = (more: Record<string, unknown> = {}): Record<string, unknown> => ({ name: 'primary', hsms: 2, ...more })
const lab = (clusters: unknown[], more: Record<string, unknown> = {}): unknown => ({ regions: [{ name: 'us-east-1', clusters, ...more }] })

function problems (json: unknown): string {
  try {
    parseTopology(json, 'topo.json')
  } catch (err) {
    expect((err as { code?: string }).code).toBe(LAB_ERR_TOPOLOGY)
    return (err as Error).message
  }
  throw new Error('the topology was accepted')
}

describe('parseTopology', () => {
  it('accepts the DESIGN example without the clone and fills in empty user lists', () => {
    const topology = parseTopology(lab([cluster({ hsms: 3, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }), cluster({ name: 'other' })]))
    expect(topology.regions[0]?.clusters[0]).toEqual({ name: 'primary', hsms: 3, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] })
    expect(topology.regions[0]?.clusters[1]).toEqual({ name: 'other', hsms: 2, users: [] })
  })

  it('ships a default lab that is valid: us-east-1/primary (2 HSMs, activated, a CU), its clone us-west-2/dr (2 HSMs), its replica eu-west-1/replica (1 HSM)', async () => {
    const topology = await readTopology(DEFAULT_TOPOLOGY_PATH)
    expect(topology.regions.map(r => r.name)).toEqual(['us-east-1', 'us-west-2', 'eu-west-1'])
    expect(topology.regions[2]?.clusters).toEqual([{ name: 'replica', hsms: 1, users: [], cloneOf: { region: 'us-east-1', cluster: 'primary' } }])
    expect(topology.regions[0]?.clusters[0]?.sync).toEqual({
      replicas: [{ region: 'eu-west-1', cluster: 'replica', type: 'KEYS_AND_USERS' }],
      keys: { all: true, owners: [], handles: [] },
      users: ['alice']
    })
    const primary = topology.regions[0]?.clusters[0]
    expect(primary?.name).toBe('primary')
    expect(primary?.hsms).toBe(2)
    expect(primary?.activate).toEqual({ admin: 'Admin1234' })
    expect(primary?.users).toEqual([{ type: 'CU', name: 'alice', password: 'Alice1234' }])
    expect(topology.regions[1]?.clusters).toEqual([{ name: 'dr', hsms: 2, users: [], cloneOf: { region: 'us-east-1', cluster: 'primary' } }])
    expect(JSON.parse(readFileSync(DEFAULT_TOPOLOGY_PATH, 'utf8')).regions[0].name).toBe('us-east-1')
  })

  it('names an unknown field and where it is', () => {
    expect(problems(lab([cluster({ hsm: 3 })]))).toContain('regions[0].clusters[0]: unknown field "hsm"')
    expect(problems({ regions: [], extra: 1 })).toContain('topology: unknown field "extra"')
  })

  it('requires names, and refuses names that cannot be file names or user names', () => {
    expect(problems(lab([{ hsms: 1 }]))).toContain('regions[0].clusters[0].name: is missing')
    expect(problems({ regions: [{ clusters: [cluster()] }] })).toContain('regions[0].name: is missing')
    expect(problems(lab([cluster({ name: '../etc' })]))).toContain('regions[0].clusters[0].name: must be a cluster name')
    expect(problems({ regions: [{ name: 'east', clusters: [cluster()] }] })).toContain('regions[0].name: must be an AWS region name (like "us-east-1" or "eu-west-2")')
    expect(problems(lab([cluster({ activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'al-ice', password: 'Alice1234' }] })])))
      .toContain('regions[0].clusters[0].users[0].name: must be a user name of 1 to 31 letters, digits or _')
  })

  it('wants 1 to 28 HSMs per cluster, as a whole number', () => {
    for (const hsms of [0, -1, 29, 1.5, '3']) {
      expect(problems(lab([cluster({ hsms })]))).toContain('regions[0].clusters[0].hsms: must be a whole number from 1 to 28')
    }
    expect(problems(lab([{ name: 'primary' }]))).toContain('regions[0].clusters[0].hsms: is missing')
  })

  it('needs at least one region and one cluster', () => {
    expect(problems({ regions: [] })).toContain('regions: must list at least 1')
    expect(problems({})).toContain('regions: is missing')
    expect(problems(lab([]))).toContain('regions[0].clusters: must list at least 1')
    expect(problems([])).toContain('topology: must be an object, not an array')
  })

  it('checks passwords (7 to 32 characters) and user types', () => {
    expect(problems(lab([cluster({ activate: { admin: 'short' } })]))).toContain('activate.admin: must be a password of 7 to 32 characters, not 5 characters')
    expect(problems(lab([cluster({ activate: { admin: 'password' } })]))).toContain('must differ from the PRECO\'s default password')
    expect(problems(lab([cluster({ activate: { admin: 'Admin1234' }, users: [{ type: 'AU', name: 'bob', password: 'x'.repeat(33) }] })])))
      .toMatch(/users\[0\]\.type: must be "CO" or "CU"[\s\S]*users\[0\]\.password: must be a password of 7 to 32 characters, not 33 characters/)
  })

  it('refuses users without activation, reserved names and duplicates', () => {
    expect(problems(lab([cluster({ users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] })]))).toContain('regions[0].clusters[0].users: needs "activate"')
    expect(problems(lab([cluster({ activate: { admin: 'Admin1234' }, users: [{ type: 'CO', name: 'Admin', password: 'Alice1234' }] })]))).toContain('is a user every HSM already has')
    expect(problems(lab([cluster({ activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }, { type: 'CO', name: 'ALICE', password: 'Alice1234' }] })])))
      .toContain('"ALICE" is listed twice')
  })

  it('refuses duplicate regions and clusters', () => {
    expect(problems(lab([cluster(), cluster()]))).toContain('cluster "primary" is listed twice')
    expect(problems({ regions: [{ name: 'eu-west-1', clusters: [cluster()] }, { name: 'eu-west-1', clusters: [cluster()] }] })).toContain('region "eu-west-1" is listed twice')
  })

  it('lists every problem of a file at once', () => {
    const message = problems({ regions: [{ name: 'us-east-1', clusters: [{ name: 'x', hsms: 0, colour: 'red' }] }, { clusters: [] }] })
    expect(message).toContain('topo.json is not a valid topology')
    expect(message.split('\n').length).toBeGreaterThanOrEqual(5)
  })

  it('accepts cloneOf naming an activated cluster of the topology, or a clone of one, in any region', () => {
    const topology = parseTopology({
      regions: [
        { name: 'us-east-1', clusters: [cluster({ activate: { admin: 'Admin1234' } }), { name: 'copy', hsms: 1, cloneOf: { region: 'us-west-2', cluster: 'dr' } }] },
        { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 2, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
      ]
    })
    expect(topology.regions[1]?.clusters[0]?.cloneOf).toEqual({ region: 'us-east-1', cluster: 'primary' })
    expect(topology.regions[0]?.clusters[1]?.cloneOf).toEqual({ region: 'us-west-2', cluster: 'dr' })
  })

  it('checks what cloneOf names', () => {
    expect(problems(lab([cluster(), { name: 'dr', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'nope' } }]))).toContain('names us-east-1/nope, which this topology does not define')
    expect(problems(lab([cluster({ cloneOf: { region: 'us-east-1', cluster: 'primary' } })]))).toContain('names the cluster itself')
    expect(problems(lab([cluster(), { name: 'dr', hsms: 1, activate: { admin: 'Admin1234' }, cloneOf: { region: 'us-east-1', cluster: 'primary' } }])))
      .toContain('a clone takes its users from the backup of its source')
    // A cluster that is never activated is never backed up, so nothing can be cloned from it.
    expect(problems(lab([cluster(), { name: 'dr', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'primary' } }])))
      .toContain('names us-east-1/primary, which the lab does not activate')
    expect(problems(lab([{ name: 'a', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'b' } }, { name: 'b', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'a' } }])))
      .toContain('are clones of each other in a loop')
  })

  it('says when a file cannot be read or is not JSON', async () => {
    await expect(readTopology('/nonexistent/topology.json')).rejects.toMatchObject({ code: LAB_ERR_TOPOLOGY, message: expect.stringContaining('cannot read the topology file /nonexistent/topology.json') })
  })
})
