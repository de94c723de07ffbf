/**
 * Helpers of the training-exercise tests (issue 13, `issue-13-*.test.ts`): an exercise started
 * with the real `hsmlab exercise start` in `<tmp>/.hsmlab` (so that its solution's paths work as a
 * learner types them, from the directory where they started it), `hsmlab exercise check --json`,
 * and what a learner types run for real: the ```sh blocks of solution.md and mistakes.md in bash
 * (the real AWS CLI among them), the ```cmu and ```kmu blocks typed into the real
 * cloudhsm_mgmt_util and key_mgmt_util bins on their standard input. Shell variables a block sets
 * are there for the blocks after it, as in one terminal. The lab is torn down when the test ends.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { PROGRAM_OF, openExercise, substitute, typedSections } from '@hsmlab/exercises'
import type { CheckResult, TypedBlock, TypedSection } from '@hsmlab/exercises'
import { spawnProcess, startLab } from '@hsmlab/testing'
import type { StartedLab } from '@hsmlab/testing'

/** Where npm links the workspace's bins: hsmlab, cloudhsm_mgmt_util, key_mgmt_util. */
const BIN_DIR = fileURLToPath(new URL('../../node_modules/.bin', import.meta.url))

/** The AWS CLI, when this machine has it (the tests that need it are skipped without it). */
export const AWS_CLI: string | undefined = (() => {
  try {
    return execFileSync('bash', ['-c', 'command -v aws'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
})()

/** A started exercise: its lab, and its values (random ones and what the setup recorded). */
export interface ExerciseRun {
  lab: StartedLab
  values: Record<string, unknown>
  /** The shell state the typed blocks share (an `export -p` file). */
  shellState: string
}

/** `hsmlab exercise start NAME --seed SEED` in a fresh directory. */
export async function startExercise (name: string, seed = 1): Promise<ExerciseRun> {
  const lab = await startLab({ dirName: '.hsmlab', start: ['exercise', 'start', name, '--seed', String(seed)] })
  const { state } = await openExercise({ dir: lab.dir })
  const shellState = join(lab.cwd, '.shell-state')
  writeFileSync(shellState, '')
  return { lab, values: state.values, shellState }
}

/** `hsmlab exercise check --json`: its exit code and result. */
export async function check (run: ExerciseRun): Promise<{ code: number | string, result: CheckResult }> {
  const out = await run.lab.hsmlab(['exercise', 'check', '--json'])
  expect(out.stderr).toBe('')
  return { code: out.code, result: JSON.parse(out.stdout) as CheckResult }
}

/** Every reason of every failing step, as one list. */
export function reasonsOf (result: CheckResult): string[] {
  return result.steps.flatMap(s => s.reasons.map(r => `${s.id}: ${r}`))
}

/** `check` must fail, and one of its reasons must contain each of `fragments`. */
export async function expectFailing (run: ExerciseRun, ...fragments: Array<string | RegExp>): Promise<CheckResult> {
  const { code, result } = await check(run)
  const reasons = reasonsOf(result)
  expect(code, reasons.join('\n')).toBe(1)
  expect(result.passed).toBe(false)
  for (const s of result.steps) expect(s.passed || s.reasons.length > 0, `step ${s.id} fails with no reason`).toBe(true)
  for (const f of fragments) expect(reasons.some(r => typeof f === 'string' ? r.includes(f) : f.test(r)), `no reason matches ${String(f)}:\n${reasons.join('\n')}`).toBe(true)
  return result
}

/** `check` must pass. */
export async function expectPassing (run: ExerciseRun): Promise<void> {
  const { code, result } = await check(run)
  expect(reasonsOf(result)).toEqual([])
  expect(code).toBe(0)
}

/** The sections of the exercise's solution.md or mistakes.md, with its values. */
export async function sectionsOf (run: ExerciseRun, file: 'solution' | 'mistakes'): Promise<TypedSection[]> {
  const { state, definition } = await openExercise({ dir: run.lab.dir })
  return typedSections(substitute(definition[file], state.values))
}

/** How a typed block ended. */
export interface Typed { code: number | string, stdout: string, stderr: string }

/**
 * Runs one block as a learner types it, in the exercise's directory: a ```sh block's lines in
 * bash (`set -e`: the first failing line stops it), a ```cmu or ```kmu block's lines on the
 * standard input of the program started with the block's arguments.
 */
export async function typeBlock (run: ExerciseRun, block: TypedBlock): Promise<Typed> {
  // `set -a`: every variable a block sets is exported, so the next block gets it from the state file.
  const prelude = `set -a; . '${run.shellState}'; set +a; set -a; `
  const save = `; status=$?; export -p > '${run.shellState}'; exit $status`
  const script = block.kind === 'sh'
    ? `${prelude}set -e\n${block.lines.join('\n')}\nset +e${save}`
    : `${prelude}${PROGRAM_OF[block.kind]} ${block.args}${save}`
  const env = { PATH: `${BIN_DIR}:${process.env.PATH ?? ''}`, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_MAX_ATTEMPTS: '1' }
  const child = spawnProcess('bash', ['-c', script], { cwd: run.lab.cwd, env, name: block.kind })
  child.child.stdin.end(block.kind === 'sh' ? '' : block.lines.map(l => `${l}\n`).join(''))
  const code = await child.exited
  return { code, stdout: child.stdout(), stderr: child.stderr() }
}

/** Types every block of the sections in order; with `mustSucceed`, each must exit 0. */
export async function typeSections (run: ExerciseRun, sections: TypedSection[], mustSucceed: boolean): Promise<Typed[]> {
  const out: Typed[] = []
  for (const section of sections) {
    for (const block of section.blocks) {
      const typed = await typeBlock(run, block)
      if (mustSucceed) expect(typed.code, `${section.heading}: ${block.kind} block exited with ${typed.code}\n${typed.stdout}\n${typed.stderr}`).toBe(0)
      out.push(typed)
    }
  }
  return out
}

/**
 * The whole life of an exercise as the issue asks for it: after start, check fails with the
 * reasons `initially` names; each mistake of mistakes.md typed for real leaves check failing with
 * the reason it gives (then `reset`, back to the start); the solution typed for real makes check pass.
 */
export async function playExercise (name: string, initially: Array<string | RegExp>, seed = 1): Promise<ExerciseRun> {
  const run = await startExercise(name, seed)
  expect(existsSync(join(run.lab.dir, 'exercise', 'state.json'))).toBe(true)
  await expectFailing(run, ...initially)
  for (const mistake of await sectionsOf(run, 'mistakes')) {
    await typeSections(run, [mistake], false)
    await expectFailing(run, ...mistake.expect)
    const reset = await run.lab.hsmlab(['exercise', 'reset'])
    expect(reset.code, reset.stderr).toBe(0)
    writeFileSync(run.shellState, '')
    // The same seed: the same random values (passwords, labels, which keys a partition leaves behind).
    const { state, definition } = await openExercise({ dir: run.lab.dir })
    for (const name of Object.keys(definition.random)) expect(state.values[name], name).toEqual(run.values[name])
    await expectFailing(run, ...initially)
  }
  await typeSections(run, await sectionsOf(run, 'solution'), true)
  await expectPassing(run)
  return run
}
