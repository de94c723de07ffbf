/**
 * The shape of a CMU command and what it may ask of the shell. Commands (user-commands.ts,
 * key-commands.ts, session-commands.ts) check their arguments first and throw `UsageError` before
 * anything is sent to an HSM; the shell then prints the reason and the command's syntax.
 */
import type { ServerEntry } from '@hsmlab/client'
import { USER_TYPES } from '@hsmlab/protocol'
import type { OperationArgs, OperationName, OperationResult, UserType } from '@hsmlab/protocol'
import type { Failure } from './failures.js'

/** What CMU needs of a cluster client: `ClusterClient` fits it, and tests give it a fake. */
export interface CmuCluster {
  readonly servers: readonly ServerEntry[]
  call: <O extends OperationName>(serverId: number, op: O, args: OperationArgs<O>) => Promise<OperationResult<O>>
  close: () => Promise<void>
}

/** One server's answer: its result, or why it failed. */
export type CallOutcome<O extends OperationName> =
  | { ok: true, result: OperationResult<O> }
  | { ok: false, failure: Failure }

/** One server's answer to a fanned-out call, with its label (`server 0(name)`). */
export interface ServerOutcome<O extends OperationName> {
  server: ServerEntry
  label: string
  outcome: CallOutcome<O>
}

/** What a command may ask of the shell. */
export interface CmuContext {
  println: (line?: string) => void
  printLines: (lines: readonly string[]) => void
  /** Prints `prompt`, reads one line (echoed when input is piped); undefined at end of input. */
  ask: (prompt: string) => Promise<string | undefined>
  /** Like `ask`, but the answer is never shown. */
  askSecret: (prompt: string) => Promise<string | undefined>
  /** The caution banner and the y/n question; true for y. `leadingBlank` prints a blank line first. */
  confirm: (leadingBlank: boolean) => Promise<boolean>
  /** Asks `prompt` until one of `letters` (case-insensitive) is typed; `atEnd` at end of input. */
  choose: <L extends string>(prompt: string, letters: readonly L[], atEnd: L) => Promise<L>
  /** Every server of the configuration, in its order (index = server id). */
  readonly servers: readonly ServerEntry[]
  /** The server of server mode, or undefined in global mode. */
  readonly serverMode: number | undefined
  /** The servers a command acts on: the server of server mode, or every server connected at start. */
  targets: () => ServerEntry[]
  label: (server: ServerEntry) => string
  /** One call on one server; never throws. */
  call: <O extends OperationName>(server: ServerEntry, op: O, args: OperationArgs<O>) => Promise<CallOutcome<O>>
  /** The same call on every target (or `servers`) at once; outcomes in server order. */
  fanOut: <O extends OperationName>(op: O, args: OperationArgs<O>, servers?: readonly ServerEntry[]) => Promise<Array<ServerOutcome<O>>>
  enterServerMode: (id: number) => void
  exitServerMode: () => void
  /** Every command, for help. */
  readonly commands: readonly CmuCommand[]
}

/** A CMU command. */
export interface CmuCommand {
  /** The name as the AWS documentation spells it. */
  name: string
  /** The syntax line of `help <name>` and of argument errors. */
  syntax: string
  /** One line for `help`. */
  summary: string
  /** False for commands that work without any server (help, quit, listAttributes...). @default true */
  needsServers?: boolean
  /** Runs the command; `'quit'` ends the session. */
  run: (ctx: CmuContext, args: string[]) => Promise<'quit' | void>
}

/** Wrong arguments: the shell prints `Error: <message>` and the command's syntax; nothing was sent. */
export class UsageError extends Error {
  readonly code = 'CMU_USAGE'
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** Checks the number of arguments. */
export function expectArgCount (command: string, args: readonly string[], min: number, max = min): void {
  if (args.length < min || args.length > max) {
    const wanted = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`
    throw new UsageError(`${command} takes ${wanted} argument${wanted === '1' ? '' : 's'}, ${args.length} given`)
  }
}

/** A non-negative decimal integer argument (`0x` hexadecimal too when `hex`). */
export function parseInteger (text: string, what: string, options: { hex?: boolean, max?: number } = {}): number {
  let value: number
  if (/^\d+$/.test(text)) value = Number(text)
  else if (options.hex === true && /^0x[0-9a-f]+$/i.test(text)) value = Number.parseInt(text.slice(2), 16)
  else throw new UsageError(`${what} must be a number, not '${text}'`)
  if (!Number.isSafeInteger(value) || (options.max !== undefined && value > options.max)) {
    throw new UsageError(`${what} ${text} is out of range`)
  }
  return value
}

/** A user type, case-sensitive (reference A.1: "the user type and password are case-sensitive"). */
export function parseUserType (text: string): UserType {
  const found = USER_TYPES.find(t => t === text)
  if (found === undefined) throw new UsageError(`invalid user type '${text}': user types are ${USER_TYPES.join(', ')} (case-sensitive)`)
  return found
}

/** A server id of the configuration, for server, info, syncKey, syncUser. */
export function parseServerId (ctx: CmuContext, text: string): number {
  const id = parseInteger(text, 'the server id')
  if (id >= ctx.servers.length) {
    throw new UsageError(`there is no server ${id}: the configuration lists ${ctx.servers.length === 1 ? 'server 0' : `servers 0 to ${ctx.servers.length - 1}`}`)
  }
  return id
}

/** `<user-type> <user-name> <password | -hpswd> [-2fa <path>]`, the credentials of loginHSM, createUser, changePswd. */
export interface Credentials {
  userType: UserType
  userName: string
  /** Undefined with `-hpswd`: ask for it. */
  password: string | undefined
  twoFactorPath: string | undefined
}

/** Parses credentials arguments (see `Credentials`). */
export function parseCredentials (command: string, args: readonly string[]): Credentials {
  if (args.length !== 3 && args.length !== 5) expectArgCount(command, args, 3)
  if (args.length === 5 && args[3] !== '-2fa') throw new UsageError(`unexpected argument '${args[3] ?? ''}' (only -2fa <path> may follow the password)`)
  const [type = '', userName = '', password = ''] = args
  return {
    userType: parseUserType(type),
    userName,
    password: password === '-hpswd' ? undefined : password,
    twoFactorPath: args[4]
  }
}
