/** Largest frame either side accepts, in bytes. @default 16777216 (16 MiB) */
export const FRAME_BYTES_MAX = 16 * 1024 * 1024

/** How long a client waits for a response before it reports the server as not answering. @default 30000 */
export const REQUEST_TIMEOUT_MS = 30_000

/** Requests a client may have in flight on one connection. @default 1024 */
export const PENDING_REQUESTS_MAX = 1024

/** The port the real CMU uses; hsmlab HSMs bind port 0 unless told otherwise. */
export const CMU_DEFAULT_PORT = 2225

/**
 * Longest a syncChanges long poll may wait for a change, in milliseconds. A client waiting this
 * long must give the request more than `REQUEST_TIMEOUT_MS`, or ask for less. @default 30000
 */
export const SYNC_WAIT_MS_MAX = 30_000

/** Keys one syncExtract or syncApply may name: a whole cluster's (keysMax 3300) fits. @default 4096 */
export const SYNC_BATCH_KEYS_MAX = 4096

/** Users one syncExtract or syncApply may name: a whole HSM's (usersMax 1024) fits. @default 2048 */
export const SYNC_BATCH_USERS_MAX = 2048
