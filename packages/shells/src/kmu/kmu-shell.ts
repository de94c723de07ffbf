/**
 * `key_mgmt_util [--config CFG] [singlecmd [loginHSM ...] <command> ...]`: reads the cluster's
 * configuration (the CMU file shape), connects to every HSM it lists (standing in for the
 * CloudHSM client daemon), then either runs one command line (`singlecmd`) or reads commands at
 * the `Command:` prompt until `exit` or the end of input.
 */
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { ClusterClient, readCmuConfig } from '@hsmlab/client'
import type { CmuConfig } from '@hsmlab/client'
import { splitCommandLine } from '../command-line.js'
import type { CommandLineWords } from '../command-line.js'
import { ConsoleIo } from '../console-io.js'
import type { ConsoleStreams } from '../console-io.js'
import { LOCAL_FAILURE } from './kmu-args.js'
import type { KmuIo } from './kmu-context.js'
import { KmuSession } from './kmu-session.js'
import type { CommandOutcome } from './kmu-session.js'

/** Where key_mgmt_util reads and writes. */
export interface KmuStreams extends ConsoleStreams {
  /** Where startup failures (no configuration, no HSM reachable) are reported. @default output */
  error?: NodeJS.WritableStream
  /** Directory for the default configuration and for relative file names. @default process.cwd() */
  cwd?: string
}

/** The configuration `hsmlab up` writes for the lab's first cluster, relative to the working directory. */
export const KMU_DEFAULT_CONFIG = '.hsmlab/key_mgmt_util.cfg'

/** The prompt, as the real tool prints it: a blank line, `Command:` and two spaces. */
export const KMU_PROMPT = '\nCommand:  '

const INVOCATION = `Usage: key_mgmt_util [--config <file>] [singlecmd [loginHSM -u CU -s <user> -p <password>] <command> [<args>]]

  --config <file>  the cluster's configuration, in the shape of cloudhsm_mgmt_util.cfg
                   (default: ./${KMU_DEFAULT_CONFIG}, which \`npx hsmlab up\` writes for the
                   lab's first cluster)
  singlecmd ...    run one command, optionally after logging in, and exit with 0 when it
                   succeeded, 1 when it failed

Without singlecmd, key_mgmt_util reads commands at its Command: prompt until exit.
`

/** Line input and output for a session; input is opened only when something is read. */
class KmuConsole implements KmuIo {
  private readonly streams: ConsoleStreams
  /** Echo what was read, so that a piped session's output reads like a typed one. */
  private readonly echo: boolean
  private io: ConsoleIo | undefined

  constructor (streams: ConsoleStreams) {
    this.streams = streams
    this.echo = !(streams.terminal ?? ((streams.output as { isTTY?: boolean }).isTTY === true))
  }

  write (text: string): void {
    this.streams.output.write(text)
  }

  async readLine (prompt: string): Promise<string | undefined> {
    const line = await this.console().readLine(this.lastLineOf(prompt))
    if (this.echo && line !== undefined) this.write(`${line}\n`)
    return line
  }

  async readSecret (prompt: string): Promise<string | undefined> {
    const line = await this.console().readSecret(this.lastLineOf(prompt))
    if (this.echo && line !== undefined) this.write('\n')
    return line
  }

  /**
   * Writes a prompt's leading lines itself and returns its last line: at a terminal readline
   * redraws the prompt, and a prompt holding a newline would make it move up over (and erase)
   * the last line of the previous command's output.
   */
  private lastLineOf (prompt: string): string {
    const cut = prompt.lastIndexOf('\n') + 1
    if (cut > 0) this.write(prompt.slice(0, cut))
    return prompt.slice(cut)
  }

  close (): void {
    this.io?.close()
  }

  private console (): ConsoleIo {
    this.io ??= new ConsoleIo(this.streams)
    return this.io
  }
}

/**
 * Splits a command line into words with the shells' shared rules (command-line.ts): on spaces,
 * as the real tool does, plus quoting (`-l "my key"`) as an hsmlab extension.
 */
export function splitKmuLine (line: string): CommandLineWords {
  return splitCommandLine(line)
}

/** The tokens of a leading `loginHSM -u .. -s .. -p ..` (its flags, in any order), and the rest. */
export function splitSingleCommand (tokens: readonly string[]): { login: string[], command: string[] } {
  if (tokens[0] !== 'loginHSM') return { login: [], command: [...tokens] }
  let i = 1
  while (i < tokens.length) {
    const token = tokens[i]
    if (token === '-u' || token === '-s' || token === '-p') i += 2
    else if (token === '-hpswd') i += 1
    else break
  }
  return { login: tokens.slice(0, i), command: tokens.slice(i) }
}

interface Invocation {
  configPath?: string
  single?: string[]
}

function parseInvocation (argv: readonly string[]): Invocation | { help: true } | { error: string } {
  let configPath: string | undefined
  let i = 0
  for (; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '-h' || arg === '--help') return { help: true }
    if (arg === '--config') {
      configPath = argv[i + 1]
      if (configPath === undefined) return { error: '--config needs a file name' }
      i++
    } else if (arg.startsWith('--config=')) {
      configPath = arg.slice('--config='.length)
    } else {
      break
    }
  }
  let rest = argv.slice(i)
  // The AWS genSymKey page runs `key_mgmt_util Cfm3Util singlecmd ...`: the tool's old name is accepted.
  if (rest[0] === 'Cfm3Util') rest = rest.slice(1)
  if (rest.length === 0) return configPath === undefined ? {} : { configPath }
  if (rest[0] !== 'singlecmd') return { error: `unknown command line arguments: ${rest.join(' ')}` }
  if (rest.length === 1) return { error: 'singlecmd needs a command' }
  return { ...(configPath === undefined ? {} : { configPath }), single: rest.slice(1) }
}

async function loadConfig (path: string | undefined, cwd: string): Promise<CmuConfig | string> {
  if (path === undefined) {
    const fallback = resolve(cwd, KMU_DEFAULT_CONFIG)
    if (!existsSync(fallback)) {
      return `no cluster configuration: ./${KMU_DEFAULT_CONFIG} does not exist.\n` +
        'Start a lab with `npx hsmlab up` (it writes that file for the lab\'s first cluster), or pass\n' +
        '--config <file> naming a configuration in the cloudhsm_mgmt_util.cfg shape.'
    }
    path = fallback
  }
  try {
    return await readCmuConfig(resolve(cwd, path))
  } catch (err) {
    return (err as Error).message
  }
}

/**
 * Runs key_mgmt_util with the arguments after the program name; resolves with the exit code
 * (0, or 1 when it could not start or a singlecmd command failed).
 */
export async function runKmu (argv: readonly string[], streams: KmuStreams): Promise<number> {
  const errors = streams.error ?? streams.output
  const cwd = streams.cwd ?? process.cwd()
  const invocation = parseInvocation(argv)
  if ('help' in invocation) {
    streams.output.write(INVOCATION)
    return 0
  }
  if ('error' in invocation) {
    errors.write(`key_mgmt_util: ${invocation.error}\n\n${INVOCATION}`)
    return 1
  }
  const config = await loadConfig(invocation.configPath, cwd)
  if (typeof config === 'string') {
    errors.write(`key_mgmt_util: ${config}\n`)
    return 1
  }
  let cluster: ClusterClient
  try {
    cluster = await ClusterClient.open(config.servers)
  } catch (err) {
    errors.write(`key_mgmt_util: ${(err as Error).message}\n`)
    return 1
  }
  const io = new KmuConsole(streams)
  try {
    if (cluster.connected().length === 0) {
      let text = '\n\tDaemon socket connection error\n\n' +
        `key_mgmt_util: none of the HSMs listed in ${config.path} could be reached:\n`
      for (const server of cluster.servers) {
        text += `  server ${server.id} (${server.config.name}, ${server.config.hostname}:${server.config.port}): ${server.error?.message ?? 'not connected'}\n`
      }
      errors.write(`${text}Is the lab running? Check with \`npx hsmlab status\`, or start it with \`npx hsmlab up\`.\n`)
      return 1
    }
    const session = new KmuSession(cluster, io, { cwd })
    const run = async (tokens: string[]): Promise<CommandOutcome> => {
      try {
        return await session.execute(tokens)
      } catch (err) {
        io.write(`\n\tError: ${(err as Error).message}\n`)
        return { exit: false, code: LOCAL_FAILURE }
      }
    }
    if (invocation.single !== undefined) {
      const { login, command } = splitSingleCommand(invocation.single)
      if (login.length > 0) {
        const outcome = await run(login)
        if (outcome.code !== 0 || command.length === 0) return outcome.code === 0 ? 0 : 1
      }
      io.write(`Command:  ${command.join(' ')}\n`)
      return (await run(command)).code === 0 ? 0 : 1
    }
    for (;;) {
      const line = await io.readLine(KMU_PROMPT)
      if (line === undefined) {
        io.write('\n')
        return 0
      }
      const words = splitKmuLine(line)
      if (!words.ok) {
        io.write(`\n\tError: ${words.error}.\n`)
        continue
      }
      if ((await run(words.words)).exit) return 0
    }
  } finally {
    io.close()
    await cluster.close()
  }
}
