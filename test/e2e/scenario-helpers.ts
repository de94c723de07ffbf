/**
 * Helpers of the scenario end-to-end tests (`scenario-*.test.ts`): a directory for the runner's lab
 * that is stopped (`hsmlab down`) and removed when the test ends, whatever happened, and readers
 * of what `hsmlab scenario run` prints.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'
import { runHsmlab } from '@hsmlab/testing'

/** The repository's root (scenario files are given relative to it, as a person types them there). */
export const REPO_ROOT: string = new URL('../..', import.meta.url).pathname

/**
 * A temporary directory and the lab directory inside it (`name`) to give `--dir`: when the test ends the
 * lab is stopped (in case the runner died before it could) and the directory removed.
 */
export function scenarioDir (name = 'lab'): { cwd: string, dir: string } {
  const cwd = mkdtempSync(join(tmpdir(), 'hsmlab-scenario-test-'))
  const dir = join(cwd, name)
  onTestFinished(async () => {
    await runHsmlab(['down', '--dir', dir], { cwd, timeoutMs: 30_000 }).catch(() => undefined)
    rmSync(cwd, { recursive: true, force: true })
  })
  return { cwd, dir }
}

/** The seed the runner printed (`seed N`), or undefined. */
export function printedSeed (stdout: string): number | undefined {
  const m = /^seed (\d+)$/m.exec(stdout)
  return m === null ? undefined : Number(m[1])
}

/** The last non-empty line printed. */
export function lastLine (stdout: string): string {
  return stdout.trimEnd().split('\n').at(-1) ?? ''
}
