/**
 * `FaultClient`: a typed client of the fault proxy's HTTP API for the lab and tests: Toxiproxy's
 * calls (proxies, populate, toxics, reset) and hsmlab's (partition, blackhole, heal, faults).
 * Names are percent-encoded, so `us-east-1/primary/hsm-0` and `wan/us-east-1->us-west-2` work.
 * Updates use PATCH (Toxiproxy deprecated POST for them in 2.6.0).
 */
import { request as httpRequest } from 'node:http'
import { faultProxyDefaults } from './defaults.js'
import { FAULT_ERR_API, FAULT_ERR_HTTP, FAULT_ERR_TIMEOUT, FaultError } from './errors.js'
import type { FaultsJson } from './proxy-collection.js'
import type { ProxyJson } from './proxy.js'
import type { ToxicJson, ToxicType } from './toxic.js'

/** Options of `FaultClient`. */
export interface FaultClientOptions {
  /** Base URL of the API, `http://127.0.0.1:8474`. */
  url: string
  /** How long to wait for each answer, in milliseconds. @default 10000 */
  requestTimeoutMs?: number
}

/** A proxy to create. */
export interface CreateProxyInput {
  name: string
  /** `host:port`; port 0 picks a free port, reported in the answer's `listen`. */
  listen: string
  upstream: string
  /** @default true */
  enabled?: boolean
  /** hsmlab groups (`partition(group)` cuts every proxy of a group); the name's `/` prefixes are groups too. */
  groups?: string[]
}

/** Changes to a proxy; what is left out stays. */
export interface UpdateProxyInput {
  listen?: string
  upstream?: string
  enabled?: boolean
  groups?: string[]
}

/** A toxic to add. */
export interface AddToxicInput {
  /** @default `<type>_<stream>` */
  name?: string
  type: ToxicType
  /** @default 'downstream' */
  stream?: 'upstream' | 'downstream'
  /** Probability that it applies to a connection. @default 1 */
  toxicity?: number
  attributes?: Record<string, number>
}

/** Changes to a toxic; attributes left out keep their values. */
export interface UpdateToxicInput {
  toxicity?: number
  attributes?: Record<string, number>
}

function encodeName (name: string): string {
  return encodeURIComponent(name)
}

export class FaultClient {
  readonly url: string
  readonly #timeoutMs: number

  constructor (options: FaultClientOptions) {
    this.url = options.url.replace(/\/+$/, '')
    this.#timeoutMs = options.requestTimeoutMs ?? faultProxyDefaults.requestTimeoutMs
  }

  /**
   * One request and its whole answer. node:http rather than fetch: a process's first fetch loads
   * and compiles undici, tens of milliseconds that `hsmlab up` and each `hsmlab fault` would wait.
   */
  async #send (method: string, path: string, body: string | undefined): Promise<{ status: number, text: string }> {
    return await new Promise((resolve, reject) => {
      const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
      const req = httpRequest(`${this.url}${path}`, { method, headers }, res => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { text += chunk })
        res.on('end', () => { clearTimeout(timer); resolve({ status: res.statusCode ?? 0, text }) })
        res.on('error', fail)
        res.on('close', () => { if (!res.complete) fail(new Error('the connection closed before the whole answer arrived')) })
      })
      const timer = setTimeout(() => { req.destroy(Object.assign(new Error('timed out'), { name: 'TimeoutError' })) }, this.#timeoutMs)
      function fail (err: Error): void {
        clearTimeout(timer)
        reject(err)
      }
      req.on('error', fail)
      req.end(body)
    })
  }

  async #request<T> (method: string, path: string, body?: unknown): Promise<T> {
    let res: { status: number, text: string }
    try {
      res = await this.#send(method, path, body === undefined ? undefined : JSON.stringify(body))
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') {
        throw new FaultError(FAULT_ERR_TIMEOUT, `${method} ${path}: no answer from the fault proxy at ${this.url} within ${this.#timeoutMs} ms`, { cause: err })
      }
      throw new FaultError(FAULT_ERR_HTTP, `${method} ${path}: cannot reach the fault proxy at ${this.url}: ${(err as Error).message}; is it running?`, { cause: err })
    }
    const { text } = res
    let data: unknown
    if (text.trim() !== '') {
      try {
        data = JSON.parse(text)
      } catch (err) {
        throw new FaultError(FAULT_ERR_HTTP, `${method} ${path}: the fault proxy answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`, { cause: err })
      }
    }
    if (res.status < 200 || res.status > 299) {
      const apiMessage = typeof (data as { error?: unknown } | undefined)?.error === 'string' ? (data as { error: string }).error : text.trim()
      throw new FaultError(FAULT_ERR_API, `${method} ${path}: ${res.status} ${apiMessage}`, { statusCode: res.status, apiMessage })
    }
    return data as T
  }

  /** Every proxy, by name. */
  async list (): Promise<Record<string, ProxyJson>> {
    return await this.#request('GET', '/proxies')
  }

  async getProxy (name: string): Promise<ProxyJson> {
    return await this.#request('GET', `/proxies/${encodeName(name)}`)
  }

  async createProxy (input: CreateProxyInput): Promise<ProxyJson> {
    const { groups, ...rest } = input
    return await this.#request('POST', '/proxies', { ...rest, ...(groups === undefined ? {} : { hsmlab: { groups } }) })
  }

  /** Creates the proxies, or replaces those whose listen or upstream differ. */
  async populate (proxies: CreateProxyInput[]): Promise<ProxyJson[]> {
    const body = proxies.map(({ groups, ...rest }) => ({ ...rest, ...(groups === undefined ? {} : { hsmlab: { groups } }) }))
    const answer = await this.#request<{ proxies: ProxyJson[] | null }>('POST', '/populate', body)
    return answer.proxies ?? []
  }

  async updateProxy (name: string, input: UpdateProxyInput): Promise<ProxyJson> {
    const { groups, ...rest } = input
    return await this.#request('PATCH', `/proxies/${encodeName(name)}`, { ...rest, ...(groups === undefined ? {} : { hsmlab: { groups } }) })
  }

  async enable (name: string): Promise<ProxyJson> {
    return await this.updateProxy(name, { enabled: true })
  }

  /** Stops listening and closes the proxy's connections. */
  async disable (name: string): Promise<ProxyJson> {
    return await this.updateProxy(name, { enabled: false })
  }

  async deleteProxy (name: string): Promise<void> {
    await this.#request('DELETE', `/proxies/${encodeName(name)}`)
  }

  async listToxics (proxy: string): Promise<ToxicJson[]> {
    return await this.#request('GET', `/proxies/${encodeName(proxy)}/toxics`)
  }

  async addToxic (proxy: string, toxic: AddToxicInput): Promise<ToxicJson> {
    return await this.#request('POST', `/proxies/${encodeName(proxy)}/toxics`, toxic)
  }

  async updateToxic (proxy: string, toxic: string, input: UpdateToxicInput): Promise<ToxicJson> {
    return await this.#request('PATCH', `/proxies/${encodeName(proxy)}/toxics/${encodeName(toxic)}`, input)
  }

  async removeToxic (proxy: string, toxic: string): Promise<void> {
    await this.#request('DELETE', `/proxies/${encodeName(proxy)}/toxics/${encodeName(toxic)}`)
  }

  /** Toxiproxy's reset: every proxy enabled, every toxic removed (partitions stay). */
  async reset (): Promise<void> {
    await this.#request('POST', '/reset')
  }

  async version (): Promise<string> {
    return (await this.#request<{ version: string }>('GET', '/version')).version
  }

  /** The seed of the server's PRNG. */
  async seed (): Promise<number> {
    return (await this.#request<{ seed: number }>('GET', '/hsmlab/seed')).seed
  }

  /** Partitions a group: connections reset, new ones refused, until healed. Resolves with the proxies cut. */
  async partition (group: string): Promise<string[]> {
    return (await this.#request<{ proxies: string[] }>('POST', '/hsmlab/partition', { group })).proxies
  }

  /** Blackholes a group: data dropped both ways, connections left open, until healed. */
  async blackhole (group: string): Promise<string[]> {
    return (await this.#request<{ proxies: string[] }>('POST', '/hsmlab/blackhole', { group })).proxies
  }

  /** Heals one group's partition and blackhole, or, without a group, every fault (and every toxic). */
  async heal (group?: string): Promise<string[]> {
    return (await this.#request<{ proxies: string[] }>('POST', '/hsmlab/heal', group === undefined ? {} : { group })).proxies
  }

  /** What is set now. */
  async faults (): Promise<FaultsJson> {
    return await this.#request('GET', '/hsmlab/faults')
  }

  /** True when nothing is set (Vortex's `is_healed`). */
  async isHealed (): Promise<boolean> {
    return (await this.faults()).healed
  }
}
