/**
 * Issue 9 (§4): no password of a topology in any file of the lab that others can read.
 *
 * Goal: after `hsmlab up` with a topology that has passwords, the lab directory is 0700, and the
 * only file under it that holds any of them is the lab's passwords file, 0600 in a 0700
 * directory (lab.json, the configurations and every log hold none); and what needs the
 * passwords after `up` still works from that file: a second `up`, the comparison with a given
 * topology, the credentials in `up`'s summary, and finishing an activation that `up` must do
 * again. Without the passwords file, such an `up` says what to do, and does it given the topology.
 *
 * Method: the real `hsmlab` bin (startLab) on a one-HSM cluster with an admin password and two
 * users; every regular file under the lab directory is read byte for byte and searched for each
 * password; lab.json's record of the activation is then cleared by hand (as an `up` interrupted
 * during the activation leaves it), and `up` runs again with and without the passwords file.
 */
import { lstatSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { startLab } from '@hsmlab/testing'

const PASSWORDS = ['Adm1n-Issue9-x', 'Al1ce-Issue9-y', 'Off1cer-Issue9-z']
const TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{
      name: 'primary',
      hsms: 1,
      activate: { admin: PASSWORDS[0] },
      users: [{ type: 'CU', name: 'alice', password: PASSWORDS[1] }, { type: 'CO', name: 'officer2', password: PASSWORDS[2] }]
    }]
  }]
}

/** Every regular file under `dir`, by path. */
function filesUnder (dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    const stat = lstatSync(path)
    if (stat.isDirectory()) out.push(...filesUnder(path))
    else if (stat.isFile()) out.push(path)
  }
  return out
}

function modeOf (path: string): string {
  return (statSync(path).mode & 0o777).toString(8)
}

/** Each file under the lab directory that holds a password: its path, its mode and its directory's. */
function filesWithPasswords (labDir: string): Array<{ file: string, mode: string, dirMode: string }> {
  const needles = PASSWORDS.map(p => Buffer.from(p, 'utf8'))
  return filesUnder(labDir)
    .filter(file => { const bytes = readFileSync(file); return needles.some(n => bytes.includes(n)) })
    .map(file => ({ file: relative(labDir, file), mode: modeOf(file), dirMode: modeOf(dirname(file)) }))
}

function clearActivation (labDir: string): void {
  const file = join(labDir, 'lab.json')
  const state = JSON.parse(readFileSync(file, 'utf8')) as { clusters: Array<{ activated: boolean }> }
  for (const cluster of state.clusters) cluster.activated = false
  writeFileSync(file, JSON.stringify(state, null, 2))
}

describe('issue 9: the lab keeps its passwords to itself', () => {
  it('holds them only in a 0600 file of a 0700 directory, and every feature that needs them works', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    expect(modeOf(lab.dir)).toBe('700')
    expect(filesWithPasswords(lab.dir)).toEqual([{ file: join('secrets', 'passwords.json'), mode: '600', dirMode: '700' }])

    // Another `up`: nothing to do; the summary still names the credentials.
    const again = await lab.hsmlab(['up'])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain(`users: CO admin / ${PASSWORDS[0] ?? ''}, CU alice / ${PASSWORDS[1] ?? ''}, CO officer2 / ${PASSWORDS[2] ?? ''}`)
    // The same topology is the lab's; one with another password is not.
    const topologyFile = join(lab.cwd, 'topology.json')
    expect((await lab.hsmlab(['up', '--topology', topologyFile])).code).toBe(0)
    const changed = JSON.parse(JSON.stringify(TOPOLOGY)) as typeof TOPOLOGY
    const first = changed.regions[0]?.clusters[0]
    if (first !== undefined) first.activate.admin = 'Another-Pass1'
    writeFileSync(join(lab.cwd, 'changed.json'), JSON.stringify(changed))
    const refused = await lab.hsmlab(['up', '--topology', join(lab.cwd, 'changed.json')])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('[LAB_ERR_TOPOLOGY_CHANGED]')

    // An activation to finish again reads the passwords from the lab's passwords file.
    clearActivation(lab.dir)
    const resumed = await lab.hsmlab(['up'])
    expect(resumed.stderr).toBe('')
    expect(resumed.code).toBe(0)
    expect(filesWithPasswords(lab.dir)).toEqual([{ file: join('secrets', 'passwords.json'), mode: '600', dirMode: '700' }])

    // Without it, `up` says where they went and how to give them again, and takes them from the topology.
    rmSync(join(lab.dir, 'secrets', 'passwords.json'))
    clearActivation(lab.dir)
    const missing = await lab.hsmlab(['up'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('[LAB_ERR_ACTIVATION]')
    expect(missing.stderr).toContain('--topology')
    const given = await lab.hsmlab(['up', '--topology', topologyFile])
    expect(given.stderr).toBe('')
    expect(given.code).toBe(0)
    expect(filesWithPasswords(lab.dir)).toEqual([{ file: join('secrets', 'passwords.json'), mode: '600', dirMode: '700' }])
    expect(lab.status.regions[0]?.clusters[0]?.state).toBe('ACTIVE')
  })
})
