/**
 * Goal: a topology `hsmlab up` cannot build is refused with a clear error before anything is
 * created or started; and a lab keeps the topology it was made from.
 *
 * Method: the real `hsmlab` bin in a temporary directory: a topology with mistakes, one whose
 * clone's source is never activated (so never backed up), one that is not JSON; then a running
 * one-HSM lab asked to become another topology.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runHsmlab, startLab, tmpDir } from '@hsmlab/testing'

describe('hsmlab up with a topology it cannot build', () => {
  it('lists every mistake of a bad topology and starts nothing', async () => {
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'bad.json'), JSON.stringify({
      regions: [{ name: 'us-east-1', clusters: [{ name: 'primary', hsms: 0, colour: 'red' }, { hsms: 2 }] }]
    }))
    const run = await runHsmlab(['up', '--topology', 'bad.json', '--dir', 'lab'], { cwd })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('[LAB_ERR_TOPOLOGY] bad.json is not a valid topology:')
    expect(run.stderr).toContain('regions[0].clusters[0]: unknown field "colour"')
    expect(run.stderr).toContain('regions[0].clusters[0].hsms: must be a whole number from 1 to 28')
    expect(run.stderr).toContain('regions[0].clusters[1].name: is missing')
    expect(run.stdout).toBe('')
    expect(existsSync(join(cwd, 'lab'))).toBe(false)
  })

  it('refuses a clone of a cluster that is never activated, and starts nothing', async () => {
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'clone.json'), JSON.stringify({
      regions: [
        { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 1 }] },
        { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
      ]
    }))
    const run = await runHsmlab(['up', '--topology', 'clone.json'], { cwd })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('[LAB_ERR_TOPOLOGY] clone.json is not a valid topology:')
    expect(run.stderr).toContain('regions[1].clusters[0].cloneOf: names us-east-1/primary, which the lab does not activate')
    expect(existsSync(join(cwd, '.hsmlab'))).toBe(false)
  })

  it('says when the file is not JSON', async () => {
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'broken.json'), '{ "regions": [ ')
    const run = await runHsmlab(['up', '--topology', 'broken.json'], { cwd })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('[LAB_ERR_TOPOLOGY] broken.json is not valid JSON')
  })

  it('refuses to turn a lab into another topology, and leaves it running', async () => {
    const one = { regions: [{ name: 'us-east-1', clusters: [{ name: 'solo', hsms: 1 }] }] }
    const lab = await startLab({ lean: true, topology: one })
    writeFileSync(join(lab.cwd, 'two.json'), JSON.stringify({ regions: [{ name: 'us-east-1', clusters: [{ name: 'solo', hsms: 2 }] }] }))
    const run = await lab.hsmlab(['up', '--topology', join(lab.cwd, 'two.json')])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('[LAB_ERR_TOPOLOGY_CHANGED]')
    const status = await lab.statusJson()
    expect(status.regions[0]?.clusters[0]?.hsms.map(h => h.state)).toEqual(['ACTIVE'])
    expect(status.regions[0]?.clusters[0]?.state).toBe('INITIALIZED')
  })
})
