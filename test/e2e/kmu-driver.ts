/**
 * Drives the real key_mgmt_util bin for end-to-end tests: `kmuOnce` runs one invocation to its
 * end (singlecmd, or a whole piped session); `KmuShell` keeps one interactive session open and
 * sends it one command line at a time, returning what that command printed (everything up to the
 * next `Command:` prompt). Every process is killed when the test ends (`spawnNode`).
 */
import { fileURLToPath } from 'node:url'
import { spawnNode, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'

/** The committed launcher of the bin, as `npx key_mgmt_util` runs it. */
export const KMU_BIN: string = fileURLToPath(new URL('../../packages/shells/bin/key_mgmt_util.js', import.meta.url))

const PROMPT = '\nCommand:  '

/** How one run of key_mgmt_util ended. */
export interface KmuRun {
  code: number | string
  out: string
  err: string
}

/** Runs key_mgmt_util with `args` and `input` on standard input, to its end. */
export async function kmuOnce (cwd: string, args: string[], input = ''): Promise<KmuRun> {
  const child = spawnNode(KMU_BIN, args, { cwd, name: 'key_mgmt_util' })
  child.child.stdin.end(input)
  const code = await child.exited
  return { code, out: child.stdout(), err: child.stderr() }
}

/** One interactive key_mgmt_util session. */
export class KmuShell {
  private readonly child: SpawnedProcess

  private constructor (child: SpawnedProcess) {
    this.child = child
  }

  /** Starts key_mgmt_util and waits for its first prompt. */
  static async start (cwd: string, args: string[] = []): Promise<KmuShell> {
    const child = spawnNode(KMU_BIN, args, { cwd, name: 'key_mgmt_util' })
    await waitFor(() => child.stdout().endsWith(PROMPT), { what: `the first Command: prompt (stdout: ${child.stdout()} stderr: ${child.stderr()})`, timeoutMs: 20_000 })
    return new KmuShell(child)
  }

  /** Sends one command line (and the answers to its prompts); resolves with what it printed. */
  async run (line: string, answers: string[] = []): Promise<string> {
    const start = this.child.stdout().length
    this.child.write([line, ...answers].map(l => `${l}\n`).join(''))
    const printed = await waitFor(() => {
      const text = this.child.stdout().slice(start)
      return text.endsWith(PROMPT) ? text : undefined
    }, { what: `the output of '${line}'`, timeoutMs: 60_000 })
    // The session echoes the line it read (its input is not a terminal); drop it and the prompt.
    return printed.slice(printed.indexOf('\n') + 1, -PROMPT.length)
  }

  /** Types exit and resolves with the exit code. */
  async exit (): Promise<number | string> {
    this.child.write('exit\n')
    return await this.child.exited
  }
}

/** The number in `<label> <number>` of a KMU output, e.g. `Key Handle: 6`. */
export function numberAfter (text: string, label: string): number {
  const match = new RegExp(`${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*(\\d+)`).exec(text)
  if (match === null) throw new Error(`no '${label} <number>' in:\n${text}`)
  return Number(match[1])
}
