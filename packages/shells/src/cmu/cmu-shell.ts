/**
 * cloudhsm_mgmt_util (CMU): `runCmu(argv, streams)` reads the configuration, connects to every
 * HSM it lists (printing the start-up trace of reference A.3), then reads commands until `quit` or
 * the end of input. Commands and the answers to its prompts come from one input, so a whole session
 * can be piped in; when input is not a terminal, what is read is echoed after the prompt (passwords
 * excepted) so that the output reads like the AWS examples (`aws-cloudhsm>listUsers`).
 *
 * docs/cmu.md describes every format and every choice made where the AWS documentation is silent.
 */
import { ClusterClient, readCmuConfig } from '@hsmlab/client'
import type { ClusterClientOptions, ServerConfig, ServerEntry } from '@hsmlab/client'
import type { OperationArgs, OperationName } from '@hsmlab/protocol'
import { resolveAbbreviation } from '../abbreviation.js'
import { splitCommandLine } from '../command-line.js'
import { ConsoleIo } from '../console-io.js'
import type { ConsoleStreams } from '../console-io.js'
import type { CallOutcome, CmuCluster, CmuCommand, CmuContext, ServerOutcome } from './command.js'
import { UsageError } from './command.js'
import { CMU_CONNECT_TIMEOUT_ENV, CMU_REQUEST_TIMEOUT_ENV, cmuDefaults } from './defaults.js'
import { describeConnectFailure, describeFailure } from './failures.js'
import {
  CAUTION_BANNER, CONFIRM_INVALID, CONFIRM_PROMPT, GLOBAL_PROMPT, STARTUP_BANNER, connectedLine, connectingLine,
  connectionFailedLine, invalidChoice, serverLabel, serverPrompt
} from './format.js'
import { KEY_COMMANDS } from './key-commands.js'
import { QUORUM_COMMANDS } from './quorum-commands.js'
import { SESSION_COMMANDS } from './session-commands.js'
import { USER_COMMANDS } from './user-commands.js'

/** Every CMU command, in the order `help` lists them. */
export const CMU_COMMANDS: readonly CmuCommand[] = [...USER_COMMANDS, ...KEY_COMMANDS, ...QUORUM_COMMANDS, ...SESSION_COMMANDS]

/** Collaborators of `runCmu`, replaced in tests. */
export interface CmuComponents {
  /** Opens the cluster. @default ClusterClient.open */
  openCluster?: (servers: ServerConfig[], options: ClusterClientOptions) => Promise<CmuCluster>
  /** Where configuration and usage errors go. @default process.stderr */
  errorOutput?: NodeJS.WritableStream
  /** Environment for the timeout variables. @default process.env */
  env?: NodeJS.ProcessEnv
}

const USAGE = 'Usage: cloudhsm_mgmt_util <configuration file> [--request-timeout-ms <ms>] [--connect-timeout-ms <ms>]'

interface CmuOptions {
  configPath: string
  requestTimeoutMs: number
  connectTimeoutMs: number
}

function positiveMs (text: string | undefined, what: string): number {
  const value = Number(text)
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${what} must be a positive number of milliseconds, not '${text ?? ''}'`)
  }
  return value
}

/** Reads argv: one configuration path, optional timeout flags; throws UsageError. */
function parseArgv (argv: readonly string[], env: NodeJS.ProcessEnv): CmuOptions | 'help' {
  const envMs = (name: string, fallback: number): number => env[name] === undefined || env[name] === '' ? fallback : positiveMs(env[name], name)
  let requestTimeoutMs = envMs(CMU_REQUEST_TIMEOUT_ENV, cmuDefaults.requestTimeoutMs)
  let connectTimeoutMs = envMs(CMU_CONNECT_TIMEOUT_ENV, cmuDefaults.connectTimeoutMs)
  const positional: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '-h' || arg === '--help') return 'help'
    if (arg === '--request-timeout-ms') requestTimeoutMs = positiveMs(argv[++i], arg)
    else if (arg === '--connect-timeout-ms') connectTimeoutMs = positiveMs(argv[++i], arg)
    else if (arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`)
    else positional.push(arg)
  }
  if (positional.length !== 1) {
    throw new UsageError(positional.length === 0 ? 'the configuration file is missing' : `one configuration file expected, ${positional.length} given`)
  }
  return { configPath: positional[0] as string, requestTimeoutMs, connectTimeoutMs }
}

/**
 * Runs cloudhsm_mgmt_util with `argv` (the arguments after the program name) on `streams`, and
 * resolves with the exit code: 0 after `quit` or the end of input, 1 when the configuration is
 * missing or unreadable (the reason goes to standard error).
 */
export async function runCmu (argv: string[], streams: ConsoleStreams, components: CmuComponents = {}): Promise<number> {
  const errorOutput = components.errorOutput ?? process.stderr
  let options: CmuOptions
  try {
    const parsed = parseArgv(argv, components.env ?? process.env)
    if (parsed === 'help') {
      streams.output.write(`${USAGE}\n`)
      return 0
    }
    options = parsed
  } catch (err) {
    errorOutput.write(`cloudhsm_mgmt_util: ${(err as Error).message}\n${USAGE}\n`)
    return 1
  }
  let servers: ServerConfig[]
  try {
    servers = (await readCmuConfig(options.configPath)).servers
  } catch (err) {
    errorOutput.write(`cloudhsm_mgmt_util: ${(err as Error).message}\n`)
    return 1
  }

  const io = new ConsoleIo(streams)
  const open = components.openCluster ?? (async (configs, clusterOptions) => await ClusterClient.open(configs, clusterOptions))
  let cluster: CmuCluster | undefined
  try {
    for (const line of STARTUP_BANNER) io.println(line)
    cluster = await open(servers, {
      connectTimeoutMs: options.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs,
      onServer: entry => { printTrace(io, entry) }
    })
    await new CmuShell(io, cluster, options.requestTimeoutMs).run()
    return 0
  } finally {
    await cluster?.close()
    io.close()
  }
}

/** One server's block of the start-up trace; servers with `"enable": "no"` are skipped silently. */
function printTrace (io: ConsoleIo, entry: ServerEntry): void {
  const { name, hostname, port, enabled } = entry.config
  if (!enabled) return
  io.println()
  io.println(connectingLine(name, hostname, port))
  if (entry.connection !== undefined) io.println(connectedLine(name, hostname, port))
  else io.println(connectionFailedLine(hostname, port, describeConnectFailure(entry.error)))
}

/** The read-run loop and what commands may ask of it (`CmuContext`). */
class CmuShell implements CmuContext {
  readonly commands = CMU_COMMANDS
  serverMode: number | undefined
  private readonly names = CMU_COMMANDS.map(c => c.name)

  constructor (private readonly io: ConsoleIo, private readonly cluster: CmuCluster, private readonly requestTimeoutMs: number) {}

  get servers (): readonly ServerEntry[] {
    return this.cluster.servers
  }

  async run (): Promise<void> {
    for (;;) {
      const line = await this.ask(this.serverMode === undefined ? GLOBAL_PROMPT : serverPrompt(this.serverMode))
      const result = line === undefined
        ? await this.runCommand('quit', [])
        : await this.runLine(line)
      if (result === 'quit') return
    }
  }

  private async runLine (line: string): Promise<'quit' | void> {
    const split = splitCommandLine(line)
    if (!split.ok) {
      this.println(`Error: ${split.error}`)
      return
    }
    const [typed, ...args] = split.words
    if (typed === undefined) return
    const match = resolveAbbreviation(typed, this.names)
    if (match.kind === 'unknown') {
      this.println(`Unknown command '${typed}'. Type 'help' for the list of commands.`)
      return
    }
    if (match.kind === 'ambiguous') {
      this.println(`Ambiguous command '${typed}': it could be ${match.candidates.join(', ')}`)
      return
    }
    if (args.length === 1 && args[0] === '-h') return await this.runCommand('help', [match.name])
    return await this.runCommand(match.name, args)
  }

  private async runCommand (name: string, args: string[]): Promise<'quit' | void> {
    const command = CMU_COMMANDS.find(c => c.name === name)
    if (command === undefined) return
    try {
      if (command.needsServers !== false && this.targets().length === 0) {
        this.println(`${command.name} failed: no server is connected`)
        return
      }
      return await command.run(this, args)
    } catch (err) {
      if (err instanceof UsageError) {
        this.printLines([`Error: ${err.message}`, `Usage: ${command.syntax}`])
      } else {
        this.println(`${command.name} failed: ${(err as Error).message}`)
      }
    }
  }

  // ---- CmuContext ----

  println (line = ''): void {
    this.io.println(line)
  }

  printLines (lines: readonly string[]): void {
    for (const line of lines) this.io.println(line)
  }

  async ask (prompt: string): Promise<string | undefined> {
    const line = await this.io.readLine(prompt)
    if (line === undefined) this.io.println()
    else if (!this.io.terminal) this.io.println(line)
    return line
  }

  async askSecret (prompt: string): Promise<string | undefined> {
    const line = await this.io.readSecret(prompt)
    if (!this.io.terminal) this.io.println()
    return line
  }

  async confirm (leadingBlank: boolean): Promise<boolean> {
    if (leadingBlank) this.println()
    this.printLines([...CAUTION_BANNER, ''])
    for (;;) {
      // The answer is echoed (piped input) only when it is y or n: the guide's createUser
      // examples show `Do you want to continue(y/n)?Invalid option, please type 'y' or 'n'`,
      // the reply itself not shown.
      const answer = await this.io.readLine(CONFIRM_PROMPT)
      if (answer === undefined) {
        this.io.println()
        return false
      }
      const a = answer.trim()
      const valid = a === 'y' || a === 'Y' || a === 'n' || a === 'N'
      if (valid) {
        if (!this.io.terminal) this.io.println(answer)
        return a === 'y' || a === 'Y'
      }
      this.printLines([CONFIRM_INVALID, ''])
    }
  }

  async choose<L extends string> (prompt: string, letters: readonly L[], atEnd: L): Promise<L> {
    for (;;) {
      const answer = await this.ask(prompt)
      if (answer === undefined) return atEnd
      const letter = letters.find(l => l.toLowerCase() === answer.trim().toLowerCase())
      if (letter !== undefined) return letter
      this.printLines([invalidChoice(letters), ''])
    }
  }

  targets (): ServerEntry[] {
    if (this.serverMode !== undefined) {
      const entry = this.servers[this.serverMode]
      return entry === undefined ? [] : [entry]
    }
    return this.servers.filter(s => s.connection !== undefined)
  }

  label (server: ServerEntry): string {
    return serverLabel(server.id, server.config.name)
  }

  async call<O extends OperationName> (server: ServerEntry, op: O, args: OperationArgs<O>): Promise<CallOutcome<O>> {
    try {
      return { ok: true, result: await this.cluster.call(server.id, op, args) }
    } catch (err) {
      return { ok: false, failure: describeFailure(err, this.requestTimeoutMs) }
    }
  }

  async fanOut<O extends OperationName> (op: O, args: OperationArgs<O>, servers?: readonly ServerEntry[]): Promise<Array<ServerOutcome<O>>> {
    return await Promise.all((servers ?? this.targets()).map(async server => ({
      server,
      label: this.label(server),
      outcome: await this.call(server, op, args)
    })))
  }

  enterServerMode (id: number): void {
    this.serverMode = id
  }

  exitServerMode (): void {
    this.serverMode = undefined
  }
}
