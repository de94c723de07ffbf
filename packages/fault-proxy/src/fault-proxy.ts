/**
 * `startFaultProxy`: a Toxiproxy-compatible fault proxy server in this process: the HTTP API on
 * `host:port`, the proxies it creates, and the seeded PRNG every random draw comes from.
 */
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { createApiServer, readPopulateInputs } from './api-server.js'
import { faultProxyDefaults } from './defaults.js'
import { FAULT_ERR_CONFIG, FAULT_ERR_INVALID_ARGUMENT, FAULT_ERR_LISTEN, FaultError } from './errors.js'
import { joinHostPort } from './address.js'
import { ApiError } from './go-json.js'
import { forComponent, silentLogger } from './logger.js'
import type { Logger } from './logger.js'
import { ProxyCollection } from './proxy-collection.js'
import { isValidSeed, randomSeed } from './prng.js'

/** Options of `startFaultProxy`. */
export interface FaultProxyOptions {
  /** Address the HTTP API binds. @default '127.0.0.1' */
  host?: string
  /** Port the HTTP API binds; 0 lets the system choose (read it from `port`). @default 8474 */
  port?: number
  /** Seed of the PRNG every random draw comes from (a safe integer). @default a random one, reported in `seed` */
  seed?: number
  /** Root logger; modules log under `hsmlab:fault-proxy:*`. @default silent */
  logger?: Logger
  /** A JSON file holding an array of proxies (a `POST /populate` body) to create at start. */
  config?: string
  /** See `faultProxyDefaults.linkBufferBytesMax`. @default 4194304 */
  linkBufferBytesMax?: number
  /** See `faultProxyDefaults.linkReadBufferBytes`. @default 262144 */
  linkReadBufferBytes?: number
  /** See `faultProxyDefaults.apiBodyBytesMax`. @default 1048576 */
  apiBodyBytesMax?: number
  /** See `faultProxyDefaults.apiHeadersTimeoutMs`. @default 10000 */
  apiHeadersTimeoutMs?: number
  /** See `faultProxyDefaults.apiRequestTimeoutMs`; raised to `apiHeadersTimeoutMs` when below it. @default 30000 */
  apiRequestTimeoutMs?: number
}

/** A running fault proxy server. */
export interface FaultProxy {
  /** Base URL of the HTTP API, `http://127.0.0.1:<port>`. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** The seed in use: the one given, or the random one chosen. Replay a run with it. */
  readonly seed: number
  /** Stops the API and every proxy, closing their connections; safe to call twice. */
  stop: () => Promise<void>
}

function urlHost (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return host.includes(':') ? `[${host}]` : host
}

function positiveInteger (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new FaultError(FAULT_ERR_INVALID_ARGUMENT, `${name} must be a positive integer, not ${String(value)}`)
  return value
}

/** Starts a fault proxy server; resolves once its API listens (and its `config` is populated). */
export async function startFaultProxy (options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const host = options.host ?? faultProxyDefaults.host
  const port = options.port ?? faultProxyDefaults.port
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new FaultError(FAULT_ERR_INVALID_ARGUMENT, `port must be an integer from 0 to 65535, not ${String(port)}`)
  }
  if (options.seed !== undefined && !isValidSeed(options.seed)) {
    throw new FaultError(FAULT_ERR_INVALID_ARGUMENT, `seed must be an integer of at most 2^53 - 1 in absolute value, not ${String(options.seed)}`)
  }
  const seed = options.seed ?? randomSeed()
  const root = options.logger ?? silentLogger()
  const log = forComponent(root, 'server')
  const collection = new ProxyCollection({
    seed,
    logger: forComponent(root, 'proxy'),
    bufferBytesMax: positiveInteger('linkBufferBytesMax', options.linkBufferBytesMax, faultProxyDefaults.linkBufferBytesMax),
    readBufferBytes: positiveInteger('linkReadBufferBytes', options.linkReadBufferBytes, faultProxyDefaults.linkReadBufferBytes)
  })
  const headersTimeoutMs = positiveInteger('apiHeadersTimeoutMs', options.apiHeadersTimeoutMs, faultProxyDefaults.apiHeadersTimeoutMs)
  const server = createApiServer({
    collection,
    logger: forComponent(root, 'api'),
    bodyBytesMax: positiveInteger('apiBodyBytesMax', options.apiBodyBytesMax, faultProxyDefaults.apiBodyBytesMax),
    headersTimeoutMs,
    // Node refuses a request timeout below the headers timeout; the headers are part of the request.
    requestTimeoutMs: Math.max(headersTimeoutMs, positiveInteger('apiRequestTimeoutMs', options.apiRequestTimeoutMs, faultProxyDefaults.apiRequestTimeoutMs)),
    toxiproxyVersion: faultProxyDefaults.toxiproxyVersion
  })
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new FaultError(FAULT_ERR_LISTEN, `the fault proxy API cannot listen on ${joinHostPort(host, port)}: ${err.message}; choose another --host/--port (0 picks a free port)`, { cause: err }))
    }
    server.once('error', onError)
    server.listen({ host, port }, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const actualPort = (server.address() as AddressInfo).port
  const url = `http://${urlHost(host)}:${actualPort}`
  collection.serverUrl = url

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
      server.closeAllConnections()
      await collection.exclusive(async () => { await collection.stopAll() })
      await closed
      log.info('fault proxy stopped')
    })()
    await stopping
  }

  if (options.config !== undefined) {
    try {
      const text = await readFile(options.config, 'utf8')
      const inputs = readPopulateInputs(JSON.parse(text) as unknown)
      const proxies = await collection.exclusive(async () => await collection.populate(inputs))
      log.info({ config: options.config, proxies: proxies.length }, 'populated proxies from file')
    } catch (err) {
      await stop()
      const detail = err instanceof ApiError ? `${err.message} (status ${err.status})` : (err as Error).message
      throw new FaultError(FAULT_ERR_CONFIG, `cannot populate proxies from ${options.config}: ${detail}; it must hold a JSON array of {name, listen, upstream, enabled?}`, { cause: err })
    }
  }

  log.info({ url, seed }, `fault proxy listening; replay its random draws with --seed ${seed}`)
  return { url, host, port: actualPort, seed, stop }
}
