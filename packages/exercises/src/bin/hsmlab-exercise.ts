/**
 * `hsmlab-exercise` (run as `hsmlab exercise ...`, which forwards to it): training exercises.
 *
 *   hsmlab exercise list [--json]
 *   hsmlab exercise start NAME [--dir DIR] [--seed N]
 *   hsmlab exercise show  [--dir DIR] [--json]
 *   hsmlab exercise check [--dir DIR] [--json]
 *   hsmlab exercise hint  [--dir DIR]
 *   hsmlab exercise solution [--dir DIR]
 *   hsmlab exercise reset [--dir DIR]
 *
 * `main(argv, io)` returns the exit code: 0 done (check: every step passes), 1 failed (check: a
 * step does not pass), 2 bad command line; it runs in process in tests and as a process.
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { isEntryPoint } from '@hsmlab/process'
import { exerciseDefaults } from '../defaults.js'
import { ExerciseError, EXERCISE_ERR_USAGE } from '../errors.js'
import { checkExercise, listExercises, nextHint, openExercise, resetExercise, runExerciseSchedule, showExercise, solutionOf, startExercise, taskOf } from '../exercise-runner.js'
import type { CheckResult, Started } from '../exercise-runner.js'

/** Where `main` writes, and the directory it resolves `--dir` against. */
export interface MainIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** @default process.cwd() */
  cwd?: string
}

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

const USAGE = `usage: hsmlab exercise <command> [options]

commands:
  list [--json]                        the exercises: name, title, minutes, level, summary
  start NAME [--dir DIR] [--seed N]    build the exercise's lab in its starting state; print the task and the first step
  show [--dir DIR] [--json]            the task, the steps with their state, credentials and CMU configurations
  check [--dir DIR] [--json]           run every step's check now; exit 0 when all pass, 1 otherwise
  hint [--dir DIR]                     the next hint for the first unfinished step
  solution [--dir DIR]                 the commands of a solution, exactly as a learner types them
  reset [--dir DIR]                    back to the starting state (same exercise, same seed)

DIR defaults to ${exerciseDefaults.dir} in the working directory; 'hsmlab down' stops an exercise's lab like any other.
Writing an exercise: docs/exercises.md.
`

const OPTIONS = {
  dir: { type: 'string', short: 'd' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

/** Which options each command takes. */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  list: ['json'],
  start: ['dir', 'seed'],
  show: ['dir', 'json'],
  check: ['dir', 'json'],
  hint: ['dir'],
  solution: ['dir'],
  reset: ['dir'],
  // Not for people: the process that runs an exercise's schedule of faults (fault-schedule.ts).
  _schedule: ['dir']
}

function formatCheck (result: CheckResult): string {
  const lines = result.steps.map((s, i) => s.passed
    ? `PASS  step ${i + 1}: ${s.title}`
    : [`FAIL  step ${i + 1}: ${s.title}`, ...s.reasons.map(r => `      - ${r}`)].join('\n'))
  const done = result.steps.filter(s => s.passed).length
  lines.push('', result.passed ? `All ${result.steps.length} steps done.` : `${done} of ${result.steps.length} steps done.`)
  return lines.join('\n') + '\n'
}

function formatStarted (started: Started, cwd: string): string {
  const { definition, state } = started
  const task = taskOf(definition, state.values)
  const first = task.steps[0]
  const dirArg = resolve(cwd, exerciseDefaults.dir) === started.dir ? '' : ` --dir ${started.dir}`
  return [
    `# ${definition.title}`,
    '',
    task.intro,
    '',
    first === undefined ? '' : `## Step 1 of ${task.steps.length}: ${first.title}\n\n${first.text}`,
    '',
    `Exercise ${definition.name} ready in ${(started.elapsedMs / 1000).toFixed(2)} s (the lab ${(started.labUpMs / 1000).toFixed(2)} s, its setup ${((started.elapsedMs - started.labUpMs) / 1000).toFixed(2)} s; seed ${state.seed}; the same exercise again: 'hsmlab exercise start ${definition.name} --seed ${state.seed}').`,
    `'hsmlab exercise show${dirArg}' for every step, credentials and configurations; 'hsmlab exercise check${dirArg}' to see what is left; 'hsmlab exercise hint${dirArg}' when stuck.`
  ].join('\n') + '\n'
}

/** Runs one `hsmlab exercise` command; resolves with the exit code. */
export async function main (argv: string[], io: MainIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) }
}): Promise<number> {
  const cwd = io.cwd ?? process.cwd()
  const [command, ...rest] = argv
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      (command === undefined ? io.stderr : io.stdout)(USAGE)
      return command === undefined ? EXIT_USAGE : EXIT_OK
    }
    const allowed = ALLOWED[command]
    if (allowed === undefined || !Object.hasOwn(ALLOWED, command)) throw new ExerciseError(EXERCISE_ERR_USAGE, `unknown command '${command}'\n\n${USAGE}`)
    let parsed
    try {
      parsed = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: true })
    } catch (err) {
      throw new ExerciseError(EXERCISE_ERR_USAGE, `${(err as Error).message}\n\n${USAGE}`)
    }
    const v = parsed.values
    if (v.help === true) { io.stdout(USAGE); return EXIT_OK }
    const given = Object.keys(v).filter(k => !allowed.includes(k))
    if (given.length > 0) throw new ExerciseError(EXERCISE_ERR_USAGE, `'${command}' takes no --${given[0] ?? ''}\n\n${USAGE}`)
    const positionals = parsed.positionals
    if (command === 'start' ? positionals.length !== 1 : positionals.length !== 0) {
      throw new ExerciseError(EXERCISE_ERR_USAGE, command === 'start' ? `name one exercise ('hsmlab exercise list' names them)\n\n${USAGE}` : `'${command}' takes no argument '${positionals[0] ?? ''}'`)
    }
    const location = { cwd, ...(v.dir === undefined ? {} : { dir: v.dir }) }
    switch (command) {
      case 'list': {
        const list = await listExercises({ onInvalid: (name, err) => { io.stderr(`hsmlab exercise list: ${name} left out: ${err.message}\n`) } })
        if (v.json === true) io.stdout(JSON.stringify(list, null, 2) + '\n')
        else {
          const width = Math.max(...list.map(e => e.name.length))
          io.stdout(list.map(e => `${e.name.padEnd(width)}  ${String(e.minutes).padStart(3)} min  ${e.level.padEnd(12)}  ${e.title}\n${' '.repeat(width + 2)}${e.summary}`).join('\n') + '\n')
        }
        return EXIT_OK
      }
      case 'start': {
        let seed: number | undefined
        if (v.seed !== undefined) {
          seed = Number(v.seed)
          if (!/^\d+$/.test(v.seed.trim()) || !Number.isSafeInteger(seed)) throw new ExerciseError(EXERCISE_ERR_USAGE, `--seed must be a whole number from 0 to 2^53 - 1, not '${v.seed}'`)
        }
        const started = await startExercise({ ...location, name: positionals[0] as string, ...(seed === undefined ? {} : { seed }) })
        io.stdout(formatStarted(started, cwd))
        return EXIT_OK
      }
      case 'show': {
        const shown = await showExercise(location)
        if (v.json === true) { io.stdout(JSON.stringify(shown, null, 2) + '\n'); return EXIT_OK }
        const lines = [`# ${shown.title} (${shown.name}, seed ${shown.seed})`, '', shown.intro, '']
        shown.steps.forEach((s, i) => {
          lines.push(`## Step ${i + 1}: ${s.title} [${s.passed ? 'done' : 'to do'}]`, '', s.text, '')
        })
        lines.push('## Credentials', '', ...shown.credentials.map(c => `- ${c.cluster ?? 'every cluster'}: ${c.type} ${c.name} / ${c.password}`), '')
        lines.push('## CMU configurations', '', ...Object.entries(shown.cmuConfigs).map(([k, f]) => `- ${k}: ${f}`), '')
        lines.push('## AWS CLI', '', `. ${shown.awsEnv}   # then: aws cloudhsmv2 ... --endpoint-url $US_EAST_1 --region us-east-1`, '')
        io.stdout(lines.join('\n'))
        return EXIT_OK
      }
      case 'check': {
        const result = await checkExercise(location)
        io.stdout(v.json === true ? JSON.stringify(result, null, 2) + '\n' : formatCheck(result))
        return result.passed ? EXIT_OK : EXIT_FAILURE
      }
      case 'hint': {
        const hint = await nextHint(location)
        io.stdout(hint.step === undefined ? `${hint.text}\n` : `Hint ${hint.number} of ${hint.of} for step "${hint.step.title}":\n${hint.text}\n`)
        return EXIT_OK
      }
      case 'solution': {
        io.stdout(await solutionOf(location))
        return EXIT_OK
      }
      case '_schedule': {
        await runExerciseSchedule(location)
        return EXIT_OK
      }
      case 'reset': {
        const { definition } = await openExercise(location)
        const started = await resetExercise(location)
        io.stdout(`${definition.name}: back to the starting state.\n\n` + formatStarted(started, cwd))
        return EXIT_OK
      }
    }
    return EXIT_USAGE
  } catch (err) {
    if (err instanceof ExerciseError && err.code === EXERCISE_ERR_USAGE) {
      io.stderr(`hsmlab exercise ${command ?? ''}: ${err.message}`.trimEnd() + '\n')
      return EXIT_USAGE
    }
    const code = (err as { code?: unknown }).code
    io.stderr(`hsmlab exercise ${command ?? ''}: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
}


if (isEntryPoint(import.meta.url, new URL('../../bin/hsmlab-exercise.js', import.meta.url))) {
  main(process.argv.slice(2)).then(code => {
    process.stdout.write('', () => process.exit(code))
  }, (err: unknown) => {
    process.stderr.write(`hsmlab exercise: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(EXIT_FAILURE)
  })
}
