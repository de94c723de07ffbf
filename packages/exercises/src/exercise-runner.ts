/**
 * `hsmlab exercise` as functions (the bin only parses arguments and prints): list, start, show,
 * check, hint, solution, reset. A running exercise is a lab (DIR, as `hsmlab` has it) plus its
 * state in DIR/exercise/: which exercise, its seed, its values (random and recorded by the setup)
 * and how many hints of each step were shown; beside it the configurations the learner uses
 * (aws.env for the AWS CLI, a CMU configuration per cluster as the control planes list it now).
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { writeCmuConfig } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { LabLayout, labDown, labUp, readLabState } from '@hsmlab/lab'
import { CheckLab } from './check-api.js'
import { EXERCISES_DIR, exerciseDefaults } from './defaults.js'
import { ExerciseError, EXERCISE_ERR_CHECK, EXERCISE_ERR_NOT_STARTED, EXERCISE_ERR_USAGE } from './errors.js'
import { credentialsOf, exerciseNames, folderOf, loadChecks, readExercise, typedSections, valuesFor } from './exercise-folder.js'
import type { ExerciseDefinition } from './exercise-folder.js'
import type { Credential } from './credential.js'
import { formatBlock, numberedItems, sectionsOf } from './markdown.js'
import { newSeed, substitute, substituteJson } from './seeded-values.js'
import type { ExerciseValue } from './seeded-values.js'
import { runSetup } from './setup.js'
import { runSchedule, spawnSchedule, stopSchedule } from './fault-schedule.js'
import type { ScheduledFault } from './fault-schedule.js'

/** Where an exercise runs. */
export interface ExerciseLocation {
  /** The lab directory. @default '.hsmlab' */
  dir?: string
  /** @default process.cwd() */
  cwd?: string
  /** Where the exercises are. @default the exercises that ship with hsmlab */
  exercisesDir?: string
}

/** What DIR/exercise/state.json holds. */
export interface ExerciseState {
  format: 1
  name: string
  folder: string
  seed: number
  values: Record<string, ExerciseValue>
  startedAt: string
  /** Step id → how many of its hints were shown. */
  hintsShown: Record<string, number>
  /** When the setup ended (the schedule's time 0), in milliseconds since the epoch. */
  readyAtMs?: number
  /** The process that runs the exercise's schedule of faults, if it has one. */
  schedulePid?: number
}

/** One line of `list`. */
export interface ExerciseSummary {
  name: string
  title: string
  minutes: number
  level: string
  summary: string
}

/** One step's outcome in `check`. */
export interface StepResult {
  id: string
  title: string
  passed: boolean
  /** Why not (none when passed). */
  reasons: string[]
}

/** What `check` found. */
export interface CheckResult {
  name: string
  passed: boolean
  steps: StepResult[]
  elapsedMs: number
}

const STATE_FORMAT = 1

function labDirOf (options: ExerciseLocation): string {
  return resolve(options.cwd ?? process.cwd(), options.dir ?? exerciseDefaults.dir)
}

function exerciseDir (dir: string): string { return join(dir, 'exercise') }
function stateFile (dir: string): string { return join(exerciseDir(dir), 'state.json') }
/** The AWS CLI's settings for the lab: `. DIR/exercise/aws.env`. */
export function awsEnvFile (dir: string): string { return join(exerciseDir(dir), 'aws.env') }

/**
 * The exercises in the folder, as `list` shows them. A folder that is not valid is left out (one
 * broken folder must not hide the others) and told to `onInvalid`.
 */
export async function listExercises (options: Pick<ExerciseLocation, 'exercisesDir'> & { onInvalid?: (name: string, error: Error) => void } = {}): Promise<ExerciseSummary[]> {
  const dir = options.exercisesDir ?? EXERCISES_DIR
  const out: ExerciseSummary[] = []
  for (const name of exerciseNames(dir)) {
    let d: ExerciseDefinition
    try {
      d = await readExercise(join(dir, name))
    } catch (err) {
      options.onInvalid?.(name, err as Error)
      continue
    }
    out.push({ name, title: d.title, minutes: d.minutes, level: d.level, summary: d.summary })
  }
  return out
}

/** The running exercise of DIR: its state and definition. */
/**
 * A record without a prototype: value names ("as") and step ids come from an exercise's files, and
 * a name like `__proto__` or `constructor` must be a key like any other, not Object.prototype's.
 */
function ownRecord<T> (from: Record<string, T> | undefined): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, from)
}

export async function openExercise (options: ExerciseLocation): Promise<{ dir: string, state: ExerciseState, definition: ExerciseDefinition }> {
  const dir = labDirOf(options)
  let state: ExerciseState
  try {
    state = JSON.parse(await readFile(stateFile(dir), 'utf8')) as ExerciseState
  } catch {
    throw new ExerciseError(EXERCISE_ERR_NOT_STARTED, `there is no exercise in ${dir}; start one with 'hsmlab exercise start NAME' ('hsmlab exercise list' names them)`)
  }
  if (state.format !== STATE_FORMAT) throw new ExerciseError(EXERCISE_ERR_NOT_STARTED, `${stateFile(dir)} was written by another version of hsmlab; start the exercise again`)
  state.values = ownRecord(state.values)
  state.hintsShown = ownRecord(state.hintsShown)
  return { dir, state, definition: await readExercise(state.folder) }
}

async function saveState (dir: string, state: ExerciseState): Promise<void> {
  await mkdir(exerciseDir(dir), { recursive: true, mode: 0o700 })
  // Its values hold passwords (the learner's and the bystanders'): for the owner only, as the lab's secrets are.
  await writeFile(stateFile(dir), JSON.stringify(state, null, 2) + '\n', { mode: 0o600 })
}

/** Options of `startExercise`. */
export interface StartOptions extends ExerciseLocation {
  name: string
  /** @default a new random seed (printed, recorded) */
  seed?: number
}

/** What `start` did. */
export interface Started {
  dir: string
  state: ExerciseState
  definition: ExerciseDefinition
  elapsedMs: number
  /** Of which `hsmlab up` took this long, and the setup the rest. */
  labUpMs: number
}

/**
 * Builds the exercise's lab in its starting state: its topology up (`hsmlab up`), then its setup.
 * DIR must be empty or hold an exercise (which is replaced); a lab that is not an exercise's is
 * left alone.
 */
export async function startExercise (options: StartOptions): Promise<Started> {
  const startedAt = performance.now()
  const dir = labDirOf(options)
  const folder = folderOf(options.name, options.exercisesDir ?? EXERCISES_DIR, options.cwd)
  const definition = await readExercise(folder)
  await loadChecks(definition)
  if (existsSync(join(dir, 'lab.json'))) {
    if (!existsSync(stateFile(dir))) {
      throw new ExerciseError(EXERCISE_ERR_USAGE, `${dir} holds a lab that is not an exercise's; give another --dir, or stop it with 'hsmlab down --purge --dir ${dir}' first`)
    }
    const previous = JSON.parse(await readFile(stateFile(dir), 'utf8')) as Partial<ExerciseState>
    await stopSchedule(previous.schedulePid, dir)
    await labDown({ dir, purge: true })
  }
  const seed = options.seed ?? newSeed()
  const values = ownRecord(valuesFor(definition, seed))
  await mkdir(exerciseDir(dir), { recursive: true, mode: 0o700 })
  const topologyFile = join(exerciseDir(dir), 'topology.json')
  await writeFile(topologyFile, JSON.stringify(substituteJson(definition.topology, values), null, 2) + '\n', { mode: 0o600 })
  const upAt = performance.now()
  await labUp({ dir, topologyFile })
  const labUpMs = performance.now() - upAt
  const credentials = credentialsOf(definition, values)
  // Recorded before the setup runs: a setup that fails leaves an exercise that `reset` and
  // `start` replace, not a lab they refuse to touch.
  const state: ExerciseState = { format: STATE_FORMAT, name: definition.name, folder, seed, values, startedAt: new Date().toISOString(), hintsShown: ownRecord<number>({}) }
  await saveState(dir, state)
  await runSetup(definition.setup, { dir, credentials, values })
  state.readyAtMs = Date.now()
  if (definition.schedule.length > 0) state.schedulePid = spawnSchedule(dir)
  await saveState(dir, state)
  await writeLearnerFiles(dir)
  return { dir, state, definition, elapsedMs: performance.now() - startedAt, labUpMs }
}

/** Back to the starting state: the lab made again from nothing, with the same exercise and seed. */
export async function resetExercise (options: ExerciseLocation): Promise<Started> {
  const { state } = await openExercise(options)
  return await startExercise({ ...options, name: state.folder, seed: state.seed })
}

/**
 * The files the learner uses: aws.env (the AWS CLI's credentials and each region's endpoint) and,
 * for every cluster the control planes list now, a CMU configuration naming its HSMs as they are
 * now (DIR/exercise/<region>-<name or cluster id>.cfg), with its trust anchor. Resolves with the
 * configurations written, cluster → file.
 */
export async function writeLearnerFiles (dir: string): Promise<Record<string, string>> {
  const layout = new LabLayout(dir)
  const lab = await readLabState(layout)
  if (lab === undefined) throw new ExerciseError(EXERCISE_ERR_NOT_STARTED, `there is no lab in ${dir}`)
  const env = [
    `# The AWS CLI against this lab: '. ${awsEnvFile(dir)}', then`,
    '# aws cloudhsmv2 describe-clusters --endpoint-url $US_EAST_1 --region us-east-1 (any credentials will do)',
    'export AWS_ACCESS_KEY_ID=hsmlab AWS_SECRET_ACCESS_KEY=hsmlab AWS_PAGER=',
    ...lab.controlPlanes.map(cp => `export ${cp.region.toUpperCase().replace(/-/g, '_')}=${cp.endpoint ?? `http://127.0.0.1:${cp.port}`}`)
  ]
  await mkdir(exerciseDir(dir), { recursive: true, mode: 0o700 })
  await writeFile(awsEnvFile(dir), env.join('\n') + '\n')
  const names = new Map(lab.clusters.filter(c => c.id !== null).map(c => [c.id as string, c.name]))
  const configs: Record<string, string> = {}
  for (const cp of lab.controlPlanes) {
    const api = new ControlPlaneClient({ endpoint: cp.endpoint ?? `http://127.0.0.1:${cp.port}`, region: cp.region, timeoutMs: exerciseDefaults.requestTimeoutMs })
    for (const cluster of (await api.describeClusters()).Clusters ?? []) {
      const hsms = (cluster.Hsms ?? []).filter(h => h.State !== 'DELETED' && h.HsmlabEndpoint !== undefined)
      if (cluster.State === 'DELETED' || cluster.HsmlabTrustAnchor === undefined || hsms.length === 0) continue
      const name = names.get(cluster.ClusterId ?? '') ?? cluster.ClusterId ?? 'cluster'
      const base = join(exerciseDir(dir), `${cp.region}-${name}`)
      await writeFile(`${base}.crt`, cluster.HsmlabTrustAnchor)
      await writeCmuConfig(`${base}.cfg`, hsms.map(h => {
        const url = new URL(h.HsmlabEndpoint ?? '')
        return { name: h.EniIp ?? url.hostname, hostname: url.hostname, port: Number(url.port), caFile: `${base}.crt`, enabled: true }
      }))
      configs[`${cp.region}/${name}`] = `${base}.cfg`
    }
  }
  return configs
}

/** The task of an exercise: its introduction and the text of each step, values filled in. */
export function taskOf (definition: ExerciseDefinition, values: Readonly<Record<string, ExerciseValue>>): { intro: string, steps: Array<{ id: string, title: string, text: string }> } {
  const { intro, sections } = sectionsOf(substitute(definition.task, values))
  return { intro, steps: definition.steps.map((s, i) => ({ id: s.id, title: substitute(s.title, values), text: sections[i]?.body ?? '' })) }
}

/** Runs every step's check now, each with a time limit; a check that throws or overruns is reported as a reason. */
export async function checkExercise (options: ExerciseLocation): Promise<CheckResult> {
  const startedAt = performance.now()
  const { dir, state, definition } = await openExercise(options)
  const checks = await loadChecks(definition)
  const lab = new CheckLab({ dir, values: state.values, seed: state.seed, credentials: credentialsOf(definition, state.values) })
  try {
    const steps: StepResult[] = []
    for (const step of definition.steps) {
      const check = checks[step.id]
      let reasons: string[]
      try {
        let timer: NodeJS.Timeout | undefined
        const overrun = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => { reject(new ExerciseError(EXERCISE_ERR_CHECK, `did not finish within ${exerciseDefaults.checkTimeoutMs} ms`)) }, exerciseDefaults.checkTimeoutMs)
        })
        try {
          const out = await Promise.race([(check as NonNullable<typeof check>)(lab), overrun])
          reasons = out === undefined || out === true ? [] : out === false ? ['not done yet'] : typeof out === 'string' ? [out] : out
        } finally {
          clearTimeout(timer)
        }
      } catch (err) {
        const message = (err as Error).message
        // A stopped lab ('hsmlab down') keeps its exercise: say how to get it back.
        reasons = [`the check could not run: ${message}${/ECONNREFUSED/.test(message) ? " (is the lab running? 'hsmlab up' starts it again, with what was done)" : ''}`]
      }
      steps.push({ id: step.id, title: substitute(step.title, state.values), passed: reasons.length === 0, reasons })
    }
    return { name: definition.name, passed: steps.every(s => s.passed), steps, elapsedMs: performance.now() - startedAt }
  } finally {
    await lab.close()
  }
}

/** What `show` tells. */
export interface Shown {
  name: string
  title: string
  seed: number
  dir: string
  intro: string
  steps: Array<StepResult & { text: string }>
  credentials: Credential[]
  /** Cluster → CMU configuration (the lab's, and the current ones in DIR/exercise/). */
  cmuConfigs: Record<string, string>
  awsEnv: string
}

/** The task, each step with its state (its check run now), the credentials and the configurations. */
export async function showExercise (options: ExerciseLocation): Promise<Shown> {
  const { dir, state, definition } = await openExercise(options)
  const task = taskOf(definition, state.values)
  const checked = await checkExercise(options)
  const current = await writeLearnerFiles(dir)
  const lab = await readLabState(new LabLayout(dir))
  const layout = new LabLayout(dir)
  const cmuConfigs: Record<string, string> = {}
  for (const c of lab?.clusters ?? []) {
    if (existsSync(layout.cmuConfig(c.region, c.name))) cmuConfigs[`${c.region}/${c.name}`] = layout.cmuConfig(c.region, c.name)
  }
  // The lab's configurations naming one HSM of a cluster and one of its clone (syncKey, syncUser across them).
  for (const region of lab?.topology.regions ?? []) {
    for (const clone of region.clusters) {
      if (clone.cloneOf === undefined) continue
      const file = layout.crossConfig({ region: clone.cloneOf.region, name: clone.cloneOf.cluster }, { region: region.name, name: clone.name })
      if (existsSync(file)) cmuConfigs[`${clone.cloneOf.region}/${clone.cloneOf.cluster}->${region.name}/${clone.name}`] = file
    }
  }
  for (const [k, v] of Object.entries(current)) cmuConfigs[`${k} (now)`] = v
  return {
    name: definition.name,
    title: definition.title,
    seed: state.seed,
    dir,
    intro: task.intro,
    steps: task.steps.map((s, i) => ({ ...(checked.steps[i] as StepResult), text: s.text })),
    credentials: credentialsOf(definition, state.values),
    cmuConfigs,
    awsEnv: awsEnvFile(dir)
  }
}

/** What `hint` gives. */
export interface Hint {
  /** The first unfinished step, or undefined when every step is done. */
  step?: { id: string, title: string }
  /** 1-based. */
  number: number
  of: number
  text: string
}

/** The next hint of the first unfinished step (the last one again once all were shown). */
export async function nextHint (options: ExerciseLocation): Promise<Hint> {
  const { dir, state, definition } = await openExercise(options)
  const checked = await checkExercise(options)
  const index = checked.steps.findIndex(s => !s.passed)
  if (index < 0) return { number: 0, of: 0, text: 'Every step is done: nothing left to hint at.' }
  const step = definition.steps[index] as { id: string, title: string }
  const hints = numberedItems(sectionsOf(substitute(definition.hints, state.values)).sections[index]?.body ?? '')
  const shown = Math.min((state.hintsShown[step.id] ?? 0) + 1, hints.length)
  state.hintsShown[step.id] = shown
  await saveState(dir, state)
  return { step: { id: step.id, title: substitute(step.title, state.values) }, number: shown, of: hints.length, text: hints[shown - 1] ?? '' }
}

/** The solution: the commands exactly as a learner types them, step by step. */
export async function solutionOf (options: ExerciseLocation): Promise<string> {
  const { dir, state, definition } = await openExercise(options)
  const sections = typedSections(substitute(definition.solution, state.values))
  const cwd = options.cwd ?? process.cwd()
  const where = relative(cwd, dir) === (options.dir ?? exerciseDefaults.dir) ? '' : `(the lab is in ${dir}: run these where you started it)\n\n`
  return where + sections.map(s => [`## ${s.heading}`, '', ...s.blocks.map(b => formatBlock(b) + '\n')].join('\n')).join('\n')
}

/** Runs the schedule of faults of the exercise in DIR (the process `start` spawns). */
export async function runExerciseSchedule (options: ExerciseLocation): Promise<void> {
  const { dir, state, definition } = await openExercise(options)
  const mine = (): boolean => {
    try {
      return (JSON.parse(readFileSync(stateFile(dir), 'utf8')) as Partial<ExerciseState>).schedulePid === process.pid
    } catch {
      return false
    }
  }
  await runSchedule(dir, substituteJson(definition.schedule, state.values) as ScheduledFault[], state.readyAtMs ?? Date.now(), mine)
}
