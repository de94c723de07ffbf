/**
 * `host:port` strings as Go's `net.SplitHostPort` reads them, and listen errors worded as Go's
 * `net.Listen` words them (Toxiproxy answers them verbatim with status 500).
 */

/** Host and port of an address, or the reason it is not one. */
export function splitHostPort (address: string): { host: string, port: number } | { error: string } {
  let host: string
  let portText: string
  if (address.startsWith('[')) {
    const close = address.indexOf(']')
    if (close < 0) return { error: 'missing \']\' in address' }
    host = address.slice(1, close)
    const rest = address.slice(close + 1)
    if (!rest.startsWith(':')) return { error: 'missing port in address' }
    portText = rest.slice(1)
  } else {
    const colon = address.lastIndexOf(':')
    if (colon < 0) return { error: 'missing port in address' }
    host = address.slice(0, colon)
    if (host.includes(':')) return { error: 'too many colons in address' }
    portText = address.slice(colon + 1)
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return { error: 'invalid port' }
  return { host, port: Number(portText) }
}

/** `host:port` as Go prints a listener's address (`[::1]:8080` for IPv6). */
export function joinHostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

const BIND_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'bind: address already in use',
  EACCES: 'bind: permission denied',
  EADDRNOTAVAIL: 'bind: cannot assign requested address',
  EAFNOSUPPORT: 'bind: address family not supported by protocol'
}

/** A Node listen error in Go's words: `listen tcp 127.0.0.1:80: bind: permission denied`. */
export function listenErrorMessage (listen: string, host: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return `listen tcp: lookup ${host}: no such host`
  const bind = err.code === undefined ? undefined : BIND_ERRORS[err.code]
  return `listen tcp ${listen}: ${bind ?? err.message}`
}
