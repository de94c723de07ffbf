/**
 * What key_mgmt_util's command handlers work with: the cluster a session talks to, where it writes
 * and asks, and the calls it makes. Apart from kmu-session.ts, which dispatches to the commands,
 * so that the commands and the session do not import each other.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { CLIENT_ERR_TIMEOUT } from '@hsmlab/client'
import type { ClusterClient, ServerEntry } from '@hsmlab/client'
import { ReturnCode } from '@hsmlab/protocol'
import type { OperationArgs, OperationName, OperationResult } from '@hsmlab/protocol'
import { errorLine } from './kmu-args.js'
import type { NodeStatus } from './kmu-format.js'
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

/** The return code KMU prints for a failed call: the HSM's, or a cluster error when none came. */
export function returnCodeOf (err: unknown): number {
  const e = err as { status?: unknown, code?: unknown } | undefined
  if (typeof e?.status === 'number') return e.status
  if (e?.code === CLIENT_ERR_TIMEOUT) return ReturnCode.SERVER_UNREACHABLE.code
  return ReturnCode.CLUSTER_SERVER_UNAVAILABLE.code
}

/**
 * The HSM's own account of a read-only refusal (naming the primary cluster), printed under the
 * result line; undefined for other failures, whose output stays the guide's exactly.
 */
export function readOnlyDetailOf (err: unknown): string | undefined {
  const e = err as { status?: unknown, detail?: unknown } | undefined
  return e?.status === ReturnCode.SYNC_REPLICA_READ_ONLY.code && typeof e.detail === 'string' && e.detail !== '' ? e.detail : undefined
}

/** A call's result, or the return code it failed with (and the detail of a read-only refusal). */
export type CallOutcome<O extends OperationName> = { ok: true, result: OperationResult<O> } | { ok: false, code: number, detail?: string }

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
      const detail = readOnlyDetailOf(err)
      return { ok: false, code: returnCodeOf(err), ...(detail === undefined ? {} : { detail }) }
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
