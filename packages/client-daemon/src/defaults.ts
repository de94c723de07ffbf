/** Every limit and timeout of the client daemon, with its unit in its name. */
export const clientDaemonDefaults = {
  /** Largest frame either side sends on the socket, in bytes (the HSM's largest data is 16 MiB). @default 17825792 */
  frameBytesMax: 17 * 1024 * 1024,
  /** Most applications connected at once (sockets). @default 1024 */
  connectionsMax: 1024,
  /** Most requests one socket may have in flight (the C library sends one at a time). @default 64 */
  pendingPerConnectionMax: 64,
  /** How long one HSM request may take before it counts as failed, in milliseconds. @default 10000 */
  hsmRequestTimeoutMs: 10_000,
  /** How long connecting to an HSM may take, in milliseconds. @default 3000 */
  hsmConnectTimeoutMs: 3_000,
  /** How long a whole daemon operation may take, retries on other HSMs included, in milliseconds. @default 20000 */
  operationTimeoutMs: 20_000,
  /** First wait before reconnecting to an HSM that went away, in milliseconds; doubled up to the maximum. @default 100 */
  reconnectDelayMs: 100,
  /** Longest wait between reconnection attempts, in milliseconds. @default 2000 */
  reconnectDelayMaxMs: 2_000,
  /**
   * HSMs a new token key must reach before C_GenerateKey answers (capped by the HSMs connected).
   * 1, as CloudHSM's library and KMU's `-min_srv` default: the key is durable on that HSM's disk
   * before the answer and replicates right after; 2 survives the loss of that HSM's disk too, at
   * about an eighth of the rate. @default 1
   */
  tokenKeyMinServers: 1,
  /** How long to wait for minServers, in milliseconds. @default 5000 */
  tokenKeySyncTimeoutMs: 5_000,
  /**
   * Token keys an application destroyed that the daemon remembers, so that this application never
   * sees them again while the delete reaches the other HSMs. @default 10000
   */
  destroyedRememberedMax: 10_000,
  /** Most objects one C_FindObjectsInit returns. @default 100000 */
  findResultsMax: 100_000,
  /** Log level. @default 'silent' */
  logLevel: 'silent'
} as const
