/**
 * Goal (issue 14): the console that `hsmlab up` starts can be driven only by the person who has
 * the URL it printed, from the console's own page: it listens on 127.0.0.1 only; without the
 * token every page, static file, API call, event stream and terminal answers 401; the token in
 * the URL becomes an HttpOnly SameSite=Strict cookie; a Host that is not 127.0.0.1 or localhost
 * with its port (DNS rebinding) and an Origin of another site answer 403; the terminal's
 * WebSocket is refused without an Origin or from another one. `hsmlab status --json` reports it,
 * `hsmlab up` starts it again on the same port and token when it died, `hsmlab down` stops it and
 * `--no-console` leaves it out.
 *
 * Method: the default lab (startLab); raw HTTP requests with node:http, whose headers (Host,
 * Origin, Cookie, Upgrade) are sent as written, as a hostile page or a rebound name would.
 */
import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { isProcessAlive } from '@hsmlab/process'
import { startLab, waitFor } from '@hsmlab/testing'
import { describe, expect, it } from 'vitest'

interface Answer { status: number, headers: IncomingHttpHeaders, body: string }

/** One request with exactly these headers; an event stream is read until its first bytes. */
async function send (url: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, setHost: options.headers?.host === undefined }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
        // An event stream never ends: its first event is enough.
        if ((res.headers['content-type'] ?? '').startsWith('text/event-stream') && body.includes('event: status')) { res.destroy(); resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) }
      })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
      res.on('error', () => {})
    })
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }) })
    req.on('error', reject)
    req.end(options.body)
  })
}

const WEBSOCKET = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }

describe('the console behind its token', () => {
  it('answers 401 without the token, 403 to another Host or Origin, and only its own page gets a terminal', async () => {
    const lab = await startLab()
    const status = await lab.statusJson() as unknown as { console: { endpoint: string, url: string, pid: number, state: string } }
    const { endpoint, url, pid } = status.console
    expect(status.console.state).toBe('RUNNING')
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(url).toMatch(new RegExp(`^${endpoint}/\\?token=[A-Za-z0-9_-]{32}$`))
    expect(isProcessAlive(pid)).toBe(true)
    const port = new URL(endpoint).port
    const token = new URL(url).searchParams.get('token') as string
    // `hsmlab up` printed the URL too (its --json output is the status; the summary line is in the human output).
    expect((await lab.hsmlab(['up'])).stdout).toContain(`console: ${url}`)

    // Without the token: 401 everywhere.
    for (const path of ['/', '/static/app.js', '/static/vendor/preact.mjs', '/api/events', '/api/report', '/favicon.ico']) {
      expect((await send(`${endpoint}${path}`)).status, path).toBe(401)
    }
    expect((await send(`${endpoint}/?token=wrong-${token.slice(6)}`)).status).toBe(401)
    expect((await send(`${endpoint}/api/faults/heal`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401)
    expect((await send(`${endpoint}/api/terminal`, { headers: { ...WEBSOCKET, origin: endpoint } })).status).toBe(401)
    expect((await send(`${endpoint}/`, { headers: { cookie: `hsmlab-console-${port}=nope` } })).status).toBe(401)

    // The token in the URL: a cookie no script can read, sent to this site only; the token leaves the address bar.
    const first = await send(url)
    expect(first.status).toBe(302)
    expect(first.headers.location).toBe('/')
    const cookie = String(first.headers['set-cookie']?.[0])
    expect(cookie).toMatch(new RegExp(`^hsmlab-console-${port}=${token}; `))
    expect(cookie).toContain('HttpOnly')
    expect(cookie).toContain('SameSite=Strict')
    expect(first.headers['referrer-policy']).toBe('no-referrer')
    const jar = { cookie: `hsmlab-console-${port}=${token}` }
    const home = await send(`${endpoint}/`, { headers: jar })
    expect(home.status).toBe(200)
    expect(home.headers['content-security-policy']).toContain("default-src 'self'")
    expect(home.body).toContain('/static/app.js')
    expect((await send(`http://localhost:${port}/static/app.js`, { headers: jar })).status).toBe(200)
    const events = await send(`${endpoint}/api/events`, { headers: { ...jar, origin: endpoint } })
    expect(events.status).toBe(200)
    expect(events.body).toContain('event: status')

    // DNS rebinding: the right cookie, the wrong Host.
    for (const host of [`evil.example:${port}`, 'localhost', `127.0.0.1:${Number(port) + 1}`, `127.0.0.1.nip.io:${port}`]) {
      expect((await send(`${endpoint}/`, { headers: { ...jar, host } })).status, host).toBe(403)
    }
    // Another site's page: the right cookie (a browser would not even send it), another Origin.
    expect((await send(`${endpoint}/api/events`, { headers: { ...jar, origin: 'http://evil.example' } })).status).toBe(403)
    expect((await send(`${endpoint}/api/faults/heal`, { method: 'POST', headers: { ...jar, origin: `http://127.0.0.1:${Number(port) + 1}`, 'content-type': 'application/json' }, body: '{}' })).status).toBe(403)
    expect((await send(url, { headers: { origin: 'null' } })).status).toBe(403)
    // The terminal: only a WebSocket from the console's own page.
    expect((await send(`${endpoint}/api/terminal`, { headers: { ...jar, ...WEBSOCKET } })).status).toBe(403)
    expect((await send(`${endpoint}/api/terminal`, { headers: { ...jar, ...WEBSOCKET, origin: 'http://evil.example' } })).status).toBe(403)
    expect((await send(`${endpoint}/api/terminal`, { headers: { ...jar, ...WEBSOCKET, origin: endpoint } })).status).toBe(101)

    // 127.0.0.1 only: the port is not open on another address of the machine.
    const other = await send(`http://127.0.0.2:${port}/`, { headers: jar }).catch((err: NodeJS.ErrnoException) => err.code)
    expect(other).toBe('ECONNREFUSED')

    // Supervised as the fault proxy is: killed, status says DOWN, and `up` starts it again on
    // the same port with the same token, so that a page left open reconnects by itself.
    process.kill(pid, 'SIGKILL')
    await waitFor(async () => ((await lab.statusJson()) as unknown as { console: { state: string } }).console.state === 'DOWN', { timeoutMs: 10_000 })
    const again = await lab.up() as unknown as { console: { endpoint: string, url: string, pid: number, state: string } }
    expect(again.console).toMatchObject({ endpoint, url, state: 'RUNNING' })
    expect(again.console.pid).not.toBe(pid)
    expect((await send(`${endpoint}/`, { headers: jar })).status).toBe(200)

    // `down` stops it; `up --no-console` leaves it out, and says so in status.
    await lab.down()
    // Gone once init has collected it (it was started detached, by an `up` that has exited).
    await waitFor(() => !isProcessAlive(again.console.pid), { timeoutMs: 5000 })
    const without = await lab.hsmlab(['up', '--no-console', '--json'])
    expect(without.code, without.stderr).toBe(0)
    expect((JSON.parse(without.stdout) as { console: unknown }).console).toEqual({ endpoint: null, url: null, pid: null, state: 'NONE' })
  })
})
