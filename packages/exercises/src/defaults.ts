/**
 * Every limit of the exercises, with its unit in its name.
 */
import { fileURLToPath } from 'node:url'

/** The folder of the exercises that ship with hsmlab (one folder per exercise). */
export const EXERCISES_DIR: string = fileURLToPath(new URL('../exercises', import.meta.url))

export const exerciseDefaults = {
  /** The lab directory, as `hsmlab` has it. @default '.hsmlab' */
  dir: '.hsmlab',
  /** How long one step's check may take before it is reported as not run. @default 5000 */
  checkTimeoutMs: 5000,
  /** How long a connection to one HSM may take to open, for a check or a setup step. @default 3000 */
  connectTimeoutMs: 3000,
  /** How long one request to an HSM may take, for a check or a setup step. @default 10000 */
  requestTimeoutMs: 10_000,
  /** How long a setup step waits for a state (a key on every HSM, a backup READY, an HSM gone). @default 30000 */
  setupWaitMs: 30_000,
  /** How often a setup step polls while it waits. @default 50 */
  setupPollMs: 50,
  /**
   * A check never tries a password on an HSM where the user has this many failed logins or more:
   * its own attempt must not be the one that locks the user out (the HSMs lock at 5). @default 4
   */
  loginFailuresTriedMax: 4
} as const
