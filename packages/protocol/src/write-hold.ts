/**
 * Holds a WebSocket's TCP writes until the event loop's check phase, so that the frames made in
 * one turn (a client daemon's pipelined requests on one side, the answers a group commit finishes
 * at once on the other) leave in one write and arrive in one read: fewer system calls and
 * wake-ups per request on every hop, the largest cost per request on a busy machine. The order of
 * the frames does not change. Both ends of the wire use it, so it lives with the wire format.
 */

/** What remembers, per connection, that its writes are held until the next check phase. */
export interface WriteHold { writesHeld: boolean }

/** Corks `socket`'s TCP socket (ws keeps it as `_socket`) until the next check phase; nothing when already held or not connected. */
export function holdWritesUntilNextTurn (socket: unknown, hold: WriteHold): void {
  if (hold.writesHeld) return
  const tcp = (socket as { _socket?: { cork: () => void, uncork: () => void } | null })._socket
  if (tcp === undefined || tcp === null) return
  hold.writesHeld = true
  tcp.cork()
  setImmediate(() => {
    hold.writesHeld = false
    tcp.uncork()
  })
}
