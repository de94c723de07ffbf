/**
 * @packageDocumentation
 * hsmlab's fault proxy: TCP proxies whose faults are set at run time through Toxiproxy's HTTP
 * API (same routes, status codes, bodies and defaults, so toxiproxy-cli, the Go client and
 * toxiproxy-node-client work against it), with hsmlab's extensions: one seeded PRNG for every
 * random draw, proxy groups, and group partitions, blackholes and heal under `/hsmlab/`.
 * `hsmlab-fault-proxy` (`FAULT_PROXY_BIN_PATH`) runs one as a process; `startFaultProxy` runs
 * one in process; `FaultClient` drives the API. See docs/faults.md.
 *
 * @example
 * ```ts
 * import { FaultClient, startFaultProxy } from '@hsmlab/fault-proxy'
 * const server = await startFaultProxy({ host: '127.0.0.1', port: 0, seed: 42 })
 * const faults = new FaultClient({ url: server.url })
 * const proxy = await faults.createProxy({ name: 'us-east-1/primary/hsm-0', listen: '127.0.0.1:0', upstream: '127.0.0.1:2225' })
 * await faults.addToxic(proxy.name, { type: 'latency', attributes: { latency: 50, jitter: 10 } })
 * await faults.partition('us-east-1')
 * await faults.heal()
 * await server.stop()
 * ```
 */
import { fileURLToPath } from 'node:url'

/** Absolute path of the built `hsmlab-fault-proxy` script (`dist/bin/fault-proxy.js`), for `node FAULT_PROXY_BIN_PATH ...`. */
export const FAULT_PROXY_BIN_PATH: string = fileURLToPath(new URL('../dist/bin/fault-proxy.js', import.meta.url))

export { startFaultProxy } from './fault-proxy.js'
export type { FaultProxy, FaultProxyOptions } from './fault-proxy.js'
export { FaultClient } from './fault-client.js'
export type { AddToxicInput, CreateProxyInput, FaultClientOptions, UpdateProxyInput, UpdateToxicInput } from './fault-client.js'
export { effectiveGroups } from './proxy.js'
export type { ProxyJson } from './proxy.js'
export type { FaultsJson, ProxyFaultsJson } from './proxy-collection.js'
export { TOXIC_TYPES } from './toxic.js'
export type { Direction, ToxicAttributes, ToxicJson, ToxicType } from './toxic.js'
export { Prng, randomSeed, isValidSeed } from './prng.js'
export { FAULT_PROXY_CHANNELS } from './diagnostics.js'
export type { ConnectionEvent, DrawEvent, FaultEvent } from './diagnostics.js'
export { faultProxyDefaults } from './defaults.js'
export { createLogger, LOG_LEVELS } from './logger.js'
export type { Logger } from './logger.js'
export {
  FaultError, FAULT_PROXY_ERROR_CODES, FAULT_ERR_API, FAULT_ERR_CONFIG, FAULT_ERR_HTTP, FAULT_ERR_INVALID_ARGUMENT, FAULT_ERR_LISTEN,
  FAULT_ERR_TIMEOUT
} from './errors.js'
