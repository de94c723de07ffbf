import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { onTestFinished } from 'vitest'

/** A child process started by a test, with everything it printed so far. */
export interface SpawnedProcess {
  child: ChildProcessWithoutNullStreams
  /** All of stdout so far. */
  stdout: () => string
  /** All of stderr so far. */
  stderr: () => string
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>
  /** Writes to standard input. */
  write: (text: string) => void
  /** Sends SIGKILL and waits for the process to end. */
  kill: () => Promise<void>
}

/** Options of `spawnProcess`. */
export interface SpawnOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Name printed before the child's output when a test fails. @default the command */
  name?: string
}

/**
 * Starts a process and makes sure it dies when the current test ends, whatever happens; when the
 * test failed, prints what the child wrote on stderr so the failure can be understood.
 */
export function spawnProcess (command: string, args: string[], options: SpawnOptions = {}): SpawnedProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: 'pipe' })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const exited = new Promise<number | string>(resolve => {
    child.on('exit', (code, signal) => { resolve(code ?? signal ?? 'unknown') })
  })
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  onTestFinished(async (context) => {
    await kill()
    if (context.task.result?.state === 'fail' && err.length > 0) {
      process.stderr.write(`--- stderr of ${options.name ?? command} ---\n${err}\n`)
    }
  })
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    write: (text: string) => { child.stdin.write(text) },
    kill
  }
}

/** Starts a built Node script (`dist/...js`) the way the lab does. */
export function spawnNode (script: string, args: string[], options: SpawnOptions = {}): SpawnedProcess {
  return spawnProcess(process.execPath, [script, ...args], options)
}
