/**
 * Every limit, timeout and default of the scenario runner, with its unit in the name.
 */
export const scenarioDefaults = {
  /** How long the lab may take to settle once every fault is healed, in milliseconds. @default 30000 */
  settleTimeoutMs: 30_000,
  /** Deadline of each request the workload sends to an HSM or a control plane, in milliseconds. @default 5000 */
  requestTimeoutMs: 5_000,
  /** Deadline of opening a connection to an HSM (connect and handshake), in milliseconds. @default 3000 */
  connectTimeoutMs: 3_000,
  /** Pause of each client before each operation, [min, max] in milliseconds. @default [0, 50] */
  pauseMs: [0, 50] as [number, number],
  /** Clients a stream may have. @default 16 */
  clientsPerStreamMax: 16,
  /** How often the settle phase looks at the lab again, in milliseconds. @default 250 */
  settlePollIntervalMs: 250,
  /** Deadline of each request the settle phase and the observer send, in milliseconds. @default 5000 */
  observeRequestTimeoutMs: 5_000,
  /**
   * How often the runner reads the records of the lab's synchronisation tasks while the workload
   * runs, to see every FAILED record and its cause (invariant sync-failures-have-causes), in
   * milliseconds. @default 250
   */
  syncWatchIntervalMs: 250,
  /** How long a client waits when the operation it picked has nothing to work on yet, in milliseconds. @default 50 */
  idleWaitMs: 50,
  /** Details printed per broken invariant before "... and N more". @default 10 */
  detailsPerInvariantMax: 10
} as const

/** Exit codes of `hsmlab scenario run` (docs/scenarios.md). */
export const SCENARIO_EXIT = {
  /** Every invariant held. */
  PASS: 0,
  /** The scenario file cannot be read or is not a valid scenario; nothing was started. */
  INVALID: 1,
  /** The command line cannot be understood. */
  USAGE: 2,
  /** The runner or the lab failed: the lab did not come up, a process could not be started or killed, the runner threw. */
  CRASH: 3,
  /** The lab did not settle (every HSM ACTIVE, clusters in agreement, copies finished) within settleTimeoutMs after every fault was healed. */
  LIVENESS: 4,
  /** An invariant broke. */
  CORRECTNESS: 5
} as const
