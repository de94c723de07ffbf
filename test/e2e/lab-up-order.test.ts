/**
 * Goal: `hsmlab up` builds a region's clusters as soon as that region's control plane answers,
 * without waiting for the other regions' (a lab's start-up time); a clone made across regions
 * still waits until every control plane answers and knows where the others are, then comes up
 * as usual, with its source's lineage.
 *
 * Method: `labUp` in process, so that its progress is seen on the diagnostics channel
 * (`UP_CHANNEL`); the default topology, with us-west-2's control plane one that runs elsewhere
 * (`controlPlanes`), started by the test and held stopped (SIGSTOP) until us-east-1/primary is
 * created: an `up` that waited for every control plane would never get there (it would fail after
 * its 15 s deadline). Then the test gives it a regions file naming us-east-1 and lets it go on
 * (SIGCONT). It shares the lab's manufacturer key and peer secret, as such a control plane must.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ControlPlaneClient, ensurePeerSecretFile } from '@hsmlab/control-plane'
import { UP_CHANNEL, labDown, labUp } from '@hsmlab/lab'
import type { UpProgress } from '@hsmlab/lab'
import { tmpDir } from '@hsmlab/testing'
import { killHsmsOf, manufacturerKey, startCp } from './control-plane-helpers.js'

describe('hsmlab up: each region as soon as its control plane answers', () => {
  it('builds us-east-1/primary while the control plane of us-west-2 does not answer yet, then the clone', async () => {
    const dir = tmpDir('hsmlab-up-order-')
    const labDir = join(dir, 'lab')
    mkdirSync(labDir)
    // The lab's own manufacturer key file (up uses the one it finds), shared with the control plane the test starts.
    const keyFile = await manufacturerKey(labDir)
    // ...and its peer secret: a control plane the lab did not start must share it (docs/lab.md),
    // or the clone's backup copy between the regions is refused.
    const peerSecretFile = join(labDir, 'peer.secret')
    await ensurePeerSecretFile(peerSecretFile)
    const westRegionsFile = join(dir, 'west-regions.json')
    const west = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile: westRegionsFile, args: ['--peer-secret-file', peerSecretFile] })
    process.kill(west.pid, 'SIGSTOP')
    const resume = (): void => { try { process.kill(west.pid, 'SIGCONT') } catch { /* gone */ } }
    onTestFinished(resume)
    onTestFinished(async () => {
      await labDown({ dir: labDir }).catch(() => undefined)
      killHsmsOf(join(labDir, 'us-east-1', 'control-plane', 'data'))
      killHsmsOf(join(labDir, 'eu-west-1', 'control-plane', 'data'))
    })

    const steps: string[] = []
    const onProgress = (message: unknown): void => {
      const { step, what } = message as UpProgress
      steps.push(`${step} ${what ?? ''}`.trim())
      if (step === 'cluster-created' && what === 'us-east-1/primary') {
        const lab = JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8')) as { controlPlanes: Array<{ region: string, port: number }> }
        const east = lab.controlPlanes.find(cp => cp.region === 'us-east-1')
        writeFileSync(westRegionsFile, JSON.stringify({ 'us-east-1': `http://127.0.0.1:${east?.port ?? 0}`, 'us-west-2': west.url }))
        resume()
      }
    }
    subscribe(UP_CHANNEL, onProgress)
    onTestFinished(() => { unsubscribe(UP_CHANNEL, onProgress) })

    const up = await labUp({ dir: labDir, controlPlanes: { 'us-west-2': west.url } })
    expect(steps.indexOf('cluster-created us-east-1/primary')).toBeGreaterThan(-1)
    expect(steps.indexOf('cluster-created us-east-1/primary')).toBeLessThan(steps.indexOf('control-plane us-west-2'))
    expect(steps.indexOf('control-plane us-west-2')).toBeLessThan(steps.indexOf('backup-copied us-west-2/dr'))
    expect(up.created).toEqual(['us-east-1/primary', 'us-west-2/dr', 'eu-west-1/replica'])
    expect(up.status.state).toBe('RUNNING')
    const [primary, dr] = up.status.regions.map(r => r.clusters[0])
    expect(primary).toMatchObject({ state: 'ACTIVE', hsms: [{ state: 'ACTIVE' }, { state: 'ACTIVE' }] })
    expect(dr).toMatchObject({ state: 'ACTIVE', cloneOf: 'us-east-1/primary', lineage: primary?.lineage, hsms: [{ state: 'ACTIVE' }, { state: 'ACTIVE' }] })
    // The clone's only backup is the one its second HSM was restored from: its first daily one
    // comes a day after it was created, not the moment it became ACTIVE.
    const backups = await new ControlPlaneClient({ endpoint: west.url, region: 'us-west-2' }).describeBackups({ Filters: { clusterIds: [dr?.id ?? ''] } })
    expect(backups.Backups).toHaveLength(1)
  })
})
