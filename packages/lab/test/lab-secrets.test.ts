/**
 * Issue 9 §4: lab.json holds no password. `LabStateWriter` writes the topology's passwords to
 * `secrets/passwords.json` (0600, in a 0700 directory) and lab.json (0600) without them;
 * `readLabState` puts them back; a lab.json of an earlier version, which held them, still reads
 * and loses them at its next save; without the passwords file they read as unknown. With real
 * processes: test/e2e/issue-9-lab-secrets.test.ts.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { LAB_STATE_FORMAT, LabLayout, parseTopology, readLabState } from '../src/index.js'
import { LabStateWriter, UNKNOWN_PASSWORD, acquireLabLock } from '../src/lab-state.js'
import type { LabState } from '../src/lab-state.js'

const topology = parseTopology({
  regions: [{ name: 'us-east-1', clusters: [{ name: 'primary', hsms: 1, activate: { admin: 'Admin-Secret1' }, users: [{ type: 'CU', name: 'alice', password: 'Alice-Secret2' }] }, { name: 'spare', hsms: 1 }] }]
})

function stateOf (): LabState {
  return { format: LAB_STATE_FORMAT, createdAt: '2024-01-01T00:00:00.000Z', topology, controlPlanes: [], clusters: [] }
}

const modeOf = (path: string): string => (statSync(path).mode & 0o777).toString(8)

describe('the lab state and its passwords', () => {
  it('writes lab.json without passwords and the passwords file 0600 in 0700; reads them back', async () => {
    const layout = new LabLayout(join(tmpDir(), 'lab'))
    const release = await acquireLabLock(layout)
    await release()
    expect(modeOf(layout.dir)).toBe('700')
    await new LabStateWriter(layout).save(stateOf())
    const text = readFileSync(layout.stateFile, 'utf8')
    expect(text).not.toContain('Secret')
    expect(JSON.parse(text).topology.regions[0].clusters[0]).toEqual({ name: 'primary', hsms: 1, activate: {}, users: [{ type: 'CU', name: 'alice' }] })
    expect(modeOf(layout.stateFile)).toBe('600')
    expect(modeOf(layout.secretsDir)).toBe('700')
    expect(modeOf(layout.passwordsFile)).toBe('600')
    expect((await readLabState(layout))?.topology).toEqual(topology)
  })

  it('reads a lab.json that holds passwords, and leaves them out at the next save', async () => {
    const layout = new LabLayout(tmpDir())
    writeFileSync(layout.stateFile, JSON.stringify(stateOf()), { mode: 0o644 })
    const state = await readLabState(layout)
    expect(state?.topology).toEqual(topology)
    await new LabStateWriter(layout).save(state as LabState)
    expect(readFileSync(layout.stateFile, 'utf8')).not.toContain('Secret')
    expect(modeOf(layout.stateFile)).toBe('600')
    expect((await readLabState(layout))?.topology).toEqual(topology)
  })

  it('reads passwords it no longer has as unknown', async () => {
    const layout = new LabLayout(tmpDir())
    await new LabStateWriter(layout).save(stateOf())
    rmSync(layout.passwordsFile)
    const cluster = (await readLabState(layout))?.topology.regions[0]?.clusters[0]
    expect(cluster?.activate).toEqual({ admin: UNKNOWN_PASSWORD })
    expect(cluster?.users).toEqual([{ type: 'CU', name: 'alice', password: UNKNOWN_PASSWORD }])
  })
})
