/**
 * Connections from the control plane to its HSMs, over the same encrypted channel clients use,
 * checked against each cluster's trust anchor. One connection per HSM is kept and reused; a
 * closed one is opened again on the next call.
 */
import { HsmConnection } from '@hsmlab/client'
import type { OperationArgs, OperationName, OperationResult } from '@hsmlab/protocol'
import type { AnchorKeyring } from './anchor-keyring.js'

/** Where an HSM answers and who it must be. */
export interface HsmAddress {
  hsmId: string
  clusterId: string
  url: string
  anchorPublicKey: Uint8Array
}

/** A cache of HsmConnection, one per HSM. */
export class HsmLinks {
  private readonly connections = new Map<string, { url: string, connection: Promise<HsmConnection> }>()
  private readonly requestTimeoutMs: number

  constructor (requestTimeoutMs: number) {
    this.requestTimeoutMs = requestTimeoutMs
  }

  private async connect (to: HsmAddress): Promise<HsmConnection> {
    const cached = this.connections.get(to.hsmId)
    if (cached !== undefined && cached.url === to.url) {
      const connection = await cached.connection.catch(() => undefined)
      if (connection !== undefined && !connection.closed) return connection
    }
    if (cached !== undefined) this.drop(to.hsmId)
    const connection = HsmConnection.connect({
      url: to.url,
      trustAnchor: to.anchorPublicKey,
      expectedClusterId: to.clusterId,
      connectTimeoutMs: 5_000,
      requestTimeoutMs: this.requestTimeoutMs
    }).then(async c => {
      if (c.hsmId !== to.hsmId) {
        await c.close()
        throw new Error(`${to.url} answers as ${c.hsmId}, not ${to.hsmId}`)
      }
      return c
    })
    this.connections.set(to.hsmId, { url: to.url, connection })
    connection.catch(() => { if (this.connections.get(to.hsmId)?.connection === connection) this.connections.delete(to.hsmId) })
    return await connection
  }

  /** The connection to the HSM (opened first if needed). */
  async session (to: HsmAddress): Promise<HsmConnection> {
    return await this.connect(to)
  }

  /** Calls `op` on the HSM (connecting first if needed). */
  async call<O extends OperationName> (to: HsmAddress, op: O, args: OperationArgs<O>, timeoutMs?: number): Promise<OperationResult<O>> {
    const connection = await this.connect(to)
    return await connection.call(op, args, timeoutMs === undefined ? {} : { timeoutMs })
  }

  /** Closes and forgets the connection to one HSM. */
  drop (hsmId: string): void {
    const cached = this.connections.get(hsmId)
    this.connections.delete(hsmId)
    void cached?.connection.then(async c => { await c.close() }, () => {})
  }

  /** Closes every connection. */
  async closeAll (): Promise<void> {
    const all = [...this.connections.values()]
    this.connections.clear()
    await Promise.allSettled(all.map(async c => { await (await c.connection).close() }))
  }
}

/** What the reconcilers use of `HsmLinks` (a test hands them a fake). */
export type HsmCaller = Pick<HsmLinks, 'call' | 'drop'>

/**
 * Calls to HSMs for the synchronisation tasks (issue 12): the sync* operations need a session
 * elevated by `syncHello`, the trust anchor's signature over the HSM's id and the time. Each
 * connection is elevated once, before its first such call; a connection opened again (the old
 * one closed) is a new session and is elevated again.
 */
export class SyncSessions {
  private readonly links: Pick<HsmLinks, 'session'>
  private readonly keyring: Pick<AnchorKeyring, 'signSyncHello'>
  private readonly elevated = new WeakSet<HsmConnection>()

  constructor (links: Pick<HsmLinks, 'session'>, keyring: Pick<AnchorKeyring, 'signSyncHello'>) {
    this.links = links
    this.keyring = keyring
  }

  /** Calls `op` on the HSM in a session elevated by syncHello. */
  async call<O extends OperationName> (to: HsmAddress, op: O, args: OperationArgs<O>, timeoutMs?: number): Promise<OperationResult<O>> {
    const connection = await this.links.session(to)
    if (!this.elevated.has(connection)) {
      const requestedAtMs = Date.now()
      await connection.call('syncHello', { requestedAtMs, signature: this.keyring.signSyncHello(to.clusterId, to.hsmId, requestedAtMs) })
      this.elevated.add(connection)
    }
    return await connection.call(op, args, timeoutMs === undefined ? {} : { timeoutMs })
  }
}

/** What the synchronisation service uses to reach HSMs (a test hands it a fake). */
export type SyncHsmCaller = Pick<SyncSessions, 'call'>
