/**
 * `hsmlab scenario run <file.json> [--seed N] [--dir DIR]`: the command line of the scenario
 * runner, called by the `hsmlab` bin. Returns the exit code of SCENARIO_EXIT.
 */
import { parseArgs } from 'node:util'
import { SCENARIO_EXIT } from './defaults.js'
import { runScenario } from './runner.js'

/** Where the command writes. */
export interface ScenarioIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  cwd?: string
}

export const SCENARIO_HELP = `usage: hsmlab scenario run FILE [--seed N] [--dir DIR]

Runs the fault scenario FILE (docs/scenarios.md) against a lab of its own: starts the lab (in a
temporary directory, or in DIR), runs the workload and the schedule of faults, heals every fault,
restarts what was killed, waits for the lab to settle, then checks that no acknowledged key or
user was lost, none is duplicated or half-written, every failure has a cause, the HSMs of each
cluster agree and every copied backup finished. Prints PASS or the invariant that broke, then
the line that replays the run.

  -s, --seed N    the seed of every random choice (default: the file's "seed", else a random one)
  -d, --dir DIR   run the lab in DIR (kept, stopped, at the end) instead of a temporary directory

exit codes: 0 pass, 1 the scenario file is not valid, 2 bad command line, 3 crash (the runner or
the lab failed), 4 liveness (the lab did not settle in time), 5 correctness (an invariant broke)
`

/** Runs `hsmlab scenario ...`; resolves with the exit code. */
export async function scenarioMain (argv: string[], io: ScenarioIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { seed: { type: 'string', short: 's' }, dir: { type: 'string', short: 'd' }, help: { type: 'boolean', short: 'h' } } })
  } catch (err) {
    io.stderr(`hsmlab scenario: ${(err as Error).message}\n\n${SCENARIO_HELP}`)
    return SCENARIO_EXIT.USAGE
  }
  const { values, positionals } = parsed
  if (values.help === true) { io.stdout(SCENARIO_HELP); return SCENARIO_EXIT.PASS }
  const [sub, file, ...extra] = positionals
  if (sub !== 'run' || file === undefined || extra.length > 0) {
    io.stderr(`hsmlab scenario: ${sub !== 'run' ? `unknown subcommand '${sub ?? ''}'` : file === undefined ? 'name a scenario file' : `unexpected argument '${extra[0] ?? ''}'`}\n\n${SCENARIO_HELP}`)
    return SCENARIO_EXIT.USAGE
  }
  let seed: number | undefined
  if (values.seed !== undefined) {
    seed = Number(values.seed)
    if (!/^-?\d+$/.test(values.seed) || !Number.isSafeInteger(seed)) {
      io.stderr(`hsmlab scenario: --seed must be a whole number, not '${values.seed}'\n`)
      return SCENARIO_EXIT.USAGE
    }
  }
  // Ctrl-C stops the run where it is and still stops the lab (it runs detached).
  const interrupt = new AbortController()
  const onSignal = (): void => { interrupt.abort() }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const result = await runScenario({
      file,
      ...(io.cwd === undefined ? {} : { cwd: io.cwd }),
      ...(seed === undefined ? {} : { seed }),
      ...(values.dir === undefined ? {} : { dir: values.dir }),
      print: line => { io.stdout(`${line}\n`) },
      signal: interrupt.signal
    })
    return result.exitCode
  } finally {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
}
