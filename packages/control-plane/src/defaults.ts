/**
 * Every limit, delay and default of the control plane, with its unit in the name. Options of
 * `startControlPlane` and the flags of `hsmlab-control-plane` fall back to these. Durations in
 * `Ms` are real milliseconds; durations in `LabSeconds`/`LabDays` run on the lab clock
 * (`clockSpeed` lab seconds per real second).
 */
export const controlPlaneDefaults = {
  /** Address the API binds; HSMs listen on loopback addresses next to it. @default '127.0.0.1' */
  host: '127.0.0.1',
  /** Port the API binds; 0 lets the system choose (read it from the ready line). @default 0 */
  port: 0,
  /** Lab seconds per real second (retention windows, daily backups, deletion windows). @default 1 */
  clockSpeed: 1,
  /** The AWS account the API pretends to be (ARNs). @default '111122223333' */
  accountId: '111122223333',
  /** Log level of the control plane (pino JSON lines on stderr). @default 'silent' */
  logLevel: 'silent',
  /** Log level of the HSM processes it spawns (their stderr goes to a log file beside their data). @default 'warn' */
  hsmLogLevel: 'warn',
  /** Real time a cluster spends in CREATE_IN_PROGRESS before UNINITIALIZED, in milliseconds. @default 1000 */
  clusterCreateDelayMs: 1_000,
  /** Real time a cluster spends in INITIALIZE_IN_PROGRESS before INITIALIZED, in milliseconds. @default 1000 */
  clusterInitializeDelayMs: 1_000,
  /** Real time a cluster spends in DELETE_IN_PROGRESS before DELETED, in milliseconds. @default 1000 */
  clusterDeleteDelayMs: 1_000,
  /** Clusters per region, not counting DELETED ones (reference F.7 quota, adjustable). @default 4 */
  clustersMax: 4,
  /** HSMs per region, not counting DELETED ones (reference F.7 quota, adjustable). @default 6 */
  hsmsMax: 6,
  /** HSMs per cluster (reference F.7, not adjustable). @default 28 */
  hsmsPerClusterMax: 28,
  /** Tags per resource. @default 50 */
  tagsPerResourceMax: 50,
  /** Retention of a new cluster's backups, in lab days (reference F.7). @default 90 */
  backupRetentionDays: 90,
  /** How long a deleted backup stays PENDING_DELETION, in lab days (reference F.7). @default 7 */
  backupDeletionWindowDays: 7,
  /** Interval of the automatic backups of an active cluster, in lab seconds (24 hours). @default 86400 */
  backupIntervalLabSeconds: 86_400,
  /** How long a copy may keep retrying to fetch the source backup, in lab seconds, from its CopyTimestamp. @default 60 */
  copyRetryWindowLabSeconds: 60,
  /** First delay between two attempts of a copy, in milliseconds; it doubles up to `copyRetryDelayMaxMs`. @default 200 */
  copyRetryDelayMs: 200,
  /** Longest delay between two attempts of a copy, in milliseconds. @default 5000 */
  copyRetryDelayMaxMs: 5_000,
  /**
   * Synchronisation tasks (issue 12): deadline of one request of the primary's control plane to a
   * replica's region (inventory, apply), in milliseconds; past it the resources it carried are
   * FAILED with REPLICA_UNREACHABLE. @default 2000
   */
  syncRequestTimeoutMs: 2_000,
  /** First delay before a failed synchronisation is tried again, in milliseconds. @default 100 */
  syncRetryDelayMs: 100,
  /** Factor by which that delay grows after each further failure (a plain number). @default 2 */
  syncRetryFactor: 2,
  /** Longest delay before a failed synchronisation is tried again, in milliseconds. @default 1000 */
  syncRetryDelayMaxMs: 1_000,
  /** How long one long poll for changes on the primary's HSM (syncChanges) waits, in milliseconds. @default 5000 */
  syncWatchWaitMs: 5_000,
  /**
   * How often a replica's inventory is asked again although nothing failed, in milliseconds: an HSM
   * of the replica that missed what its cluster spread (it was away) is repaired then. @default 30000
   */
  syncResyncIntervalMs: 30_000,
  /** How long after a change the synchronisation records are written (the changes of that while in one write), in milliseconds. @default 50 */
  syncRecordsFlushDelayMs: 50,
  /** Most masked objects in one apply request to a replica's region (its HSM applies them before it answers). @default 256 */
  syncApplyBatchObjectsMax: 256,
  /** Time added to `syncRequestTimeoutMs` for each object of an apply request, in milliseconds: a large batch takes its HSM longer. @default 10 */
  syncApplyTimeoutMsPerObject: 10,
  /**
   * Apply requests of keys to one replica's region in flight at once (batches holding users go
   * alone): the replica's HSM stores one batch while the next one travels and is opened. @default 2
   */
  syncApplyBatchesInFlightMax: 2,
  /** Largest body of one apply request to a replica's region (masked objects, base64), in bytes. @default 524288 */
  syncApplyBatchBytesMax: 524_288,
  /** Replicas a synchronisation task may have associated at once (issue 12). @default 3 */
  syncReplicasMax: 3,
  /** Deadline of one HTTP request to another region's control plane, in milliseconds. @default 10000 */
  regionRequestTimeoutMs: 10_000,
  /** How long DELETED clusters and backups stay visible in Describe*, in lab days. @default 7 */
  deletedRecordsKeptLabDays: 7,
  /** How often the control plane looks at every resource (state changes, purges, supervision), in milliseconds. @default 250 */
  tickIntervalMs: 250,
  /** How long an HSM may take from spawn to its ready line, in milliseconds. @default 30000 */
  hsmReadyTimeoutMs: 30_000,
  /** How long an HSM may take to stop after SIGTERM before it gets SIGKILL, in milliseconds. @default 7000 */
  hsmStopTimeoutMs: 7_000,
  /** First delay before an HSM that died is restarted, in milliseconds; it doubles up to `hsmRestartDelayMaxMs`. @default 500 */
  hsmRestartDelayMs: 500,
  /** Longest delay before an HSM that died is restarted, in milliseconds. @default 30000 */
  hsmRestartDelayMaxMs: 30_000,
  /** Deadline of one request to an HSM (exportBackup, setPeers, listUsers), in milliseconds. @default 30000 */
  hsmRequestTimeoutMs: 30_000,
  /** With HSM hosts: deadline of a request to a host, beyond the time its HSM may take to start or stop, in milliseconds. @default 10000 */
  hsmHostRequestTimeoutMs: 10_000,
  /** With HSM hosts: how long one request that watches an HSM's process waits on its host, in milliseconds. @default 10000 */
  hsmHostWaitMs: 10_000,
  /** With HSM hosts: how long a host may go unanswered before its HSM counts as gone (then restarted), in milliseconds. @default 5000 */
  hsmHostUnreachableMs: 5_000,
  /** Largest request body the API reads, in bytes. @default 1048576 */
  requestBodyBytesMax: 1_048_576,
  /**
   * How long a connection to the API may take to send a request's headers, from its first byte
   * (or from the connection, for its first request), in milliseconds; then it is closed (408). A
   * bound, so that slow or half-sent requests cannot hold connections open. @default 10000
   */
  requestHeadersTimeoutMs: 10_000,
  /** How long a connection to the API may take to send a whole request (headers and body), in milliseconds; then it is closed (408). @default 30000 */
  requestReceiveTimeoutMs: 30_000,
  /** Allowed difference between a SigV4 request's X-Amz-Date and the real clock, in milliseconds. @default 900000 */
  signatureSkewMs: 900_000
} as const

type NumericDefaults = { [K in keyof typeof controlPlaneDefaults as (typeof controlPlaneDefaults)[K] extends number ? K : never]: number }

/** Delays, limits and windows of a control plane (see above for each one's meaning, unit and default). */
export type ControlPlaneTuning = Omit<NumericDefaults, 'port' | 'clockSpeed'>

/** Name of the state file inside the data directory. */
export const STATE_FILE_NAME = 'state.json'
/** Name of the file of the synchronisation records (one per resource and replica) inside the data directory. */
export const SYNC_RECORDS_FILE_NAME = 'sync-records.json'
/** Name of the lock file inside the data directory. */
export const LOCK_FILE_NAME = 'control-plane.pid'
/** Name of the trust-anchor keyring (each cluster's anchor secret key, mode 0600) inside the data directory. */
export const ANCHOR_KEYRING_FILE_NAME = 'anchors.json'

/**
 * The defaults of an HSM host (`hsmlab-hsm-host`, hsm-host.ts): the agent that runs one HSM at
 * one address for a control plane started with `--hsm-hosts`.
 */
export const hsmHostDefaults = {
  /** Address its API binds. @default '127.0.0.1' */
  host: '127.0.0.1',
  /** Port its API binds; 0 lets the system choose (read it from the ready line). @default 0 */
  port: 0,
  /** Log level of its HSM process (its stderr goes to a log file beside its data). @default 'warn' */
  hsmLogLevel: 'warn',
  /** How long its HSM may take from spawn to its ready line, in milliseconds. @default 30000 */
  hsmReadyTimeoutMs: controlPlaneDefaults.hsmReadyTimeoutMs,
  /** How long its HSM may take to stop after SIGTERM before it gets SIGKILL, in milliseconds. @default 7000 */
  hsmStopTimeoutMs: controlPlaneDefaults.hsmStopTimeoutMs,
  /** How often it looks whether an HSM it adopted (left running by a previous host) still runs, in milliseconds. @default 250 */
  adoptedPollMs: 250,
  /** Longest wait of one `GET /hsm?pid=…&waitMs=…`, in milliseconds. @default 30000 */
  waitMsMax: 30_000,
  /** Largest request body it reads (a start carries the backup to restore, in base64), in bytes. @default 67108864 */
  requestBodyBytesMax: 67_108_864,
  /** How long a connection to its API may take to send a request's headers, in milliseconds; then it is closed (408). @default 10000 */
  requestHeadersTimeoutMs: 10_000,
  /** How long a connection to its API may take to send a whole request (a start carries a backup), in milliseconds; then it is closed (408). @default 60000 */
  requestReceiveTimeoutMs: 60_000
} as const
/**
 * The options of `http.createServer` that bound how long a connection may take to send a request:
 * `headersTimeout` (never above `requestTimeout`, which Node refuses) and `requestTimeout`, checked
 * every quarter of the shorter bound (at most every second, at least every 10 ms), so that a
 * connection is closed within about 1.25 times its bound.
 */
export function requestTimeouts (bounds: { requestHeadersTimeoutMs: number, requestReceiveTimeoutMs: number }): { headersTimeout: number, requestTimeout: number, connectionsCheckingInterval: number } {
  const requestTimeout = bounds.requestReceiveTimeoutMs
  const headersTimeout = requestTimeout > 0 ? Math.min(bounds.requestHeadersTimeoutMs, requestTimeout) : bounds.requestHeadersTimeoutMs
  const shortest = Math.min(...[headersTimeout, requestTimeout].filter(ms => ms > 0), 4_000)
  return { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.max(10, Math.floor(shortest / 4)) }
}

/** Name of the lock file inside an HSM host's data directory. */
export const HSM_HOST_LOCK_FILE_NAME = 'hsm-host.pid'
