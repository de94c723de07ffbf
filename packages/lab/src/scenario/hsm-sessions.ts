/**
 * Logged-in connections to the HSMs of a lab, through the client library and the clusters' CMU
 * configurations (so through whatever the lab puts between a client and an HSM: the fault proxy).
 * One connection per (HSM, user), opened and logged in on first use and again after it closed;
 * each workload client has its own pool, as each application would have its own sessions.
 *
 * `session()` throws `SessionError` when it cannot connect or log in: nothing of the operation
 * that wanted it was sent, so that operation failed for sure.
 */
import { readFile } from 'node:fs/promises'
import { HsmConnection, readCmuConfig } from '@hsmlab/client'
import type { ServerConfig } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import type { UserType } from '@hsmlab/protocol'

/** Opening or logging in a session failed; nothing was sent on it. */
export class SessionError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'SessionError'
  }
}

/** The HSMs of one cluster, in server order (the order of its CMU configuration). */
export interface ClusterServers {
  ref: string
  servers: ServerConfig[]
}

/** Reads the servers of every cluster from their CMU configurations. */
export async function readClusterServers (configs: Map<string, string>): Promise<Map<string, ClusterServers>> {
  const out = new Map<string, ClusterServers>()
  for (const [ref, file] of configs) out.set(ref, { ref, servers: (await readCmuConfig(file)).servers })
  return out
}

/** A user to log in as. */
export interface Credential {
  type: UserType
  name: string
  password: string
}

/** Options of `HsmSessions`. */
export interface HsmSessionsOptions {
  connectTimeoutMs: number
  requestTimeoutMs: number
}

/** A pool of logged-in connections; see the module comment. */
export class HsmSessions {
  private readonly clusters: Map<string, ClusterServers>
  private readonly options: HsmSessionsOptions
  private readonly open = new Map<string, Promise<HsmConnection>>()
  private readonly anchors = new Map<string, Promise<Uint8Array>>()
  private closed = false

  constructor (clusters: Map<string, ClusterServers>, options: HsmSessionsOptions) {
    this.clusters = clusters
    this.options = options
  }

  /** The number of HSMs of a cluster. */
  size (cluster: string): number {
    return this.clusters.get(cluster)?.servers.length ?? 0
  }

  /** A connection to server `server` of `cluster`, logged in as `user`. */
  async session (cluster: string, server: number, user: Credential): Promise<HsmConnection> {
    if (this.closed) throw new SessionError('the run is over: no more sessions')
    const key = `${cluster}#${server}#${user.type}:${user.name}`
    const existing = this.open.get(key)
    if (existing !== undefined) {
      const connection = await existing.catch(() => undefined)
      if (connection !== undefined && !connection.closed) return connection
      this.open.delete(key)
    }
    const opening = this.connect(cluster, server, user)
    this.open.set(key, opening)
    try {
      return await opening
    } catch (err) {
      if (this.open.get(key) === opening) this.open.delete(key)
      throw err
    }
  }

  /** Drops a session, so that the next use opens a new one. */
  async drop (cluster: string, server: number, user: Credential): Promise<void> {
    const key = `${cluster}#${server}#${user.type}:${user.name}`
    const existing = this.open.get(key)
    this.open.delete(key)
    const connection = await existing?.catch(() => undefined)
    await connection?.close()
  }

  /** Closes every connection; later `session()` calls fail. */
  async close (): Promise<void> {
    this.closed = true
    const all = [...this.open.values()]
    this.open.clear()
    await Promise.all(all.map(async p => { await (await p.catch(() => undefined))?.close() }))
  }

  private async anchorOf (file: string): Promise<Uint8Array> {
    let anchor = this.anchors.get(file)
    if (anchor === undefined) {
      anchor = readFile(file, 'utf8').then(decodeTrustAnchor)
      this.anchors.set(file, anchor)
    }
    return await anchor
  }

  private async connect (cluster: string, server: number, user: Credential): Promise<HsmConnection> {
    const config = this.clusters.get(cluster)?.servers[server]
    if (config === undefined) throw new SessionError(`${cluster} has no server ${server}`)
    let connection: HsmConnection
    try {
      connection = await HsmConnection.connect({
        url: `ws://${config.hostname}:${config.port}`,
        trustAnchor: await this.anchorOf(config.caFile),
        connectTimeoutMs: this.options.connectTimeoutMs,
        requestTimeoutMs: this.options.requestTimeoutMs
      })
    } catch (err) {
      throw new SessionError(`cannot connect to ${cluster}/hsm-${server}: ${describeError(err)}`, { cause: err })
    }
    try {
      await connection.call('login', { userType: user.type, userName: user.name, password: user.password })
    } catch (err) {
      await connection.close()
      throw new SessionError(`cannot log in to ${cluster}/hsm-${server} as ${user.type} ${user.name}: ${describeError(err)}`, { cause: err })
    }
    if (this.closed) {
      await connection.close()
      throw new SessionError('the run is over: no more sessions')
    }
    return connection
  }
}

/** `[CODE] message` for an error with a code, else its message; never empty. */
export function describeError (err: unknown): string {
  const e = err as { code?: unknown, message?: unknown }
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err)
  return typeof e?.code === 'string' && e.code !== '' ? `[${e.code}] ${message}` : message
}
