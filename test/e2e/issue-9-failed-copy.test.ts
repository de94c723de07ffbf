/**
 * Goal (issue 9, §4): a CopyBackupToRegion that answered failure leaves nothing behind. Before the
 * fix, with the destination control plane killed after it had recorded the copy and before its
 * answer arrived, the source answered 500 CloudHsmInternalFailureException and the destination,
 * once back, still made the copy READY.
 *
 * Method: two control planes as processes (us-east-1 the source, us-west-2 the destination). The
 * source reaches the destination through a small HTTP relay in the test, which forwards every
 * request; when the destination answers the request that records a copy, the relay kills the
 * destination (SIGKILL) and cuts the source's connection, so the record is durable there but the
 * source never hears of it. The source answers 500; the destination's state file holds the copy
 * (CREATE_IN_PROGRESS). The destination is started again on its data directory: the copy must be
 * gone (never READY), and the source's record of the failed request is cleared once the
 * destination confirmed. A new request then makes exactly one READY copy.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { tmpDir, waitFor } from '@hsmlab/testing'
import { activeCluster, manufacturerKey, startCp } from './control-plane-helpers.js'
import type { CpProcess } from './control-plane-helpers.js'

/** A relay in front of the destination; `onRecorded` runs when the destination answered a copy's record. */
async function startRelay (): Promise<{ url: string, target: { url: string }, onRecorded: { run?: () => void } }> {
  const target = { url: '' }
  const onRecorded: { run?: () => void } = {}
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { chunks.push(c) })
    req.on('end', () => {
      const out = httpRequest(new URL(req.url ?? '/', target.url), { method: req.method, headers: req.headers }, upstream => {
        const hook = onRecorded.run
        if (req.method === 'POST' && req.url === '/_hsmlab/copies' && upstream.statusCode === 200 && hook !== undefined) {
          onRecorded.run = undefined
          upstream.resume()
          // The record is durable at the destination: it dies, and the source never gets the answer.
          hook()
          req.socket.destroy()
          return
        }
        res.writeHead(upstream.statusCode ?? 502, upstream.headers)
        upstream.pipe(res)
      })
      out.on('error', () => { req.socket.destroy() })
      out.end(Buffer.concat(chunks))
    })
  })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  onTestFinished(async () => {
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, target, onRecorded }
}

interface StateFile { backups: Record<string, { state: string, sourceBackup?: string, copy?: { requestId: string } }>, abandonedCopies?: Record<string, unknown> }
const stateOf = (cp: CpProcess): StateFile => JSON.parse(readFileSync(join(cp.dataDir, 'state.json'), 'utf8')) as StateFile

describe('a CopyBackupToRegion that answered failure', () => {
  it('leaves no copy in the destination, also when the destination recorded it before it died', async () => {
    const dir = tmpDir('hsmlab-issue9-copy-')
    const keyFile = await manufacturerKey(dir)
    const relay = await startRelay()
    const eastRegions = join(dir, 'east-regions.json')
    const westRegions = join(dir, 'west-regions.json')
    writeFileSync(eastRegions, JSON.stringify({ 'us-west-2': relay.url }))
    const east = await startCp({ region: 'us-east-1', dataDir: join(dir, 'east'), keyFile, regionsFile: eastRegions })
    writeFileSync(westRegions, JSON.stringify({ 'us-east-1': east.url }))
    let west = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile: westRegions })
    relay.target.url = west.url
    const eastApi = new ControlPlaneClient({ endpoint: east.url, region: 'us-east-1' })

    const { clusterId } = await activeCluster(east.url, 'us-east-1', dir)
    const backup = await eastApi.waitForBackup((await eastApi.createBackup(clusterId)).BackupId, 'READY', { timeoutMs: 30_000 })

    // The destination records the copy and dies before the source hears its answer: 500.
    const killed = west
    relay.onRecorded.run = () => { killed.proc.child.kill('SIGKILL') }
    const failure = await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2' }).then(() => undefined, (err: unknown) => err as { awsType?: string, message: string })
    expect(failure?.awsType, failure?.message).toBe('CloudHsmInternalFailureException')
    await waitFor(() => killed.proc.child.exitCode !== null || killed.proc.child.signalCode !== null, { what: 'the destination killed' })
    const recorded = Object.values(stateOf(killed).backups).filter(b => b.sourceBackup === backup.BackupId)
    expect(recorded.map(b => b.state)).toEqual(['CREATE_IN_PROGRESS'])

    // Back: the copy the failed request recorded is removed, never READY.
    west = await startCp({ region: 'us-west-2', dataDir: join(dir, 'west'), keyFile, regionsFile: westRegions })
    relay.target.url = west.url
    const westApi = new ControlPlaneClient({ endpoint: west.url, region: 'us-west-2' })
    const seen = new Set<string>()
    await waitFor(async () => {
      const copies = await westApi.copiesOf(backup.BackupId)
      for (const copy of copies) seen.add(copy.BackupState ?? '')
      return copies.length === 0
    }, { timeoutMs: 20_000, intervalMs: 50, what: 'the copy of the failed request removed from us-west-2' })
    expect([...seen].filter(s => s !== 'CREATE_IN_PROGRESS')).toEqual([])
    await waitFor(() => Object.keys(stateOf(east).abandonedCopies ?? {}).length === 0, { timeoutMs: 20_000, what: 'the source done with the failed request' })

    // A new request makes one copy, READY.
    await eastApi.copyBackupToRegion({ BackupId: backup.BackupId, DestinationRegion: 'us-west-2' })
    const [copy, ...more] = await westApi.copiesOf(backup.BackupId)
    expect(more).toEqual([])
    expect((await westApi.waitForBackup(copy?.BackupId ?? '', ['READY', 'DELETED'], { timeoutMs: 20_000 })).BackupState).toBe('READY')
  })
})
