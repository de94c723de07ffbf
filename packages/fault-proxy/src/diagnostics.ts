/**
 * Events tests and tools observe without parsing logs (undici's `lib/core/diagnostics.js`):
 * subscribe with `diagnostics_channel.subscribe(name, listener)`. Messages are only built when
 * a channel has subscribers.
 */
import { channel } from 'node:diagnostics_channel'

/** Channel names, `hsmlab:fault-proxy:<event>`. */
export const FAULT_PROXY_CHANNELS = {
  /** One random draw: `{ server, seed, proxy, toxic, connection, kind: 'toxicity' | 'jitter' | 'slice', value }`. */
  draw: 'hsmlab:fault-proxy:draw',
  /** A connection opened or closed: `{ server, proxy, connection, event: 'open' | 'close' | 'refused' | 'upstream-failed' }`. */
  connection: 'hsmlab:fault-proxy:connection',
  /** A fault was set or lifted: `{ server, action: 'partition' | 'blackhole' | 'heal' | 'reset', group?, proxies }`. */
  fault: 'hsmlab:fault-proxy:fault'
} as const

/** A random draw as published on `hsmlab:fault-proxy:draw`. */
export interface DrawEvent {
  /** The API URL of the proxy server that drew it. */
  server: string
  seed: number
  proxy: string
  toxic: string
  /** Connection number within its proxy, from 1. */
  connection: number
  kind: 'toxicity' | 'jitter' | 'slice'
  value: number
}

/** A connection event as published on `hsmlab:fault-proxy:connection`. */
export interface ConnectionEvent {
  server: string
  proxy: string
  connection: number
  event: 'open' | 'close' | 'refused' | 'upstream-failed'
}

/** A fault event as published on `hsmlab:fault-proxy:fault`. */
export interface FaultEvent {
  server: string
  action: 'partition' | 'blackhole' | 'heal' | 'reset'
  group?: string
  proxies: string[]
}

export const drawChannel = channel(FAULT_PROXY_CHANNELS.draw)
export const connectionChannel = channel(FAULT_PROXY_CHANNELS.connection)
export const faultChannel = channel(FAULT_PROXY_CHANNELS.fault)
