/**
 * `hsmlab scenario run`: one scenario from start to verdict (docs/scenarios.md).
 *
 * 1. Read and check the scenario and its topology; pick the seed (`--seed`, else the file's, else
 *    a random one) and print it first.
 * 2. Start a lab of its own (`hsmlab up` in a temporary directory, or in `--dir`), lift any fault
 *    left in it, note the backups that exist.
 * 3. Run the workload (history of every operation) and the schedule (faults, heals, kills) at
 *    once, for `durationMs`.
 * 4. Lift every fault, restart what was killed, wait for the lab to settle (`settleTimeoutMs`).
 * 5. Read the lab (observation) and run the checkers over history and observation.
 * 6. Stop the lab (delete a temporary one if the run passed), print the verdict and
 *    `replay: hsmlab scenario run <file> --seed <n>`.
 *
 * The verdict's exit code tells crash (3), liveness (4) and correctness (5) apart (SCENARIO_EXIT).
 * The history, the observation and the report stay in `<lab dir>/scenario/` when the run did not
 * pass.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { randomSeed } from '@hsmlab/fault-proxy'
import { labDown, labStatus, labUp } from '../lab.js'
import type { LabStatus } from '../lab.js'
import type { Topology } from '../topology.js'
import { runCheckers } from './checkers/index.js'
import type { Violation } from './checkers/index.js'
import { SCENARIO_EXIT, scenarioDefaults } from './defaults.js'
import { FaultDriver } from './fault-driver.js'
import { History } from './history.js'
import type { OperationRecord } from './history.js'
import { describeError, readClusterServers } from './hsm-sessions.js'
import { Nemesis } from './nemesis.js'
import { describeAllBackups, observe } from './observation.js'
import type { Observation } from './observation.js'
import { Random } from './random.js'
import { readScenario, resolveScenario } from './scenario-file.js'
import type { LinkSelector, ResolvedScenario, Scenario } from './scenario-file.js'
import { settle } from './settle.js'
import { runWorkload } from './workload.js'

/** Options of `runScenario`. */
export interface RunScenarioOptions {
  /** The scenario file, as the person typed it (resolved against `cwd`; printed as is in the replay line). */
  file: string
  /** @default process.cwd() */
  cwd?: string
  /** Overrides the file's seed. */
  seed?: number
  /** Run the lab in this directory (made if missing) instead of a temporary one; it is stopped, not deleted, at the end. */
  dir?: string
  /** Where progress lines and the verdict go, one call per line (without newline). */
  print: (line: string) => void
  /** Aborting stops the run where it is, stops the lab and ends with SCENARIO_EXIT.CRASH ("interrupted"). */
  signal?: AbortSignal
}

/** The verdict of a run. */
export type Verdict = 'pass' | 'invalid' | 'crash' | 'liveness' | 'correctness'

/** What `runScenario` resolves with. */
export interface ScenarioResult {
  verdict: Verdict
  exitCode: number
  seed?: number
  /** The lab directory, when a lab was started. */
  dir?: string
  /** Where the history, observation and report are (kept unless the run passed in a temporary directory). */
  artifactsDir?: string
  /** Why it did not pass. */
  failure?: string
  violations: Violation[]
  history: OperationRecord[]
  observation?: Observation
  /** Phases' durations, in milliseconds. */
  timings: { labUpMs?: number, workloadMs?: number, settleMs?: number, checkMs?: number, labDownMs?: number, totalMs: number }
}

const EXIT_OF: Record<Verdict, number> = {
  pass: SCENARIO_EXIT.PASS,
  invalid: SCENARIO_EXIT.INVALID,
  crash: SCENARIO_EXIT.CRASH,
  liveness: SCENARIO_EXIT.LIVENESS,
  correctness: SCENARIO_EXIT.CORRECTNESS
}

/** A failure that ends the run with a verdict. */
class RunEnded extends Error {
  readonly verdict: Verdict
  constructor (verdict: Verdict, message: string, options?: ErrorOptions) {
    super(message, options)
    this.verdict = verdict
  }
}

function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

/** Runs one scenario; never throws (every failure is a verdict). */
export async function runScenario (options: RunScenarioOptions): Promise<ScenarioResult> {
  const startedAt = performance.now()
  const cwd = options.cwd ?? process.cwd()
  const scenarioPath = resolve(cwd, options.file)
  const abort = new AbortController()
  options.signal?.addEventListener('abort', () => { abort.abort() }, { once: true })
  const signal = abort.signal
  const elapsed = (): number => performance.now() - startedAt
  const timings: ScenarioResult['timings'] = { totalMs: 0 }
  let runStartedAt = 0
  let history: History | undefined
  const stamp = (): string => runStartedAt === 0 ? '' : `[${((performance.now() - runStartedAt) / 1000).toFixed(3).padStart(7)} s] `
  const print = (line: string): void => { options.print(`${stamp()}${line}`) }
  const log = (line: string): void => {
    print(line)
    history?.note(line)
  }

  const result: ScenarioResult = { verdict: 'crash', exitCode: SCENARIO_EXIT.CRASH, violations: [], history: [], timings }
  let labDir: string | undefined
  let tempRoot: string | undefined
  let labStarted = false
  let pendingRestarts: (() => Promise<void>) | undefined
  let seed: number | undefined = options.seed
  try {
    // 1. The scenario, its topology, the seed.
    let resolved: ResolvedScenario
    try {
      const scenario = await readScenario(scenarioPath, options.file)
      seed = options.seed ?? scenario.seed ?? randomSeed()
      result.seed = seed
      print(`scenario ${scenario.name} (${options.file})`)
      print(`seed ${seed}`)
      if (options.dir === undefined) tempRoot = await mkdtemp(join(tmpdir(), 'hsmlab-scenario-'))
      labDir = options.dir === undefined ? join(tempRoot ?? '', 'lab') : resolve(cwd, options.dir)
      const inlineDir = tempRoot ?? join(labDir, 'scenario')
      resolved = await resolveScenario(scenario, scenarioPath, async (topology: Topology) => {
        await mkdir(inlineDir, { recursive: true })
        const file = join(inlineDir, 'topology.json')
        // It holds the topology's passwords: its owner's only (issue 9), also in a --dir lab.
        await writeFile(file, JSON.stringify(topology, null, 2) + '\n', { mode: 0o600 })
        await chmod(file, 0o600)
        return file
      })
    } catch (err) {
      throw new RunEnded('invalid', (err as Error).message, { cause: err })
    }
    const { scenario } = resolved
    result.dir = labDir
    const random = new Random(seed)

    // 2. The lab.
    const upAt = performance.now()
    let status: LabStatus
    try {
      print(`lab: starting in ${labDir}`)
      // The fault proxy draws (jitter, toxicity) from the run's seed too, when this run starts it.
      status = (await labUp({ dir: labDir, topologyFile: resolved.topologyFile, seed })).status
      labStarted = true
    } catch (err) {
      labStarted = true
      throw new RunEnded('crash', `the lab did not come up: ${describeError(err)}`, { cause: err })
    }
    timings.labUpMs = performance.now() - upAt
    print(`lab: up in ${seconds(timings.labUpMs)} (${status.regions.map(r => `${r.name}: ${r.clusters.map(c => `${c.name} ${c.hsms.length} HSMs`).join(', ')}`).join('; ')})`)
    const artifactsDir = join(labDir, 'scenario')
    await mkdir(artifactsDir, { recursive: true })
    result.artifactsDir = artifactsDir

    const needsFaults = scenario.schedule.some(e => e.action !== 'kill')
    const faults = status.faults.endpoint === null ? undefined : new FaultDriver(status.faults.endpoint, labDir)
    if (faults === undefined && needsFaults) throw new RunEnded('crash', `the lab in ${labDir} has no fault proxy (hsmlab status reports no faults.endpoint), and the schedule sets faults`)
    if (faults !== undefined) {
      await faults.healAll()
      print(`faults: proxy ${faults.endpoint}, its seed ${await faults.seed()}`)
      const unknown = await faults.unknownSelectors(selectorsOf(scenario))
      if (unknown.length > 0) {
        throw new RunEnded('invalid', `${options.file} names links the lab does not have: ${unknown.join('; ')} (the lab's groups: ${(await faults.groups()).join(', ')})`)
      }
    }

    const regions = status.regions.map(r => r.name)
    const endpoints = new Map(status.regions.map(r => [r.name, r.controlPlane?.endpoint ?? '']))
    const api = (region: string, timeoutMs: number = scenario.requestTimeoutMs): ControlPlaneClient =>
      new ControlPlaneClient({ endpoint: endpoints.get(region) ?? '', region, timeoutMs })
    const clusterStatus = status.regions.flatMap(r => r.clusters.map(c => ({ ref: `${r.name}/${c.name}`, cluster: c })))
    const configs = new Map(clusterStatus.map(({ ref, cluster }) => [ref, cluster.cmuConfig]))
    const clusterIds = new Map(clusterStatus.map(({ ref, cluster }) => [ref, cluster.id ?? '']))
    const preexistingBackups = new Set<string>()
    const initialBackups = new Map<string, string[]>()
    for (const region of regions) {
      for (const b of await describeAllBackups(api(region))) {
        preexistingBackups.add(String(b.BackupId))
        const ref = clusterStatus.find(c => c.cluster.id === b.ClusterId)?.ref
        if (ref !== undefined && b.BackupState === 'READY') initialBackups.set(ref, [...(initialBackups.get(ref) ?? []), String(b.BackupId)])
      }
    }

    // 3. Workload and schedule, at once.
    const runTag = `r${Date.now().toString(36).slice(-5)}`
    runStartedAt = performance.now()
    history = new History({ file: join(artifactsDir, 'history.jsonl'), startedAt: runStartedAt })
    const now = (): number => performance.now() - runStartedAt
    const restart = async (timeoutMs: number): Promise<void> => {
      await labUp({ dir: labDir, stepTimeoutMs: timeoutMs })
    }
    const nemesis = new Nemesis({
      faults,
      status: async () => status,
      restart: async () => { await restart(scenario.settleTimeoutMs) },
      log,
      now,
      signal
    }, scenario.schedule, random.fork())
    const workloadRandom = random.fork()
    const servers = await readClusterServers(configs)
    log(`workload: ${scenario.workload.map(s => `${s.name} (${s.clients} client${s.clients === 1 ? '' : 's'}: ${[...new Set(s.ops.map(o => o.op))].join(', ')})`).join('; ')} for ${seconds(scenario.durationMs)}`)
    pendingRestarts = async () => { await nemesis.restarted() }
    nemesis.start()
    await runWorkload({
      streams: scenario.workload,
      clusters: resolved.clusters,
      servers,
      clusterIds,
      api: region => api(region),
      initialBackups,
      history,
      runTag,
      requestTimeoutMs: scenario.requestTimeoutMs,
      now,
      signal
    }, workloadRandom)
    // The schedule runs its course even when the workload ended early.
    await new Promise<void>(resolveWait => {
      if (signal.aborted) { resolveWait(); return }
      const timer = setTimeout(done, Math.max(0, scenario.durationMs - now()))
      function done (): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolveWait() }
      signal.addEventListener('abort', done, { once: true })
    })
    await nemesis.stop()
    history.closeOpen('the run ended before the operation did')
    timings.workloadMs = now()
    const counts = history.counts()
    log(`workload: done, ${history.records.length} operations: ${counts.ok} ok, ${counts.failed} failed, ${counts.unknown} unknown`)
    if (signal.aborted) throw new RunEnded('crash', 'interrupted')
    if (nemesis.failures.length > 0) {
      throw new RunEnded('crash', `the schedule could not be carried out:\n${nemesis.failures.map(f => `  at ${seconds(f.atMs)}: ${f.what}: ${f.cause}`).join('\n')}`)
    }

    // 4. Heal, restart, settle.
    const interrupted = (): void => { if (signal.aborted) throw new RunEnded('crash', 'interrupted') }
    if (faults !== undefined) {
      try {
        await faults.healAll()
      } catch (err) {
        throw new RunEnded('crash', `the fault proxy did not heal: ${describeError(err)}`, { cause: err })
      }
      log('heal: every fault lifted')
    }
    await nemesis.restarted()
    log(`settle: restarting what is down, then waiting up to ${seconds(scenario.settleTimeoutMs)} for every HSM ACTIVE, clusters in agreement, copies done`)
    const settleCtx = {
      clusters: resolved.clusters,
      servers: await readClusterServers(configs),
      api: (region: string) => api(region, scenarioDefaults.observeRequestTimeoutMs),
      regions,
      preexistingBackups,
      restart,
      status: async () => await labStatus({ dir: labDir }),
      timeoutMs: scenario.settleTimeoutMs,
      pollIntervalMs: scenarioDefaults.settlePollIntervalMs,
      requestTimeoutMs: scenarioDefaults.observeRequestTimeoutMs,
      connectTimeoutMs: scenarioDefaults.connectTimeoutMs
    }
    const settled = await settle(settleCtx)
    timings.settleMs = settled.tookMs
    interrupted()
    if (!settled.settled) throw new RunEnded('liveness', `the lab did not settle within ${seconds(scenario.settleTimeoutMs)} after every fault was healed: ${settled.reason}`)
    log(`settle: settled in ${seconds(settled.tookMs)}`)

    // 5. Observe and check.
    const checkAt = performance.now()
    const observation = await observe({
      clusters: resolved.clusters,
      servers: await readClusterServers(configs),
      api: region => api(region, scenarioDefaults.observeRequestTimeoutMs),
      regions,
      preexistingBackups,
      history: history.records,
      requestTimeoutMs: scenarioDefaults.observeRequestTimeoutMs,
      connectTimeoutMs: scenarioDefaults.connectTimeoutMs
    })
    result.observation = observation
    await writeFile(join(artifactsDir, 'observation.json'), JSON.stringify(observation, null, 2) + '\n')
    const unreachable = observation.hsms.filter(h => h.unreachable !== undefined)
    if (unreachable.length > 0) {
      throw new RunEnded('liveness', `the lab settled, then stopped answering: ${unreachable.map(h => `${h.name}: ${h.unreachable ?? ''}`).join('; ')}`)
    }
    const violations = runCheckers({ history: history.records, observation })
    timings.checkMs = performance.now() - checkAt
    result.violations = violations
    const keys = observation.hsms.reduce((n, h) => n + h.keys.length, 0)
    log(`check: 6 invariants over ${history.records.length} operations, ${observation.hsms.length} HSMs, ${keys} key copies, ${observation.backups.filter(b => !b.preexisting).length} new backups`)
    if (violations.length > 0) throw new RunEnded('correctness', formatViolations(violations))
    result.verdict = 'pass'
  } catch (err) {
    if (err instanceof RunEnded) {
      result.verdict = err.verdict
      result.failure = err.message
    } else {
      result.verdict = 'crash'
      result.failure = `the runner failed: ${(err as Error).stack ?? String(err)}`
    }
  }
  result.history = history?.records ?? []
  result.exitCode = EXIT_OF[result.verdict]

  // 6. Stop the lab; keep what explains a failure.
  if (labDir !== undefined && labStarted) {
    const downAt = performance.now()
    const purge = result.verdict === 'pass' && tempRoot !== undefined
    try {
      // A restart the schedule queued holds the lab's lock until it ends.
      await pendingRestarts?.()
      if (result.artifactsDir !== undefined) {
        await writeFile(join(result.artifactsDir, 'report.json'), JSON.stringify({ verdict: result.verdict, exitCode: result.exitCode, seed, failure: result.failure, violations: result.violations, timings }, null, 2) + '\n').catch(() => {})
      }
      await labDown({ dir: labDir, purge })
      if (purge && tempRoot !== undefined) await rm(tempRoot, { recursive: true, force: true })
    } catch (err) {
      options.print(`lab: could not be stopped: ${describeError(err)}`)
      if (result.verdict === 'pass') { result.verdict = 'crash'; result.exitCode = SCENARIO_EXIT.CRASH; result.failure = `the lab could not be stopped: ${describeError(err)}` }
    }
    timings.labDownMs = performance.now() - downAt
  } else if (tempRoot !== undefined) {
    await rm(tempRoot, { recursive: true, force: true }).catch(() => {})
  }
  timings.totalMs = elapsed()

  runStartedAt = 0
  if (result.verdict === 'pass') {
    options.print(`PASS (${seconds(timings.totalMs)})`)
  } else {
    const heading: Record<Verdict, string> = {
      pass: '',
      invalid: 'INVALID SCENARIO',
      crash: 'FAIL crash',
      liveness: 'FAIL liveness',
      correctness: 'FAIL correctness'
    }
    options.print(`${heading[result.verdict]}: ${result.failure ?? ''}`)
    if (result.artifactsDir !== undefined) options.print(`history, observation and report kept in ${result.artifactsDir}`)
  }
  if (seed !== undefined) options.print(`replay: hsmlab scenario run ${options.file} --seed ${seed}`)
  return result
}

/** Every group or pair of groups the schedule sets faults on or heals. */
function selectorsOf (scenario: Scenario): LinkSelector[] {
  const out: LinkSelector[] = []
  for (const entry of scenario.schedule) {
    if (entry.action === 'heal' && entry.group !== 'all') out.push({ group: entry.group })
    if (entry.action !== 'fault') continue
    const fault = entry.fault
    out.push('between' in fault ? { between: fault.between } : { group: fault.group })
  }
  return out
}

/** The violations, grouped by invariant, a few details each. */
export function formatViolations (violations: readonly Violation[]): string {
  const byInvariant = new Map<string, string[]>()
  for (const v of violations) byInvariant.set(v.invariant, [...(byInvariant.get(v.invariant) ?? []), v.detail])
  const lines: string[] = [`${byInvariant.size === 1 ? 'an invariant' : `${byInvariant.size} invariants`} broke`]
  for (const [invariant, details] of byInvariant) {
    lines.push(`  ${invariant}: ${details.length} violation${details.length === 1 ? '' : 's'}`)
    for (const d of details.slice(0, scenarioDefaults.detailsPerInvariantMax)) lines.push(`    - ${d}`)
    if (details.length > scenarioDefaults.detailsPerInvariantMax) lines.push(`    ... and ${details.length - scenarioDefaults.detailsPerInvariantMax} more`)
  }
  return lines.join('\n')
}
