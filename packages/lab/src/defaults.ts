/**
 * Every limit, timeout and default of the lab, with its unit in the name. Options of `labUp`,
 * `labStatus` and `labDown` and the flags of `hsmlab` fall back to these.
 */
import { fileURLToPath } from 'node:url'

export const labDefaults = {
  /** Lab directory, relative to the working directory. @default '.hsmlab' */
  dir: '.hsmlab',
  /**
   * How long a control plane may take from spawn to its ready line, or one that runs elsewhere
   * (`up --control-plane`) to answer, in milliseconds. @default 15000
   */
  readyTimeoutMs: 15_000,
  /** How often `up` asks a control plane that runs elsewhere whether it answers yet, in milliseconds. @default 100 */
  externalPollIntervalMs: 100,
  /**
   * How long the launcher waits for a change of a starting control plane's (or fault proxy's)
   * stdout file before it reads the file anyway, in milliseconds: the ready line is read on the
   * change itself; this only matters on a file system that reports no changes. @default 50
   */
  readyFallbackReadMs: 50,
  /**
   * How long one step of building a cluster may take (a state to reach, a backup to be READY, an
   * HSM to be ACTIVE, also after its control plane restarted it), in milliseconds. @default 60000
   */
  stepTimeoutMs: 60_000,
  /** How often `up` asks a control plane whether a state was reached, in milliseconds. @default 20 */
  apiPollIntervalMs: 20,
  /**
   * How soon `up` asks the first time whether a state was reached, in milliseconds; each next wait
   * is twice as long, up to `apiPollIntervalMs`: a step that ends within milliseconds of its call
   * is seen at once, a long one costs no more requests. @default 2
   */
  apiPollFirstIntervalMs: 2,
  /** Deadline of one request to a control plane, in milliseconds. @default 15000 */
  apiRequestTimeoutMs: 15_000,
  /**
   * Time the control planes of a lab spend in CREATE_IN_PROGRESS and INITIALIZE_IN_PROGRESS
   * (`--transition-delay-ms`), in milliseconds: none, so that a lab comes up fast; the states are
   * still passed through, as the AWS CLI shows them. @default 0
   */
  transitionDelayMs: 0,
  /** HsmType of the clusters the lab creates (reference F.2). @default 'hsm1.medium' */
  hsmType: 'hsm1.medium',
  /** Availability zones (one subnet each) a cluster's HSMs are spread over, round robin. @default 3 */
  availabilityZonesMax: 3,
  /**
   * How long `down` waits after SIGTERM for a control plane to stop its HSMs and exit before it
   * sends SIGKILL, in milliseconds (a control plane gives each HSM 7 s). @default 15000
   */
  controlPlaneStopTimeoutMs: 15_000,
  /** How long `down` waits after SIGTERM for an HSM whose control plane is gone, in milliseconds. @default 7000 */
  stopTimeoutMs: 7_000,
  /** How often `down` checks whether a stopped process is gone, in milliseconds. @default 20 */
  stopPollIntervalMs: 20,
  /** Connect-and-handshake deadline of the probes `status` makes when a control plane does not answer, in milliseconds. @default 2000 */
  probeTimeoutMs: 2_000,
  /** Deadline of one request the lab sends to an HSM (activation), in milliseconds. @default 10000 */
  requestTimeoutMs: 10_000,
  /** HSMs per cluster (reference F.7: "from 1 to 28 HSMs"). @default 28 */
  hsmsPerClusterMax: 28,
  /** Clusters per region a control plane allows unless the topology needs more (reference F.7 quota). @default 4 */
  clustersPerRegionMin: 4,
  /** HSMs per region a control plane allows unless the topology needs more (reference F.7 quota). @default 6 */
  hsmsPerRegionMin: 6,
  /**
   * Log level of the control planes and of their HSMs (their stderr goes to log files in the lab
   * directory): warnings and errors only, so that the files stay small and still say why a
   * process died.
   * @default 'warn'
   */
  logLevel: 'warn',
  /** Address the fault proxy's API listens on (its links listen on the HSMs' own addresses). @default '127.0.0.1' */
  faultProxyHost: '127.0.0.1',
  /** Lines of a control plane's log quoted in an error when it fails to start. @default 20 */
  logTailLines: 20,
  /** The lab's fault timeline in DIR: every fault set or lifted, one JSON object a line (faults.ts). @default 'faults.jsonl' */
  faultJournalFileName: 'faults.jsonl',
  /** Start the web console with the lab (`up --no-console` leaves it out). @default true */
  console: true,
  /**
   * Node's flags for the console: a small young generation and no helper threads for the
   * compiler and collector keep it under its 80 MB (it idles between a few reads a second).
   */
  consoleNodeArgs: ['--max-semi-space-size=1', '--single-threaded', '--max-old-space-size=64']
} as const

/**
 * The default lab: us-east-1/primary (2 HSMs, activated, CO admin, CU alice), its clone us-west-2/dr
 * (2 HSMs), and its clone eu-west-1/replica (1 HSM), the replica of primary's synchronisation task
 * (KEYS_AND_USERS, every key, the user alice).
 */
export const DEFAULT_TOPOLOGY_PATH = fileURLToPath(new URL('../topologies/default.json', import.meta.url))

/** Name of the lab's state file inside DIR. */
export const STATE_FILE_NAME = 'lab.json'

/** Name of the manufacturer key file inside DIR. */
export const MANUFACTURER_KEY_FILE_NAME = 'manufacturer.key'

/**
 * Name of the lab's peer secret file inside DIR (mode 0600): its control planes sign their
 * region-to-region requests with it (`--peer-secret-file`, peer-secret.ts of @hsmlab/control-plane).
 */
export const PEER_SECRET_FILE_NAME = 'peer.secret'

/** The lab's passwords file (the topology's passwords), in DIR/secrets/: see lab-state.ts. */
export const PASSWORDS_FILE_NAME = 'passwords.json'

/** Name of the regions file inside DIR (region → control-plane endpoint). */
export const REGIONS_FILE_NAME = 'regions.json'

/** Name of the KMU configuration inside DIR (KMU's default when it is given no `--config`). */
export const KMU_CONFIG_FILE_NAME = 'key_mgmt_util.cfg'
