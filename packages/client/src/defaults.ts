/** How long to wait for the TCP connection and the handshake, in milliseconds. @default 5000 */
export const CONNECT_TIMEOUT_MS = 5_000
