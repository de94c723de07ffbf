/**
 * Every proxy of a fault proxy server, and what is set on them (Toxiproxy's ProxyCollection plus
 * hsmlab's group faults). Mutations run one at a time, in the order their requests arrived, as
 * Toxiproxy's collection lock makes them; a mutation that starts or stops listeners holds the
 * queue until they are done, so two requests never see half a change.
 */
import { connectionChannel, drawChannel, faultChannel } from './diagnostics.js'
import type { ConnectionEvent, DrawEvent, FaultEvent } from './diagnostics.js'
import { ApiError } from './go-json.js'
import type { Logger } from './logger.js'
import { Proxy } from './proxy.js'
import type { ProxyHost } from './proxy.js'
import { Prng } from './prng.js'
import { toxicJson } from './toxic.js'
import type { Toxic, ToxicJson } from './toxic.js'

export const ERR_PROXY_NOT_FOUND = (): ApiError => new ApiError('proxy not found', 404)
export const ERR_PROXY_EXISTS = (): ApiError => new ApiError('proxy already exists', 409)

/** A proxy to create, as read from a create or populate body. */
export interface ProxyInput {
  name: string
  listen: string
  upstream: string
  enabled: boolean
  /** Explicit groups; undefined leaves an existing proxy's groups as they are. */
  groups?: string[]
}

/** The proxy faults of `GET /hsmlab/faults`. */
export interface ProxyFaultsJson {
  enabled: boolean
  listen: string
  upstream: string
  groups: string[]
  partitioned: boolean
  blackholed: boolean
  /** Connections open now. */
  connections: number
  /** Bytes a blackhole dropped on the connections open now. */
  droppedBytes: number
  toxics: ToxicJson[]
}

/** What `GET /hsmlab/faults` answers. */
export interface FaultsJson {
  seed: number
  /** True when nothing is set: no partition, no blackhole, no toxic, every proxy enabled. */
  healed: boolean
  partitions: string[]
  blackholes: string[]
  /** Proxies with something set on them (disabled, partitioned, blackholed or with toxics), by name. */
  proxies: Record<string, ProxyFaultsJson>
}

export class ProxyCollection {
  readonly prng: Prng
  readonly #proxies = new Map<string, Proxy>()
  readonly #partitions = new Set<string>()
  readonly #blackholes = new Set<string>()
  readonly #logger: Logger
  readonly #proxyHost: ProxyHost
  #queue: Promise<unknown> = Promise.resolve()
  /** The API URL, for diagnostics messages; set once the API listens. */
  serverUrl = ''

  constructor (options: { seed: number, logger: Logger, bufferBytesMax: number, readBufferBytes: number }) {
    this.prng = new Prng(options.seed)
    this.#logger = options.logger
    this.#proxyHost = {
      logger: options.logger,
      bufferBytesMax: options.bufferBytesMax,
      readBufferBytes: options.readBufferBytes,
      drawApplied: (proxy, connection, toxic) => this.#drawApplied(proxy, connection, toxic),
      drawInt: (proxy, connection, toxic, kind, n) => this.#drawInt(proxy, connection, toxic, kind, n),
      onConnectionEvent: (proxy, connection, event) => {
        if (connectionChannel.hasSubscribers) {
          connectionChannel.publish({ server: this.serverUrl, proxy, connection, event } satisfies ConnectionEvent)
        }
      }
    }
  }

  /** Runs `task` after every mutation queued before it, and before any queued after. */
  exclusive<T> (task: () => Promise<T> | T): Promise<T> {
    const run = this.#queue.then(task, task)
    this.#queue = run.catch(() => undefined)
    return run
  }

  // Toxicity is drawn only when it decides something: a toxic of toxicity 1 always applies and
  // one of 0 never does (Toxiproxy #603), and neither moves the random sequence.
  #drawApplied (proxy: string, connection: number, toxic: Toxic): boolean {
    if (toxic.toxicity >= 1) return true
    if (!(toxic.toxicity > 0)) return false
    const value = this.prng.nextFloat()
    this.#publishDraw(proxy, connection, toxic, 'toxicity', value)
    return value < toxic.toxicity
  }

  #drawInt (proxy: string, connection: number, toxic: Toxic, kind: 'jitter' | 'slice', n: number): number {
    const value = this.prng.nextInt(n)
    this.#publishDraw(proxy, connection, toxic, kind, value)
    return value
  }

  #publishDraw (proxy: string, connection: number, toxic: Toxic, kind: DrawEvent['kind'], value: number): void {
    if (!drawChannel.hasSubscribers) return
    drawChannel.publish({ server: this.serverUrl, seed: this.prng.seed, proxy, toxic: toxic.name, connection, kind, value } satisfies DrawEvent)
  }

  #publishFault (action: FaultEvent['action'], proxies: string[], group?: string): void {
    this.#logger.info({ action, group, proxies }, 'faults changed')
    if (!faultChannel.hasSubscribers) return
    faultChannel.publish({ server: this.serverUrl, action, ...(group === undefined ? {} : { group }), proxies } satisfies FaultEvent)
  }

  /** Proxies sorted by name (Go marshals a map with sorted keys). */
  list (): Proxy[] {
    return [...this.#proxies.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  has (name: string): boolean {
    return this.#proxies.has(name)
  }

  /** The proxy, or 404 `proxy not found`. */
  get (name: string): Proxy {
    const proxy = this.#proxies.get(name)
    if (proxy === undefined) throw ERR_PROXY_NOT_FOUND()
    return proxy
  }

  #applyGroupFaults (proxy: Proxy): void {
    const groups = proxy.effectiveGroups()
    proxy.setPartitioned(groups.some(g => this.#partitions.has(g)))
    proxy.setBlackholed(groups.some(g => this.#blackholes.has(g)))
  }

  #newProxy (input: ProxyInput): Proxy {
    const proxy = new Proxy(this.#proxyHost, { name: input.name, listen: input.listen, upstream: input.upstream, ...(input.groups === undefined ? {} : { groups: input.groups }) })
    this.#applyGroupFaults(proxy)
    return proxy
  }

  /** `POST /proxies`: 409 when the name is taken; starts it when enabled (500 if it cannot listen). */
  async create (input: ProxyInput): Promise<Proxy> {
    if (this.#proxies.has(input.name)) throw ERR_PROXY_EXISTS()
    const proxy = this.#newProxy(input)
    if (input.enabled) await proxy.start()
    this.#proxies.set(proxy.name, proxy)
    return proxy
  }

  /**
   * `POST /populate`, after validation: each proxy is created, or replaced when its listen or
   * upstream differ (a replaced proxy loses its connections and toxics); one whose listen and
   * upstream are the same is kept as it is (only its hsmlab groups follow the input).
   */
  async populate (inputs: readonly ProxyInput[]): Promise<Proxy[]> {
    const result: Proxy[] = []
    for (const input of inputs) {
      const existing = this.#proxies.get(input.name)
      if (existing !== undefined) {
        if (existing.listen === input.listen && existing.upstream === input.upstream) {
          if (input.groups !== undefined) this.setGroups(existing, input.groups)
          result.push(existing)
          continue
        }
        await existing.stop()
      }
      const proxy = this.#newProxy(input)
      if (input.enabled) await proxy.start()
      this.#proxies.set(proxy.name, proxy)
      result.push(proxy)
    }
    return result
  }

  /** `PATCH /proxies/{name}`: a listen or upstream change restarts it; `enabled` starts or stops it. */
  async update (proxy: Proxy, input: { listen: string, upstream: string, enabled: boolean, groups?: string[] }): Promise<void> {
    if (input.groups !== undefined) this.setGroups(proxy, input.groups)
    if (input.listen !== proxy.listen || input.upstream !== proxy.upstream) {
      await proxy.stop()
      proxy.listen = input.listen
      proxy.upstream = input.upstream
    }
    if (input.enabled !== proxy.enabled) {
      if (input.enabled) await proxy.start()
      else await proxy.stop()
    }
  }

  /** Changes a proxy's explicit groups, and with them the group faults it is under. */
  setGroups (proxy: Proxy, groups: string[]): void {
    proxy.groups = [...groups]
    this.#applyGroupFaults(proxy)
  }

  /** `DELETE /proxies/{name}`. */
  async remove (name: string): Promise<void> {
    const proxy = this.get(name)
    this.#proxies.delete(name)
    await proxy.stop()
  }

  /** `POST /reset`: every proxy enabled again and stripped of its toxics. Group faults stay. */
  async reset (): Promise<void> {
    const names: string[] = []
    for (const proxy of this.list()) {
      await proxy.start()
      proxy.resetToxics()
      names.push(proxy.name)
    }
    this.#publishFault('reset', names)
  }

  #members (group: string): Proxy[] {
    return this.list().filter(p => p.effectiveGroups().includes(group))
  }

  /** Partitions a group: its proxies' connections are reset and new ones refused until healed. */
  partition (group: string): string[] {
    this.#partitions.add(group)
    const members = this.#members(group)
    for (const proxy of members) this.#applyGroupFaults(proxy)
    const names = members.map(p => p.name)
    this.#publishFault('partition', names, group)
    return names
  }

  /** Blackholes a group: data on its proxies is dropped both ways until healed. */
  blackhole (group: string): string[] {
    this.#blackholes.add(group)
    const members = this.#members(group)
    for (const proxy of members) this.#applyGroupFaults(proxy)
    const names = members.map(p => p.name)
    this.#publishFault('blackhole', names, group)
    return names
  }

  /**
   * Heals one group (its partition and blackhole are lifted; toxics stay), or everything: every
   * partition and blackhole lifted, every toxic removed, every proxy enabled (`/reset` and more).
   */
  async heal (group?: string): Promise<string[]> {
    if (group !== undefined) {
      this.#partitions.delete(group)
      this.#blackholes.delete(group)
      const members = this.#members(group)
      for (const proxy of members) this.#applyGroupFaults(proxy)
      const names = members.map(p => p.name)
      this.#publishFault('heal', names, group)
      return names
    }
    this.#partitions.clear()
    this.#blackholes.clear()
    const names: string[] = []
    for (const proxy of this.list()) {
      this.#applyGroupFaults(proxy)
      await proxy.start()
      proxy.resetToxics()
      names.push(proxy.name)
    }
    this.#publishFault('heal', names)
    return names
  }

  /** What is set now (`GET /hsmlab/faults`). */
  faults (): FaultsJson {
    // Keyed by names clients chose: a plain object would take `__proto__` for its prototype.
    const proxies: Record<string, ProxyFaultsJson> = Object.create(null) as Record<string, ProxyFaultsJson>
    let healed = this.#partitions.size === 0 && this.#blackholes.size === 0
    for (const proxy of this.list()) {
      const toxics = proxy.toxics()
      if (proxy.enabled && !proxy.partitioned && !proxy.blackholed && toxics.length === 0) continue
      if (!proxy.enabled || toxics.length > 0) healed = false
      proxies[proxy.name] = {
        enabled: proxy.enabled,
        listen: proxy.listen,
        upstream: proxy.upstream,
        groups: proxy.effectiveGroups(),
        partitioned: proxy.partitioned,
        blackholed: proxy.blackholed,
        connections: proxy.connectionCount(),
        droppedBytes: proxy.droppedBytes(),
        toxics: toxics.map(toxicJson)
      }
    }
    return { seed: this.prng.seed, healed, partitions: [...this.#partitions].sort(), blackholes: [...this.#blackholes].sort(), proxies }
  }

  /** Stops every proxy (the server is shutting down). */
  async stopAll (): Promise<void> {
    await Promise.all([...this.#proxies.values()].map(async proxy => { await proxy.stop() }))
  }
}
