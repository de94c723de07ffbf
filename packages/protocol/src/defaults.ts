/** Largest frame either side accepts, in bytes. @default 16777216 (16 MiB) */
export const FRAME_BYTES_MAX = 16 * 1024 * 1024

/** How long a client waits for a response before it reports the server as not answering. @default 30000 */
export const REQUEST_TIMEOUT_MS = 30_000

/** Requests a client may have in flight on one connection. @default 1024 */
export const PENDING_REQUESTS_MAX = 1024

/** The port the real CMU uses; hsmlab HSMs bind port 0 unless told otherwise. */
export const CMU_DEFAULT_PORT = 2225
