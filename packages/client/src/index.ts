/**
 * @packageDocumentation
 * The typed client library: one encrypted connection per HSM, checked against the cluster's
 * trust anchor; a cluster client that opens every HSM a CMU configuration lists, in its order.
 * The shells (CMU, KMU), the lab and HSM-to-HSM replication are built on it.
 *
 * @example
 * ```ts
 * import { ClusterClient, readCmuConfig } from '@hsmlab/client'
 * const config = await readCmuConfig('.hsmlab/us-east-1-primary.cfg')
 * const cluster = await ClusterClient.open(config.servers)
 * const outcomes = await cluster.fanOut('listUsers', {})
 * await cluster.close()
 * ```
 */
export {
  ClientError, CLIENT_ERR_BUSY, CLIENT_ERR_CLOSED, CLIENT_ERR_CONFIG, CLIENT_ERR_CONNECT, CLIENT_ERR_TIMEOUT, CLIENT_ERR_UNTRUSTED
} from './errors.js'
export { HsmConnection } from './hsm-connection.js'
export type { ConnectOptions } from './hsm-connection.js'
export { ClusterClient } from './cluster-client.js'
export type { ClusterClientOptions, ServerEntry, ServerOutcome } from './cluster-client.js'
export { readCmuConfig, writeCmuConfig } from './cmu-config.js'
export type { CmuConfig, ServerConfig } from './cmu-config.js'
export { WireError } from '@hsmlab/protocol'
