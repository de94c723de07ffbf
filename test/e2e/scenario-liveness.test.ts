/**
 * Goal: a lab that never settles is a liveness failure, told apart from a broken invariant: the
 * run ends with exit code 4, says what was still not right when the settle deadline passed, and
 * ends with the replay line.
 *
 * Method: the real `hsmlab scenario run` bin with a test-only scenario (keys created, no fault,
 * a 3 s settle deadline). Once the lab is up, the test freezes one HSM with SIGSTOP behind the
 * runner's back: its process lives, so its control plane neither restarts it nor reports it gone,
 * but it answers nothing. When the runner has written its report (just before it stops the lab),
 * the test lets the HSM go on (SIGCONT), so the lab stops quickly.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it, onTestFinished } from 'vitest'
import { HSMLAB_BIN, runHsmlab, spawnNode, waitFor } from '@hsmlab/testing'
import type { LabStatusJson } from '@hsmlab/testing'
import { REPO_ROOT, lastLine, scenarioDir } from './scenario-helpers.js'

const FILE = 'test/fixtures/scenarios/never-settles.json'

it('exits 4 (liveness) when an HSM stops answering and the lab never settles', async () => {
  const { cwd, dir } = scenarioDir()
  const run = spawnNode(HSMLAB_BIN, ['scenario', 'run', FILE, '--seed', '9', '--dir', dir], { cwd: REPO_ROOT, name: 'hsmlab scenario run' })
  const history = join(dir, 'scenario', 'history.jsonl')
  await waitFor(() => existsSync(history) && readFileSync(history, 'utf8').includes('"outcome":"ok"'), { timeoutMs: 60_000, what: 'the first acknowledged operation' })

  const status = await runHsmlab(['status', '--json', '--dir', dir], { cwd })
  const hsm = (JSON.parse(status.stdout) as LabStatusJson).regions.find(r => r.name === 'us-east-1')?.clusters.find(c => c.name === 'primary')?.hsms[1]
  if (hsm?.pid === null || hsm?.pid === undefined) throw new Error(`no pid for us-east-1/primary/hsm-1:\n${status.stdout}`)
  const pid = hsm.pid
  process.kill(pid, 'SIGSTOP')
  const resume = (): void => { try { process.kill(pid, 'SIGCONT') } catch { /* gone */ } }
  onTestFinished(resume)

  await waitFor(() => existsSync(join(dir, 'scenario', 'report.json')), { timeoutMs: 60_000, what: 'the runner\'s report' })
  resume()
  const code = await run.exited
  const stdout = run.stdout()
  const why = `exit ${code}\n${stdout}\n${run.stderr()}`
  expect(code, why).toBe(4)
  expect(stdout, why).toMatch(/^FAIL liveness: the lab did not settle within 3\.0 s after every fault was healed: .+/m)
  expect(stdout, why).not.toContain('FAIL correctness')
  expect(lastLine(stdout)).toBe(`replay: hsmlab scenario run ${FILE} --seed 9`)
  const report = JSON.parse(readFileSync(join(dir, 'scenario', 'report.json'), 'utf8')) as { verdict: string, exitCode: number }
  expect(report).toMatchObject({ verdict: 'liveness', exitCode: 4 })
})
