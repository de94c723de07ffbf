/**
 * Who may talk to the console. It serves a terminal on the lab's machine, so every request passes
 * three checks, in this order:
 *
 * 1. `Host` is `127.0.0.1:<port>` or `localhost:<port>`, else 403: a DNS-rebound name (a page of
 *    evil.example whose name now resolves to 127.0.0.1) sends its own name as Host.
 * 2. `Origin`, when the browser sends one (every POST, fetch, EventSource and WebSocket of a page),
 *    is `http://127.0.0.1:<port>` or `http://localhost:<port>`, else 403: another web page can make
 *    the browser send requests here, but not with our origin.
 * 3. The token: the random one in the URL the lab prints (`?token=…`, as Jupyter does), exchanged
 *    on first visit for an HttpOnly, SameSite=Strict cookie (so it leaves the address bar and no
 *    script can read it), or `Authorization: Bearer <token>` for scripts; else 401.
 */
import { timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

/** What a request may do: go on, or be answered with this status and message. */
export type Verdict = { ok: true, viaQuery: boolean } | { ok: false, status: 401 | 403, message: string }

/** The checks above for one console. */
export class Guard {
  readonly token: string
  readonly cookieName: string
  private readonly hosts: Set<string>
  private readonly origins: Set<string>

  constructor (token: string, port: number) {
    this.token = token
    // Browsers keep cookies per host, not per port: two labs' consoles on one machine must not overwrite each other's.
    this.cookieName = `hsmlab-console-${port}`
    this.hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`])
    this.origins = new Set([...this.hosts].map(h => `http://${h}`))
  }

  check (req: IncomingMessage, url: URL): Verdict {
    const host = req.headers.host
    if (host === undefined || !this.hosts.has(host.toLowerCase())) {
      return { ok: false, status: 403, message: `the console answers only to Host 127.0.0.1 or localhost with its port, not ${JSON.stringify(host ?? '')}` }
    }
    const origin = req.headers.origin
    if (origin !== undefined && !this.origins.has(origin.toLowerCase())) {
      return { ok: false, status: 403, message: `requests from another origin (${origin}) are refused` }
    }
    const query = url.searchParams.get('token')
    if (query !== null && this.matches(query)) return { ok: true, viaQuery: true }
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
    if (bearer !== undefined && this.matches(bearer)) return { ok: true, viaQuery: false }
    const cookie = cookieValue(req.headers.cookie, this.cookieName)
    if (cookie !== undefined && this.matches(cookie)) return { ok: true, viaQuery: false }
    return { ok: false, status: 401, message: 'open the console with the URL `hsmlab up` printed (it carries the token), or see `hsmlab status`' }
  }

  /** The Set-Cookie header that replaces the token in the URL. */
  cookie (): string {
    return `${this.cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=/`
  }

  private matches (given: string): boolean {
    const a = Buffer.from(given)
    const b = Buffer.from(this.token)
    return a.length === b.length && timingSafeEqual(a, b)
  }
}

function cookieValue (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const at = part.indexOf('=')
    if (at !== -1 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim()
  }
  return undefined
}
