/**
 * Every limit, timeout and default of the lab, with its unit in the name. Options of `labUp`,
 * `labStatus` and `labDown` and the flags of `hsmlab` fall back to these.
 */
import { fileURLToPath } from 'node:url'

export const labDefaults = {
  /** Lab directory, relative to the working directory. @default '.hsmlab' */
  dir: '.hsmlab',
  /** How long one HSM may take from spawn to its ready line, in milliseconds. @default 15000 */
  readyTimeoutMs: 15_000,
  /** How often the launcher reads an HSM's stdout file for the ready line, in milliseconds. @default 10 */
  readyPollIntervalMs: 10,
  /** How long `down` waits after SIGTERM before it sends SIGKILL, in milliseconds. @default 7000 */
  stopTimeoutMs: 7_000,
  /** How often `down` checks whether a stopped process is gone, in milliseconds. @default 20 */
  stopPollIntervalMs: 20,
  /** Connect-and-handshake deadline of the liveness probe (`status`, `up`), in milliseconds. @default 2000 */
  probeTimeoutMs: 2_000,
  /** Deadline of one request the lab sends to an HSM (setPeers, activation), in milliseconds. @default 10000 */
  requestTimeoutMs: 10_000,
  /** HSMs per cluster (reference F.7: "from 1 to 28 HSMs"). @default 28 */
  hsmsPerClusterMax: 28,
  /**
   * Log level of the HSM processes (their stderr goes to a log file in the lab directory):
   * warnings and errors only, so that the files stay small and still say why an HSM died.
   * @default 'warn'
   */
  hsmLogLevel: 'warn',
  /** Lines of an HSM's log quoted in an error when it fails to start. @default 20 */
  logTailLines: 20
} as const

/** The default lab: one region, one activated cluster of three HSMs, one crypto user. */
export const DEFAULT_TOPOLOGY_PATH = fileURLToPath(new URL('../topologies/default.json', import.meta.url))

/** Name of the lab's state file inside DIR. */
export const STATE_FILE_NAME = 'lab.json'

/** Name of the manufacturer key file inside DIR. */
export const MANUFACTURER_KEY_FILE_NAME = 'manufacturer.key'

/** Name of the KMU configuration inside DIR (KMU's default when it is given no `--config`). */
export const KMU_CONFIG_FILE_NAME = 'key_mgmt_util.cfg'
