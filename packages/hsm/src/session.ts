import type { Session } from './context.js'

/** The user logged in on a session. */
export type SessionUser = NonNullable<Session['user']>

/** A fresh session for one connection: nobody logged in, no session keys. */
export function createSession (id: number): Session {
  return { id, sessionKeys: new Map() }
}

/** Logs the session's user out and drops its session keys (logout, and a closed connection). */
export function endLogin (session: Session): void {
  delete session.user
  session.sessionKeys.clear()
}
