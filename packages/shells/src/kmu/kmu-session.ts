/**
 * One key_mgmt_util session: the connections to the cluster's HSMs (standing in for the client
 * daemon) and the dispatch of one command line at a time. Key operations go to one HSM, the
 * first reachable one in configuration order (replicating token keys is the HSM's job);
 * loginHSM, logoutHSM and listUsers go to every HSM.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { CLIENT_ERR_TIMEOUT } from '@hsmlab/client'
import type { ClusterClient, ServerEntry } from '@hsmlab/client'
import { ReturnCode } from '@hsmlab/protocol'
import type { OperationArgs, OperationName, OperationResult } from '@hsmlab/protocol'
import { LOCAL_FAILURE, errorLine, parseFlags } from './kmu-args.js'
import { COMMANDS } from './kmu-commands.js'
import type { NodeStatus } from './kmu-format.js'
import { HELP_TEXT, UNSIMULATED_COMMANDS, USAGE } from './kmu-usage.js'
import { writePrivateFile } from '../private-file.js'

/** What KMU needs of a cluster client (tests pass a fake of this shape). */
export type KmuCluster = Pick<ClusterClient, 'servers' | 'connected' | 'call' | 'fanOut'>

/** Where a session writes and asks. */
export interface KmuIo {
  write: (text: string) => void
  /** Prints `prompt` and reads one line of input (undefined at end of input). */
  readLine: (prompt: string) => Promise<string | undefined>
  /** Like readLine, for a password. */
  readSecret: (prompt: string) => Promise<string | undefined>
}

/** Options of a session. */
export interface KmuSessionOptions {
  /** Directory relative file names (-out, -f) are resolved against. @default process.cwd() */
  cwd?: string
}

/** What running one command line gave. */
export interface CommandOutcome {
  /** The command was `exit`. */
  exit: boolean
  /** The return code the command ended with: 0 for success (parse errors count as failures). */
  code: number
}

/** The return code KMU prints for a failed call: the HSM's, or a cluster error when none came. */
export function returnCodeOf (err: unknown): number {
  const e = err as { status?: unknown, code?: unknown } | undefined
  if (typeof e?.status === 'number') return e.status
  if (e?.code === CLIENT_ERR_TIMEOUT) return ReturnCode.SERVER_UNREACHABLE.code
  return ReturnCode.CLUSTER_SERVER_UNAVAILABLE.code
}

/** A call's result, or the return code it failed with. */
export type CallOutcome<O extends OperationName> = { ok: true, result: OperationResult<O> } | { ok: false, code: number }

/** What command handlers work with. */
export class KmuContext {
  readonly io: KmuIo
  private readonly cluster: KmuCluster
  private readonly cwd: string
  /** The server the last `call` went to: the node that answers first in the status block. */
  private lastTarget: number | undefined

  constructor (cluster: KmuCluster, io: KmuIo, cwd: string) {
    this.cluster = cluster
    this.io = io
    this.cwd = cwd
  }

  write (text: string): void {
    this.io.write(text)
  }

  /** Servers the configuration enables: the nodes of the cluster status block. */
  nodes (): ServerEntry[] {
    return this.cluster.servers.filter(s => s.config.enabled)
  }

  private isConnected (server: ServerEntry): boolean {
    return this.cluster.connected().some(s => s.id === server.id)
  }

  /**
   * Node statuses after an operation sent to one HSM, in the order the real tool's nodes answer:
   * the HSM that served it first. A session key lives on that HSM alone (`sessionOnly`), so only
   * it is listed; otherwise the operation reaches every node (the HSM replicates token keys, as
   * the real client does), so the other connected nodes follow with the same code, in
   * configuration order, and unreachable ones last with 0x30000085 (server in cluster is unavailable).
   */
  nodesAfter (code: number, sessionOnly = false): NodeStatus[] {
    const unavailable = ReturnCode.CLUSTER_SERVER_UNAVAILABLE.code
    const target = this.lastTarget
    const first: NodeStatus[] = target === undefined ? [] : [{ nodeId: target, code }]
    if (sessionOnly && target !== undefined) return first
    const others = this.nodes().filter(s => s.id !== target)
    return [
      ...first,
      ...others.filter(s => this.isConnected(s)).map(s => ({ nodeId: s.id, code })),
      ...others.filter(s => !this.isConnected(s)).map(s => ({ nodeId: s.id, code: unavailable }))
    ]
  }

  /** Sends one operation to the first reachable HSM. */
  async call<O extends OperationName> (op: O, args: OperationArgs<O>, timeoutMs?: number): Promise<CallOutcome<O>> {
    const target = this.cluster.connected()[0]
    this.lastTarget = target?.id
    if (target === undefined) return { ok: false, code: ReturnCode.CLUSTER_SERVER_UNAVAILABLE.code }
    try {
      return { ok: true, result: await this.cluster.call(target.id, op, args, timeoutMs === undefined ? {} : { timeoutMs }) }
    } catch (err) {
      return { ok: false, code: returnCodeOf(err) }
    }
  }

  /** Sends one operation to every enabled HSM; one outcome per node, in configuration order. */
  async callEach<O extends OperationName> (op: O, args: OperationArgs<O>): Promise<Array<{ nodeId: number } & CallOutcome<O>>> {
    const outcomes = await this.cluster.fanOut(op, args, this.nodes().map(s => s.id))
    return outcomes.map(o => o.ok
      ? { nodeId: o.server.id, ok: true as const, result: o.result }
      : { nodeId: o.server.id, ok: false as const, code: returnCodeOf(o.error) })
  }

  /** A file name as the user typed it, resolved against the working directory. */
  path (file: string): string {
    return resolve(this.cwd, file)
  }

  /** Reads an input file; on failure prints the real tool's warning and returns undefined. */
  async readInput (file: string): Promise<Uint8Array | undefined> {
    try {
      const bytes = new Uint8Array(await readFile(this.path(file)))
      if (bytes.length > 0) return bytes
      this.write(`\n\t ${file} is an empty file.\n`)
    } catch {
      // The real tool says no more than this either.
    }
    this.write(`\n\tWARNING: Failed to read from the file "${file}".\n`)
    return undefined
  }

  /**
   * Writes an output file, overwriting it, readable by its owner only (0600: it may hold a
   * plaintext private key, a wrapped key or a masked object); on failure prints why and returns false.
   */
  async writeOutput (file: string, data: Uint8Array | string): Promise<boolean> {
    try {
      await writePrivateFile(this.path(file), data)
      return true
    } catch (err) {
      this.write(errorLine(`Failed to write to the file "${file}": ${(err as Error).message}`))
      return false
    }
  }
}

/**
 * One key_mgmt_util session over an open cluster client. `execute` runs one command line,
 * already split into tokens, and prints what the real tool prints.
 */
export class KmuSession {
  private readonly context: KmuContext

  constructor (cluster: KmuCluster, io: KmuIo, options: KmuSessionOptions = {}) {
    this.context = new KmuContext(cluster, io, options.cwd ?? process.cwd())
  }

  /** Runs one command; `tokens[0]` is the command name (case-sensitive, as in the real tool). */
  async execute (tokens: readonly string[]): Promise<CommandOutcome> {
    const [name, ...args] = tokens
    const io = this.context.io
    if (name === undefined) return { exit: false, code: 0 }
    if (name === 'exit') return { exit: true, code: 0 }
    if (name === 'help') {
      io.write(HELP_TEXT)
      return { exit: false, code: 0 }
    }
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
    if (command === undefined) {
      if (UNSIMULATED_COMMANDS.includes(name)) {
        io.write(errorLine(`${name} is not simulated by hsmlab's key_mgmt_util. Type help for the list of commands.`))
      } else {
        const like = [...Object.keys(COMMANDS), 'help', 'exit'].find(c => c.toLowerCase() === name.toLowerCase())
        io.write(errorLine(`Unknown command '${name}'.${like === undefined ? '' : ` Did you mean ${like}?`} Type help for the list of commands.`))
      }
      return { exit: false, code: LOCAL_FAILURE }
    }
    const parsed = parseFlags(args, command.flags, command.unsupported)
    if (!parsed.ok) {
      io.write(parsed.error)
      if (parsed.usage) io.write(`${USAGE[name] ?? ''}\n`)
      return { exit: false, code: LOCAL_FAILURE }
    }
    const code = await command.run(this.context, parsed.flags)
    return { exit: false, code }
  }
}
