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
import { labDown } from '../lab-admin.js'
import { labStatus } from '../lab-status.js'
import { labUp } from '../lab-up.js'
import type { LabStatus } from '../lab.js'
import type { Topology } from '../topology.js'
import { CHECKERS, runCheckers } from './checkers/index.js'
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
import { SyncWatch } from './sync-watch.js'
import type { SeenSyncFailure } from './sync-watch.js'
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

/** The lab as step 2 found it: what the later steps talk to. */
interface RunningLab {
  status: LabStatus
  artifactsDir: string
  faults: FaultDriver | undefined
  regions: string[]
  /** A control-plane client of a region, with a request deadline. */
  api: (region: string, timeoutMs?: number) => ControlPlaneClient
  /** `<region>/<cluster>` → its CMU configuration file. */
  configs: Map<string, string>
  clusterIds: Map<string, string>
  preexistingBackups: Set<string>
  /** `<region>/<cluster>` → its READY backups before the run. */
  initialBackups: Map<string, string[]>
}

/** One run of one scenario: the steps of the module comment, in order, over the state they share. */
class ScenarioRun {
  readonly result: ScenarioResult
  private readonly options: RunScenarioOptions
  private readonly cwd: string
  private readonly scenarioPath: string
  private readonly signal: AbortSignal
  private readonly startedAt = performance.now()
  private runStartedAt = 0
  private history: History | undefined
  private labDir: string | undefined
  private tempRoot: string | undefined
  private labStarted = false
  private pendingRestarts: (() => Promise<void>) | undefined
  /** The FAILED records of the lab's synchronisation tasks seen while the run went on. */
  private syncFailuresSeen: SeenSyncFailure[] = []
  /** The run's seed: `--seed`, else the file's, else a random one (known once the file is read). */
  seed: number | undefined

  constructor (options: RunScenarioOptions) {
    this.options = options
    this.cwd = options.cwd ?? process.cwd()
    this.scenarioPath = resolve(this.cwd, options.file)
    const abort = new AbortController()
    options.signal?.addEventListener('abort', () => { abort.abort() }, { once: true })
    this.signal = abort.signal
    this.result = { verdict: 'crash', exitCode: SCENARIO_EXIT.CRASH, violations: [], history: [], timings: { totalMs: 0 } }
    this.seed = options.seed
  }

  private get timings (): ScenarioResult['timings'] { return this.result.timings }

  /** A progress line, stamped with the time since the workload started. */
  private print (line: string): void {
    const stamp = this.runStartedAt === 0 ? '' : `[${((performance.now() - this.runStartedAt) / 1000).toFixed(3).padStart(7)} s] `
    this.options.print(`${stamp}${line}`)
  }

  /** A progress line that goes into the history too. */
  private readonly log = (line: string): void => {
    this.print(line)
    this.history?.note(line)
  }

  /** Since the workload started, in milliseconds. */
  private readonly now = (): number => performance.now() - this.runStartedAt

  private interrupted (): void {
    if (this.signal.aborted) throw new RunEnded('crash', 'interrupted')
  }

  /** 1. The scenario, its topology, the seed (printed first). */
  async load (): Promise<ResolvedScenario> {
    const { options } = this
    try {
      const scenario = await readScenario(this.scenarioPath, options.file)
      const seed = options.seed ?? scenario.seed ?? randomSeed()
      this.seed = seed
      this.result.seed = seed
      this.print(`scenario ${scenario.name} (${options.file})`)
      this.print(`seed ${seed}`)
      if (options.dir === undefined) this.tempRoot = await mkdtemp(join(tmpdir(), 'hsmlab-scenario-'))
      const labDir = options.dir === undefined ? join(this.tempRoot ?? '', 'lab') : resolve(this.cwd, options.dir)
      this.labDir = labDir
      const inlineDir = this.tempRoot ?? join(labDir, 'scenario')
      return await resolveScenario(scenario, this.scenarioPath, async (topology: Topology) => {
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
  }

  /** 2. A lab of its own, every fault left in it lifted, the groups the schedule names checked, the backups that exist noted. */
  async startLab (resolved: ResolvedScenario): Promise<RunningLab> {
    const { scenario } = resolved
    const labDir = this.labDir as string
    this.result.dir = labDir
    const upAt = performance.now()
    let status: LabStatus
    try {
      this.print(`lab: starting in ${labDir}`)
      // The fault proxy draws (jitter, toxicity) from the run's seed too, when this run starts it.
      status = (await labUp({ dir: labDir, topologyFile: resolved.topologyFile, seed: this.result.seed })).status
      this.labStarted = true
    } catch (err) {
      this.labStarted = true
      throw new RunEnded('crash', `the lab did not come up: ${describeError(err)}`, { cause: err })
    }
    this.timings.labUpMs = performance.now() - upAt
    this.print(`lab: up in ${seconds(this.timings.labUpMs)} (${status.regions.map(r => `${r.name}: ${r.clusters.map(c => `${c.name} ${c.hsms.length} HSMs`).join(', ')}`).join('; ')})`)
    const artifactsDir = join(labDir, 'scenario')
    await mkdir(artifactsDir, { recursive: true })
    this.result.artifactsDir = artifactsDir

    const needsFaults = scenario.schedule.some(e => e.action !== 'kill')
    const faults = status.faults.endpoint === null ? undefined : new FaultDriver(status.faults.endpoint, labDir)
    if (faults === undefined && needsFaults) throw new RunEnded('crash', `the lab in ${labDir} has no fault proxy (hsmlab status reports no faults.endpoint), and the schedule sets faults`)
    if (faults !== undefined) {
      await faults.healAll()
      this.print(`faults: proxy ${faults.endpoint}, its seed ${await faults.seed()}`)
      const unknown = await faults.unknownSelectors(selectorsOf(scenario))
      if (unknown.length > 0) {
        throw new RunEnded('invalid', `${this.options.file} names links the lab does not have: ${unknown.join('; ')} (the lab's groups: ${(await faults.groups()).join(', ')})`)
      }
    }

    const regions = status.regions.map(r => r.name)
    const endpoints = new Map(status.regions.map(r => [r.name, r.controlPlane?.endpoint ?? '']))
    const api = (region: string, timeoutMs: number = scenario.requestTimeoutMs): ControlPlaneClient =>
      new ControlPlaneClient({ endpoint: endpoints.get(region) ?? '', region, timeoutMs })
    const clusterStatus = status.regions.flatMap(r => r.clusters.map(c => ({ ref: `${r.name}/${c.name}`, cluster: c })))
    const preexistingBackups = new Set<string>()
    const initialBackups = new Map<string, string[]>()
    for (const region of regions) {
      for (const b of await describeAllBackups(api(region))) {
        preexistingBackups.add(String(b.BackupId))
        const ref = clusterStatus.find(c => c.cluster.id === b.ClusterId)?.ref
        if (ref !== undefined && b.BackupState === 'READY') initialBackups.set(ref, [...(initialBackups.get(ref) ?? []), String(b.BackupId)])
      }
    }
    return {
      status,
      artifactsDir,
      faults,
      regions,
      api,
      configs: new Map(clusterStatus.map(({ ref, cluster }) => [ref, cluster.cmuConfig])),
      clusterIds: new Map(clusterStatus.map(({ ref, cluster }) => [ref, cluster.id ?? ''])),
      preexistingBackups,
      initialBackups
    }
  }

  /** `hsmlab up` on the run's lab: restarts what is down and waits until every HSM is ACTIVE. */
  private readonly restart = async (timeoutMs: number): Promise<void> => {
    await labUp({ dir: this.labDir, stepTimeoutMs: timeoutMs })
  }

  /** 3. The workload and the schedule, at once, for `durationMs`; resolves with the nemesis, whose restarts may still run. */
  async runWorkload (resolved: ResolvedScenario, lab: RunningLab, random: Random): Promise<Nemesis> {
    const { scenario } = resolved
    const { signal } = this
    const runTag = `r${Date.now().toString(36).slice(-5)}`
    this.runStartedAt = performance.now()
    const history = new History({ file: join(lab.artifactsDir, 'history.jsonl'), startedAt: this.runStartedAt })
    this.history = history
    const nemesis = new Nemesis({
      faults: lab.faults,
      status: async () => lab.status,
      restart: async () => { await this.restart(scenario.settleTimeoutMs) },
      log: this.log,
      now: this.now,
      signal
    }, scenario.schedule, random.fork())
    const workloadRandom = random.fork()
    const servers = await readClusterServers(lab.configs)
    this.log(`workload: ${scenario.workload.map(s => `${s.name} (${s.clients} client${s.clients === 1 ? '' : 's'}: ${[...new Set(s.ops.map(o => o.op))].join(', ')})`).join('; ')} for ${seconds(scenario.durationMs)}`)
    this.pendingRestarts = async () => { await nemesis.restarted() }
    nemesis.start()
    const syncWatch = new SyncWatch({
      regions: lab.regions,
      api: region => lab.api(region, scenarioDefaults.observeRequestTimeoutMs),
      clusterIds: lab.clusterIds,
      intervalMs: scenarioDefaults.syncWatchIntervalMs,
      now: this.now
    })
    syncWatch.start()
    try {
      await runWorkload({
        streams: scenario.workload,
        clusters: resolved.clusters,
        servers,
        clusterIds: lab.clusterIds,
        api: region => lab.api(region),
        initialBackups: lab.initialBackups,
        history,
        runTag,
        requestTimeoutMs: scenario.requestTimeoutMs,
        now: this.now,
        signal
      }, workloadRandom)
      // The schedule runs its course even when the workload ended early.
      await new Promise<void>(resolveWait => {
        if (signal.aborted) { resolveWait(); return }
        const timer = setTimeout(done, Math.max(0, scenario.durationMs - this.now()))
        function done (): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolveWait() }
        signal.addEventListener('abort', done, { once: true })
      })
      await nemesis.stop()
    } finally {
      // Stopped whatever happened: its timer would keep the process alive.
      this.syncFailuresSeen = await syncWatch.stop()
    }
    history.closeOpen('the run ended before the operation did')
    this.timings.workloadMs = this.now()
    const counts = history.counts()
    this.log(`workload: done, ${history.records.length} operations: ${counts.ok} ok, ${counts.failed} failed, ${counts.unknown} unknown`)
    this.interrupted()
    if (nemesis.failures.length > 0) {
      throw new RunEnded('crash', `the schedule could not be carried out:\n${nemesis.failures.map(f => `  at ${seconds(f.atMs)}: ${f.what}: ${f.cause}`).join('\n')}`)
    }
    return nemesis
  }

  /** 4. Every fault lifted, what was killed restarted, the lab settled (`settleTimeoutMs`), or a liveness failure. */
  async healAndSettle (resolved: ResolvedScenario, lab: RunningLab, nemesis: Nemesis): Promise<void> {
    const { scenario } = resolved
    if (lab.faults !== undefined) {
      try {
        await lab.faults.healAll()
      } catch (err) {
        throw new RunEnded('crash', `the fault proxy did not heal: ${describeError(err)}`, { cause: err })
      }
      this.log('heal: every fault lifted')
    }
    await nemesis.restarted()
    this.log(`settle: restarting what is down, then waiting up to ${seconds(scenario.settleTimeoutMs)} for every HSM ACTIVE, clusters in agreement, copies done, synchronisation tasks SYNCHRONIZED`)
    const settled = await settle({
      clusters: resolved.clusters,
      servers: await readClusterServers(lab.configs),
      api: (region: string) => lab.api(region, scenarioDefaults.observeRequestTimeoutMs),
      regions: lab.regions,
      preexistingBackups: lab.preexistingBackups,
      restart: this.restart,
      status: async () => await labStatus({ dir: this.labDir }),
      timeoutMs: scenario.settleTimeoutMs,
      pollIntervalMs: scenarioDefaults.settlePollIntervalMs,
      requestTimeoutMs: scenarioDefaults.observeRequestTimeoutMs,
      connectTimeoutMs: scenarioDefaults.connectTimeoutMs
    })
    this.timings.settleMs = settled.tookMs
    this.interrupted()
    if (!settled.settled) throw new RunEnded('liveness', `the lab did not settle within ${seconds(scenario.settleTimeoutMs)} after every fault was healed: ${settled.reason}`)
    this.log(`settle: settled in ${seconds(settled.tookMs)}`)
  }

  /** 5. The lab read (observation) and every checker run over history and observation. */
  async observeAndCheck (resolved: ResolvedScenario, lab: RunningLab): Promise<void> {
    const history = this.history as History
    const checkAt = performance.now()
    const observation = await observe({
      clusters: resolved.clusters,
      servers: await readClusterServers(lab.configs),
      api: region => lab.api(region, scenarioDefaults.observeRequestTimeoutMs),
      regions: lab.regions,
      preexistingBackups: lab.preexistingBackups,
      history: history.records,
      requestTimeoutMs: scenarioDefaults.observeRequestTimeoutMs,
      connectTimeoutMs: scenarioDefaults.connectTimeoutMs,
      clusterIds: lab.clusterIds,
      syncFailuresSeen: this.syncFailuresSeen
    })
    this.result.observation = observation
    await writeFile(join(lab.artifactsDir, 'observation.json'), JSON.stringify(observation, null, 2) + '\n')
    const unreachable = observation.hsms.filter(h => h.unreachable !== undefined)
    if (unreachable.length > 0) {
      throw new RunEnded('liveness', `the lab settled, then stopped answering: ${unreachable.map(h => `${h.name}: ${h.unreachable ?? ''}`).join('; ')}`)
    }
    const violations = runCheckers({ history: history.records, observation })
    this.timings.checkMs = performance.now() - checkAt
    this.result.violations = violations
    const keys = observation.hsms.reduce((n, h) => n + h.keys.length, 0)
    this.log(`check: ${CHECKERS.length} invariants over ${history.records.length} operations, ${observation.hsms.length} HSMs, ${keys} key copies, ${observation.backups.filter(b => !b.preexisting).length} new backups${(observation.syncTasks ?? []).length === 0 ? '' : `, ${(observation.syncTasks ?? []).length} synchronisation task(s) with ${(observation.syncTasks ?? []).reduce((n, t) => n + t.records.length, 0)} records, ${(observation.syncFailuresSeen ?? []).length} FAILED records seen during the run`}`)
    if (violations.length > 0) throw new RunEnded('correctness', formatViolations(violations))
  }

  /** How a step ended the run: its verdict and why. */
  ended (err: unknown): void {
    if (err instanceof RunEnded) {
      this.result.verdict = err.verdict
      this.result.failure = err.message
    } else {
      this.result.verdict = 'crash'
      this.result.failure = `the runner failed: ${(err as Error).stack ?? String(err)}`
    }
  }

  /** 6. The lab stopped (deleted when the run passed in a temporary directory); what explains a failure kept. */
  async stopLab (): Promise<void> {
    const { result, labDir, tempRoot } = this
    result.history = this.history?.records ?? []
    result.exitCode = EXIT_OF[result.verdict]
    if (labDir !== undefined && this.labStarted) {
      const downAt = performance.now()
      const purge = result.verdict === 'pass' && tempRoot !== undefined
      try {
        // A restart the schedule queued holds the lab's lock until it ends.
        await this.pendingRestarts?.()
        if (result.artifactsDir !== undefined) await this.writeReport(result.artifactsDir)
        await labDown({ dir: labDir, purge })
        if (purge && tempRoot !== undefined) await rm(tempRoot, { recursive: true, force: true })
      } catch (err) {
        this.options.print(`lab: could not be stopped: ${describeError(err)}`)
        if (result.verdict === 'pass') { result.verdict = 'crash'; result.exitCode = SCENARIO_EXIT.CRASH; result.failure = `the lab could not be stopped: ${describeError(err)}` }
      }
      this.timings.labDownMs = performance.now() - downAt
    } else if (tempRoot !== undefined) {
      // Only the inline topology is in it (no lab started): a leftover in the temporary directory costs the run nothing.
      await rm(tempRoot, { recursive: true, force: true }).catch(() => {})
    }
    this.timings.totalMs = performance.now() - this.startedAt
  }

  /** report.json beside the history; a report that cannot be written costs the run nothing (the verdict is printed too). */
  private async writeReport (artifactsDir: string): Promise<void> {
    const { result } = this
    const report = { verdict: result.verdict, exitCode: result.exitCode, seed: this.seed, failure: result.failure, violations: result.violations, timings: result.timings }
    await writeFile(join(artifactsDir, 'report.json'), JSON.stringify(report, null, 2) + '\n').catch(() => {})
  }

  /** The verdict, where the artifacts are, and the replay line. */
  printVerdict (): void {
    const { result, options } = this
    this.runStartedAt = 0
    if (result.verdict === 'pass') {
      options.print(`PASS (${seconds(result.timings.totalMs)})`)
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
    if (this.seed !== undefined) options.print(`replay: hsmlab scenario run ${options.file} --seed ${this.seed}`)
  }
}

/** Runs one scenario; never throws (every failure is a verdict). */
export async function runScenario (options: RunScenarioOptions): Promise<ScenarioResult> {
  const run = new ScenarioRun(options)
  try {
    const resolved = await run.load()
    const lab = await run.startLab(resolved)
    const random = new Random(run.seed as number)
    const nemesis = await run.runWorkload(resolved, lab, random)
    await run.healAndSettle(resolved, lab, nemesis)
    await run.observeAndCheck(resolved, lab)
    run.result.verdict = 'pass'
  } catch (err) {
    run.ended(err)
  }
  await run.stopLab()
  run.printVerdict()
  return run.result
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
