/**
 * Every limit and interval of the console, with its unit in its name (STYLE point 5). The bin's
 * flags and `startConsole`'s options override them.
 */
export const consoleDefaults = {
  /** The only address the console listens on: it serves a terminal on the lab's machine, so never another interface. */
  host: '127.0.0.1',
  /** 0: the system chooses (the lab records the port and asks for it again on a restart). */
  port: 0,
  /**
   * How often the lab's status, its fault proxy, backups and synchronisation tasks are read. A
   * change shows on the page within this plus one round trip (the issue asks for 1 s).
   */
  fastPollIntervalMs: 300,
  /** How often every HSM is read as the lab's CO (users, keys, hashes): heavier, so less often. */
  hsmPollIntervalMs: 1000,
  /** Keys read in detail (owner, sharing, attributes for the hash) per HSM and read: a bound on the work a huge key store costs each second. */
  hsmKeysReadMax: 200,
  /** Deadline of one request to a control plane, the fault proxy or an HSM. */
  requestTimeoutMs: 5000,
  /** Deadline of the handshake with one HSM. */
  hsmConnectTimeoutMs: 2000,
  /** A comment line on every event stream this often, so proxies and browsers keep it open. */
  sseHeartbeatMs: 15_000,
  /** Event streams open at once; one more is refused with 503. */
  sseClientsMax: 32,
  /** Largest request body the API reads. */
  requestBodyBytesMax: 65_536,
  /** Terminals open at once; one more is refused. */
  terminalsMax: 4,
  /** Bytes of a terminal's output kept for a page that reconnects. */
  terminalScrollbackBytesMax: 262_144,
  /** Largest WebSocket frame accepted from the page (keystrokes and resizes are tiny). */
  webSocketFrameBytesMax: 65_536,
  /** Entries of the fault timeline sent to the page (the newest). */
  faultTimelineEntriesMax: 500,
  /** Scenario runs listed (the newest). */
  scenarioRunsMax: 50,
  /** Bytes of random token in the console's URL. */
  tokenBytes: 24,
  /** `--log-level`. */
  logLevel: 'silent'
} as const
