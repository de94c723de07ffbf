/**
 * Timeouts of cloudhsm_mgmt_util, with their units in the names, and the environment variables
 * that override them (a command-line flag overrides both).
 */
import { REQUEST_TIMEOUT_MS } from '@hsmlab/protocol'

export const cmuDefaults = {
  /**
   * How long a command waits for one HSM before it reports that server as failed, in milliseconds.
   * Flag `--request-timeout-ms`, variable `HSMLAB_CMU_REQUEST_TIMEOUT_MS`. @default 30000
   */
  requestTimeoutMs: REQUEST_TIMEOUT_MS,
  /**
   * How long start-up waits for each HSM's connection and handshake, in milliseconds.
   * Flag `--connect-timeout-ms`, variable `HSMLAB_CMU_CONNECT_TIMEOUT_MS`. @default 5000
   */
  connectTimeoutMs: 5_000
} as const

/** Environment variable overriding `requestTimeoutMs`. */
export const CMU_REQUEST_TIMEOUT_ENV = 'HSMLAB_CMU_REQUEST_TIMEOUT_MS'
/** Environment variable overriding `connectTimeoutMs`. */
export const CMU_CONNECT_TIMEOUT_ENV = 'HSMLAB_CMU_CONNECT_TIMEOUT_MS'
