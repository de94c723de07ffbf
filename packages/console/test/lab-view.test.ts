import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { LabView } from '../src/lab-view.js'
import type { Topic } from '../src/lab-view.js'

describe('LabView', () => {
  it('reads nothing while no page is open, and reads at once when one opens', async () => {
    const dir = tmpDir('hsmlab-console-view-')
    const statuses: string[] = []
    let watched = false
    const view = new LabView({
      labDir: dir,
      watched: () => watched,
      fastPollIntervalMs: 10,
      hsmPollIntervalMs: 10,
      onChange: (topic: Topic, json: string) => { if (topic === 'status') statuses.push(json) }
    })
    onTestFinished(async () => { await view.stop() })
    await view.start()
    expect(statuses).toHaveLength(1)
    expect(statuses[0]).toContain('there is no lab')
    // The lab's state changes while nobody looks: a reading console would publish the new error.
    writeFileSync(join(dir, 'lab.json'), 'not json')
    const before = Date.now()
    await waitFor(() => Date.now() - before > 300, { timeoutMs: 1000, intervalMs: 50, what: 'a few poll intervals to pass' })
    expect(statuses).toHaveLength(1)
    // A page opens: a fresh read, and the change shows.
    watched = true
    view.wake()
    await waitFor(() => statuses.length === 2, { timeoutMs: 5000, intervalMs: 10, what: 'the status read again' })
    expect(statuses[1]).toContain('is not valid JSON')
  })
})
