import { readFile } from 'node:fs/promises'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import type { OperationArgs, OperationName, OperationResult } from '@hsmlab/protocol'
import { ClientError, CLIENT_ERR_CLOSED, CLIENT_ERR_CONFIG } from './errors.js'
import { HsmConnection } from './hsm-connection.js'
import type { ServerConfig } from './cmu-config.js'

/** One server of a cluster client: its place in the configuration and its connection, if any. */
export interface ServerEntry {
  /** The server id: its index in the configuration. */
  id: number
  config: ServerConfig
  connection?: HsmConnection
  /** Why there is no connection. */
  error?: Error
}

/** What one server answered to a fanned-out call. */
export type ServerOutcome<O extends OperationName> =
  | { server: ServerEntry, ok: true, result: OperationResult<O> }
  | { server: ServerEntry, ok: false, error: Error }

/** Options of `ClusterClient.open`. */
export interface ClusterClientOptions {
  connectTimeoutMs?: number
  requestTimeoutMs?: number
  /** Called as each server's connection attempt ends, in configuration order (for CMU's startup trace). */
  onServer?: (entry: ServerEntry) => void
}

/**
 * Connections to every HSM a configuration lists, in its order: what CMU and KMU stand on. A
 * server that cannot be reached stays in the list with its error, so commands can report it.
 */
export class ClusterClient {
  readonly servers: ServerEntry[]

  private constructor (servers: ServerEntry[]) {
    this.servers = servers
  }

  /** Connects to every enabled server in parallel; never throws for an unreachable server. */
  static async open (configs: ServerConfig[], options: ClusterClientOptions = {}): Promise<ClusterClient> {
    const anchors = new Map<string, Uint8Array>()
    const anchorFor = async (file: string): Promise<Uint8Array> => {
      let anchor = anchors.get(file)
      if (anchor === undefined) {
        try {
          anchor = decodeTrustAnchor(await readFile(file, 'utf8'))
        } catch (err) {
          throw new ClientError(CLIENT_ERR_CONFIG, `cannot read the trust anchor ${file}: ${(err as Error).message}`, { cause: err })
        }
        anchors.set(file, anchor)
      }
      return anchor
    }
    const attempts = configs.map(async (config, id): Promise<ServerEntry> => {
      if (!config.enabled) return { id, config, error: new ClientError(CLIENT_ERR_CONFIG, `server ${id} is disabled in the configuration`) }
      try {
        const connection = await HsmConnection.connect({
          url: `ws://${config.hostname}:${config.port}`,
          trustAnchor: await anchorFor(config.caFile),
          connectTimeoutMs: options.connectTimeoutMs,
          requestTimeoutMs: options.requestTimeoutMs
        })
        return { id, config, connection }
      } catch (err) {
        return { id, config, error: err as Error }
      }
    })
    const servers: ServerEntry[] = []
    for (const attempt of attempts) {
      const entry = await attempt
      options.onServer?.(entry)
      servers.push(entry)
    }
    return new ClusterClient(servers)
  }

  /** Servers with an open connection. */
  connected (): ServerEntry[] {
    return this.servers.filter(s => s.connection !== undefined && !s.connection.closed)
  }

  /** One call on one server. */
  async call<O extends OperationName> (serverId: number, op: O, args: OperationArgs<O>, options: { timeoutMs?: number } = {}): Promise<OperationResult<O>> {
    const server = this.servers[serverId]
    if (server === undefined) throw new ClientError(CLIENT_ERR_CONFIG, `there is no server ${serverId}`)
    if (server.connection === undefined) throw server.error ?? new ClientError(CLIENT_ERR_CLOSED, `server ${serverId} is not connected`)
    return await server.connection.call(op, args, options)
  }

  /** The same call on several servers at once (default: every server), outcomes in server order. */
  async fanOut<O extends OperationName> (op: O, args: OperationArgs<O>, serverIds?: number[], options: { timeoutMs?: number } = {}): Promise<Array<ServerOutcome<O>>> {
    const targets = serverIds === undefined ? this.servers : serverIds.map(id => this.servers[id]).filter((s): s is ServerEntry => s !== undefined)
    return await Promise.all(targets.map(async (server): Promise<ServerOutcome<O>> => {
      try {
        return { server, ok: true, result: await this.call(server.id, op, args, options) }
      } catch (err) {
        return { server, ok: false, error: err as Error }
      }
    }))
  }

  /** Closes every connection. */
  async close (): Promise<void> {
    await Promise.all(this.servers.map(async s => { await s.connection?.close() }))
  }
}
