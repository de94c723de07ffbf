/**
 * An exercise is a folder a trainer can copy and change without touching code
 * (docs/exercises.md): exercise.json (title, minutes, level, summary, topology, random values,
 * setup, credentials, steps), task.md, hints.md, solution.md, mistakes.md and checks.js. This
 * module reads one and checks it whole, naming the file and what is wrong in it, so that a
 * broken folder is refused before any lab starts.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseTopology } from '@hsmlab/lab'
import { EXERCISES_DIR } from './defaults.js'
import { ExerciseError, EXERCISE_ERR_INVALID, EXERCISE_ERR_UNKNOWN } from './errors.js'
import { expectedReasons, numberedItems, sectionsOf, typedBlocks } from './markdown.js'
import type { TypedBlock } from './markdown.js'
import { drawValue, placeholdersOf, substituteJson } from './seeded-values.js'
import type { ExerciseValue, RandomSpec } from './seeded-values.js'
import { checkSetupStep } from './setup.js'
import type { SetupStep } from './setup.js'
import type { StepCheck } from './check-api.js'
import type { Credential } from './credential.js'


/** A step of the task. */
export interface ExerciseStep {
  id: string
  title: string
}

/** One section of solution.md or mistakes.md: what it is about and the blocks a learner types. */
export interface TypedSection {
  heading: string
  text: string
  blocks: TypedBlock[]
  /** mistakes.md: what `check` says afterwards (a part of one of its reasons). */
  expect: string[]
}

/** The levels an exercise is for. */
export const LEVELS = ['beginner', 'intermediate', 'advanced'] as const

/** An exercise as its folder defines it, before a seed gives its random values. */
export interface ExerciseDefinition {
  name: string
  folder: string
  title: string
  minutes: number
  level: typeof LEVELS[number]
  summary: string
  /** The lab's topology (docs/lab.md), may hold `{{values}}`. */
  topology: unknown
  random: Record<string, RandomSpec>
  setup: unknown[]
  credentials: unknown[]
  steps: ExerciseStep[]
  task: string
  hints: string
  solution: string
  mistakes: string
}

/** The files every exercise folder has. */
export const EXERCISE_FILES = ['exercise.json', 'task.md', 'hints.md', 'solution.md', 'mistakes.md', 'checks.js'] as const

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/
const STEP_ID = /^[a-z0-9][a-z0-9-]{0,63}$/

function invalid (folder: string, file: string, problem: string): ExerciseError {
  return new ExerciseError(EXERCISE_ERR_INVALID, `${join(folder, file)}: ${problem}`)
}

/** The names of the exercises in `dir` (every folder with an exercise.json), sorted. */
export function exerciseNames (dir: string = EXERCISES_DIR): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir).filter(n => NAME.test(n) && statSync(join(dir, n)).isDirectory() && existsSync(join(dir, n, 'exercise.json'))).sort()
}

/** The folder of exercise `name`: a folder path (it has a `/`, taken from `cwd`), or a name in `dir`. */
export function folderOf (name: string, dir: string = EXERCISES_DIR, cwd: string = process.cwd()): string {
  if (name.includes('/')) return resolve(cwd, name)
  if (!NAME.test(name) || !existsSync(join(dir, name, 'exercise.json'))) {
    throw new ExerciseError(EXERCISE_ERR_UNKNOWN, `there is no exercise '${name}' (the exercises: ${exerciseNames(dir).join(', ')}; 'hsmlab exercise list' tells what each is)`)
  }
  return join(dir, name)
}

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function checkRandom (folder: string, raw: unknown): Record<string, RandomSpec> {
  if (raw === undefined) return {}
  if (!isObject(raw)) throw invalid(folder, 'exercise.json', '"random" must be an object of name: recipe')
  for (const [name, spec] of Object.entries(raw)) {
    const ok = isObject(spec) && (
      spec.password === true ||
      (Array.isArray(spec.oneOf) && spec.oneOf.length > 0) ||
      (Array.isArray(spec.sample) && Number.isInteger(spec.count) && (spec.count as number) >= 0 && (spec.count as number) <= spec.sample.length) ||
      (Array.isArray(spec.int) && spec.int.length === 2 && spec.int.every(Number.isInteger) && (spec.int[0] as number) <= (spec.int[1] as number)))
    if (!ok || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw invalid(folder, 'exercise.json', `random "${name}" must be {"password": true}, {"oneOf": [...]}, {"sample": [...], "count": N} or {"int": [MIN, MAX]}`)
    }
  }
  return raw as Record<string, RandomSpec>
}

/** Reads and checks the exercise in `folder` (everything but checks.js, which `loadChecks` imports). */
export async function readExercise (folder: string): Promise<ExerciseDefinition> {
  for (const file of EXERCISE_FILES) {
    if (!existsSync(join(folder, file))) throw invalid(folder, file, 'is missing (an exercise folder has exercise.json, task.md, hints.md, solution.md, mistakes.md and checks.js)')
  }
  const read = async (file: string): Promise<string> => await readFile(join(folder, file), 'utf8')
  let json: unknown
  try {
    json = JSON.parse(await read('exercise.json'))
  } catch (err) {
    throw invalid(folder, 'exercise.json', `is not JSON: ${(err as Error).message}`)
  }
  if (!isObject(json)) throw invalid(folder, 'exercise.json', 'must be a JSON object')
  const known = ['$schema', 'title', 'minutes', 'level', 'summary', 'topology', 'random', 'setup', 'credentials', 'steps']
  const unknown = Object.keys(json).filter(k => !known.includes(k))
  if (unknown.length > 0) throw invalid(folder, 'exercise.json', `has unknown fields ${unknown.join(', ')} (it may have ${known.join(', ')})`)
  const text = (field: string): string => {
    const v = json[field]
    if (typeof v !== 'string' || v.trim() === '') throw invalid(folder, 'exercise.json', `"${field}" must be a non-empty string`)
    return v
  }
  const title = text('title')
  const summary = text('summary')
  const level = text('level')
  if (!(LEVELS as readonly string[]).includes(level)) throw invalid(folder, 'exercise.json', `"level" must be one of ${LEVELS.join(', ')}, not "${level}"`)
  const minutes = json.minutes
  if (typeof minutes !== 'number' || !Number.isInteger(minutes) || minutes < 1 || minutes > 240) throw invalid(folder, 'exercise.json', '"minutes" must be a whole number of minutes from 1 to 240')
  let topology = json.topology
  if (typeof topology === 'string') {
    try {
      topology = JSON.parse(await read(topology))
    } catch (err) {
      throw invalid(folder, 'exercise.json', `"topology" names ${topology}, which cannot be read as JSON: ${(err as Error).message}`)
    }
  }
  if (!isObject(topology)) throw invalid(folder, 'exercise.json', '"topology" must be a topology (docs/lab.md) or the name of a file in the folder that holds one')
  const random = checkRandom(folder, json.random)
  const setup = json.setup ?? []
  if (!Array.isArray(setup)) throw invalid(folder, 'exercise.json', '"setup" must be a list of steps')
  const credentials = json.credentials ?? []
  if (!Array.isArray(credentials)) throw invalid(folder, 'exercise.json', '"credentials" must be a list of {cluster?, type, name, password}')
  for (const [i, c] of credentials.entries()) {
    if (!isObject(c) || (c.type !== 'CO' && c.type !== 'CU') || typeof c.name !== 'string' || typeof c.password !== 'string' || (c.cluster !== undefined && typeof c.cluster !== 'string')) {
      throw invalid(folder, 'exercise.json', `credentials[${i}] must be {"cluster"?: "region/cluster", "type": "CO" | "CU", "name", "password"}`)
    }
  }
  const steps = json.steps
  if (!Array.isArray(steps) || steps.length === 0) throw invalid(folder, 'exercise.json', '"steps" must be a non-empty list of {"id", "title"}')
  const ids = new Set<string>()
  for (const [i, s] of steps.entries()) {
    if (!isObject(s) || typeof s.id !== 'string' || !STEP_ID.test(s.id) || typeof s.title !== 'string') {
      throw invalid(folder, 'exercise.json', `steps[${i}] must be {"id": "lower-case-words", "title": "..."}`)
    }
    if (ids.has(s.id)) throw invalid(folder, 'exercise.json', `steps[${i}].id "${s.id}" is used twice`)
    ids.add(s.id)
  }
  const definition: ExerciseDefinition = {
    name: folder.split('/').filter(Boolean).pop() ?? folder,
    folder,
    title,
    minutes,
    level: level as ExerciseDefinition['level'],
    summary,
    topology,
    random,
    setup,
    credentials,
    steps: (steps as Array<{ id: string, title: string }>).map(s => ({ id: s.id, title: s.title })),
    task: await read('task.md'),
    hints: await read('hints.md'),
    solution: await read('solution.md'),
    mistakes: await read('mistakes.md')
  }
  checkDocuments(definition)
  // With values drawn from seed 0: the setup, credentials and topology as they will be used.
  const values = valuesFor(definition, 0)
  const setupSteps = substituteJson(setup, values) as unknown[]
  setupSteps.forEach((step, i) => {
    const problem = checkSetupStep(step)
    if (problem !== undefined) throw invalid(folder, 'exercise.json', `setup[${i}]: ${problem}`)
  })
  try {
    parseTopology(substituteJson(topology, values), join(folder, 'exercise.json'))
  } catch (err) {
    throw invalid(folder, 'exercise.json', `"topology" is not a valid topology: ${(err as Error).message}`)
  }
  return definition
}

/** Task, hints, solution and mistakes: a section per step where the format asks for one, and nothing left out. */
function checkDocuments (d: ExerciseDefinition): void {
  const task = sectionsOf(d.task)
  if (task.intro === '') throw invalid(d.folder, 'task.md', 'must begin with the task, before the first "## " step')
  if (task.sections.length !== d.steps.length) throw invalid(d.folder, 'task.md', `has ${task.sections.length} "## " sections; exercise.json has ${d.steps.length} steps (one section per step, in order)`)
  const hints = sectionsOf(d.hints).sections
  if (hints.length !== d.steps.length) throw invalid(d.folder, 'hints.md', `has ${hints.length} "## " sections; exercise.json has ${d.steps.length} steps (one section per step, in order)`)
  hints.forEach((h, i) => {
    if (numberedItems(h.body).length === 0) throw invalid(d.folder, 'hints.md', `section "${h.heading}" has no numbered hints ("1. ...")`)
    void i
  })
  const solution = typedSections(d.solution)
  if (solution.length === 0 || solution.every(s => s.blocks.length === 0)) throw invalid(d.folder, 'solution.md', 'has no ```sh, ```cmu or ```kmu block under a "## " section')
  const mistakes = typedSections(d.mistakes)
  if (mistakes.length === 0) throw invalid(d.folder, 'mistakes.md', 'has no "## " section (one plausible wrong attempt at least)')
  for (const m of mistakes) {
    if (m.blocks.length === 0) throw invalid(d.folder, 'mistakes.md', `section "${m.heading}" has no block of what the learner types`)
    if (m.expect.length === 0) throw invalid(d.folder, 'mistakes.md', `section "${m.heading}" has no "Check says: ..." line`)
  }
  const declared = new Set([...Object.keys(d.random), ...setupOutputs(d.setup)])
  for (const [file, textOf] of [['task.md', d.task], ['hints.md', d.hints], ['solution.md', d.solution], ['mistakes.md', d.mistakes]] as const) {
    const unknown = placeholdersOf(textOf).filter(n => !declared.has(n))
    if (unknown.length > 0) throw invalid(d.folder, file, `uses {{${unknown[0] ?? ''}}}, which is neither a "random" value nor a setup step's "as"`)
  }
}

/** The value names setup steps record (`"as": NAME`). */
function setupOutputs (setup: unknown[]): string[] {
  return setup.flatMap(step => isObject(step)
    ? Object.values(step).flatMap(v => isObject(v) ? [v.as, v.syncedAs, v.leftAs].filter((n): n is string => typeof n === 'string') : [])
    : [])
}

/** The sections of solution.md or mistakes.md with their typed blocks. */
export function typedSections (text: string): TypedSection[] {
  return sectionsOf(text).sections.map(s => ({ heading: s.heading, text: s.body, blocks: typedBlocks(s.body), expect: expectedReasons(s.body) }))
}

/** The exercise's random values for `seed`. */
export function valuesFor (d: ExerciseDefinition, seed: number): Record<string, ExerciseValue> {
  return Object.fromEntries(Object.entries(d.random).map(([name, spec]) => [name, drawValue(seed, name, spec)]))
}

/** The credentials of an exercise with its values. */
export function credentialsOf (d: ExerciseDefinition, values: Readonly<Record<string, ExerciseValue>>): Credential[] {
  return substituteJson(d.credentials, values) as Credential[]
}

/** The setup steps of an exercise with its values (those the setup records are filled in as it goes). */
export function setupOf (d: ExerciseDefinition): SetupStep[] {
  return d.setup as SetupStep[]
}

/** Imports checks.js: its default export maps each step id to a check. */
export async function loadChecks (d: ExerciseDefinition): Promise<Record<string, StepCheck>> {
  const file = join(d.folder, 'checks.js')
  let mod: { default?: unknown }
  try {
    mod = await import(pathToFileURL(file).href) as { default?: unknown }
  } catch (err) {
    throw invalid(d.folder, 'checks.js', `cannot be imported: ${(err as Error).message}`)
  }
  const checks = mod.default
  if (!isObject(checks)) throw invalid(d.folder, 'checks.js', 'must export default an object of step id: async check (lab) => reasons')
  for (const step of d.steps) {
    if (typeof checks[step.id] !== 'function') throw invalid(d.folder, 'checks.js', `has no check for step "${step.id}"`)
  }
  const extra = Object.keys(checks).filter(k => !d.steps.some(s => s.id === k))
  if (extra.length > 0) throw invalid(d.folder, 'checks.js', `has checks for steps exercise.json does not have: ${extra.join(', ')}`)
  return checks as Record<string, StepCheck>
}
