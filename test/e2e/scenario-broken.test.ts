/**
 * Goal: the scenario runner catches a lab that loses an acknowledged key. A broken run ends with
 * exit code 5 (correctness), names the invariant that broke (acknowledged-not-lost) with the key,
 * its handle and the operation that was acknowledged, keeps the history for a person to read,
 * and still ends with the replay line of its seed.
 *
 * Method: the real `hsmlab scenario run` bin with a test-only scenario (one client creating keys,
 * no fault). While it runs, the test watches the history file for an acknowledged key, and
 * deletes that key behind the runner's back through a connection of its own (logged in as its
 * owner, through the lab's CMU configuration): the deletion replicates to every HSM of the
 * cluster, so the key the runner was told exists is gone everywhere.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { HsmConnection, readCmuConfig } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { HSMLAB_BIN, spawnNode, waitFor } from '@hsmlab/testing'
import { REPO_ROOT, lastLine, scenarioDir } from './scenario-helpers.js'

const FILE = 'test/fixtures/scenarios/acknowledged-then-deleted.json'

interface Event { event: string, op?: string, outcome?: string, handle?: number, label?: string, server?: number, id?: number }

function events (file: string): Event[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Event)
}

it('exits 5 and says which acknowledged key was lost when one is deleted behind the runner\'s back', async () => {
  const { dir } = scenarioDir()
  const run = spawnNode(HSMLAB_BIN, ['scenario', 'run', FILE, '--seed', '5', '--dir', dir], { cwd: REPO_ROOT, name: 'hsmlab scenario run' })
  const history = join(dir, 'scenario', 'history.jsonl')
  let acknowledged: Event | undefined
  await waitFor(() => {
    acknowledged = events(history).find(e => e.event === 'complete' && e.op === 'createKey' && e.outcome === 'ok')
    return acknowledged !== undefined
  }, { timeoutMs: 60_000, what: 'an acknowledged createKey in the history' })
  const { handle, label, server } = acknowledged as Required<Pick<Event, 'handle' | 'label' | 'server'>>

  // Delete it on the HSM that created it, as its owner would (the runner's topology: the default lab's alice).
  const config = await readCmuConfig(join(dir, 'us-east-1-primary.cfg'))
  const target = config.servers[server]
  if (target === undefined) throw new Error(`no server ${server} in the configuration`)
  const connection = await HsmConnection.connect({ url: `ws://${target.hostname}:${target.port}`, trustAnchor: decodeTrustAnchor(readFileSync(target.caFile, 'utf8')) })
  try {
    await connection.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    await connection.call('deleteKey', { handle })
  } finally {
    await connection.close()
  }

  const code = await run.exited
  const stdout = run.stdout()
  const why = `exit ${code}\n${stdout}\n${run.stderr()}`
  expect(code, why).toBe(5)
  expect(stdout, why).toContain('FAIL correctness: an invariant broke')
  expect(stdout, why).toMatch(new RegExp(`acknowledged-not-lost: \\d+ violations?\\n\\s+- key ${label} \\(handle ${handle}, acknowledged by op #${acknowledged?.id ?? 0} \\(createKey by keys#0 at \\d+\\.\\d{3} s\\)\\) is not on us-east-1/primary/hsm-0`))
  expect(stdout, why).toContain(`history, observation and report kept in ${join(dir, 'scenario')}`)
  expect(lastLine(stdout)).toBe(`replay: hsmlab scenario run ${FILE} --seed 5`)
  const report = JSON.parse(readFileSync(join(dir, 'scenario', 'report.json'), 'utf8')) as { verdict: string, exitCode: number, seed: number, violations: Array<{ invariant: string }> }
  expect(report).toMatchObject({ verdict: 'correctness', exitCode: 5, seed: 5 })
  expect(new Set(report.violations.map(v => v.invariant))).toEqual(new Set(['acknowledged-not-lost']))
})
