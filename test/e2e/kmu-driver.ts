/**
 * Drives the real key_mgmt_util bin for end-to-end tests: `kmuOnce` runs one invocation to its
 * end (singlecmd, or a whole piped session); `KmuShell` keeps one interactive session open and
 * sends it one command line at a time, returning what that command printed (everything up to the
 * next `Command:` prompt). Every process is killed when the test ends (`spawnNode`).
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
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

/**
 * Replays a transcript of the AWS guide through `shell` and compares what KMU prints line for
 * line. The transcript holds `Command: <line>` entries, each followed by the output the guide
 * shows, and `$  cat <file>` entries followed by the file's content (read from `cwd`).
 * The guide's own pages indent the same line with a tab, 7, 8 or 16 spaces, or not at all, so
 * each line is compared without its leading and trailing blanks; blank lines count.
 * Placeholders stand for the lab's values: `{h:name}` a number, bound at its first occurrence and
 * the same number after (also in later command lines); `{hex}` hexadecimal digits; `{*}` anything.
 * Lines starting with `#` are comments (where the fixture comes from, what it changes).
 */
export async function replayTranscript (shell: KmuShell, cwd: string, transcript: string, readFile: (path: string) => string): Promise<void> {
  const bound = new Map<string, string>()
  const entries: Array<{ kind: 'command' | 'cat', arg: string, expected: string[] }> = []
  for (const line of transcript.split('\n')) {
    if (line.startsWith('#')) continue
    const command = /^\s*Command:\s+(.*)$/.exec(line)
    const cat = /^\$\s+cat\s+(.*)$/.exec(line)
    if (command !== null) entries.push({ kind: 'command', arg: command[1]!.trim(), expected: [] })
    else if (cat !== null) entries.push({ kind: 'cat', arg: cat[1]!.trim(), expected: [] })
    else entries.at(-1)?.expected.push(line)
  }
  const fill = (text: string): string => text.replace(/\{h:(\w+)\}/g, (_, name: string) => {
    const value = bound.get(name)
    if (value === undefined) throw new Error(`placeholder {h:${name}} used before it was bound`)
    return value
  })
  const trimBlank = (lines: string[]): string[] => {
    const out = lines.map(l => l.trim())
    while (out.at(-1) === '') out.pop()
    return out
  }
  for (const entry of entries) {
    const arg = fill(entry.arg)
    const actualText = entry.kind === 'command' ? await shell.run(arg) : readFile(join(cwd, arg))
    // A cat shows the file from its first line; a command's output starts with the blank line it prints.
    const actual = trimBlank(actualText.split('\n'))
    const expected = trimBlank(entry.expected)
    if (entry.kind === 'cat') while (expected[0] === '') expected.shift()
    const where = `${entry.kind === 'command' ? 'Command:' : '$ cat'} ${arg}`
    expect(actual.length, `${where}: line count\n--- printed:\n${actual.join('\n')}\n--- guide:\n${expected.join('\n')}`).toBe(expected.length)
    expected.forEach((want, i) => {
      const names: string[] = []
      const pattern = want.split(/(\{h:\w+\}|\{hex\}|\{\*\})/).map(part => {
        const ph = /^\{h:(\w+)\}$/.exec(part)
        if (ph !== null) {
          const value = bound.get(ph[1]!)
          if (value !== undefined) return value
          names.push(ph[1]!)
          return '(\\d+)'
        }
        if (part === '{hex}') return '[0-9a-f]+'
        if (part === '{*}') return '.*'
        return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      }).join('')
      const match = new RegExp(`^${pattern}$`).exec(actual[i] ?? '')
      expect(match, `${where}, line ${i + 1}\n  printed: ${actual[i] ?? ''}\n  guide:   ${want}`).not.toBeNull()
      names.forEach((name, n) => bound.set(name, match![n + 1]!))
    })
  }
}
