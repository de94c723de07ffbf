/**
 * The console's HTTP server: the page (one HTML document, its script modules and styles, all
 * served from this package and its libraries: nothing is fetched from the network), the live
 * topics over server-sent events (`GET /api/events`), the actions of the page (`POST /api/...`),
 * and the terminal's WebSocket (`/api/terminal`). Every request passes the `Guard` first (Host,
 * Origin, token; guard.ts). Listens on 127.0.0.1 only.
 *
 * | route | what |
 * | --- | --- |
 * | `GET /` | the page; `/?token=T` sets the cookie and redirects to `/` |
 * | `GET /static/...` | its modules and styles (preact, htm, xterm.js from node_modules) |
 * | `GET /api/events` | `event: <topic>` / `data: <json>` for each topic, now and on every change |
 * | `GET /api/report?run=NAME` | a scenario run's history as a timeline |
 * | `POST /api/faults/apply`, `/api/faults/heal` | `hsmlab fault`, from the page (recorded as `console`) |
 * | `POST /api/backups/create`, `/copy`, `/restore-cluster` | a backup now; CopyBackupToRegion; CreateCluster from a backup |
 * | `POST /api/sync/create`, `/associate`, `/disassociate`, `/add-resources` | the synchronisation API |
 * | `POST /api/exercise/check`, `/api/exercise/hint` | the running exercise's checks, its next hint |
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { applyFault, availabilityZonesOf, healFaults, subnetIdOf } from '@hsmlab/lab'
import type { LabFault } from '@hsmlab/lab'
import type { ProcessLogger } from '@hsmlab/process'
import { consoleDefaults } from './defaults.js'
import { ConsoleError, CONSOLE_ERR_LAB, CONSOLE_ERR_LISTEN, CONSOLE_ERR_REQUEST } from './errors.js'
import { Guard } from './guard.js'
import { LabView, TOPICS } from './lab-view.js'
import type { Topic } from './lab-view.js'
import { readRun } from './scenario-report.js'
import type { SyncScope } from '@hsmlab/control-plane'
import { Terminals } from './terminal.js'

/** Options of `startConsole`. */
export interface ConsoleOptions {
  /** The lab directory it shows. */
  labDir: string
  /** Its own directory: the token (`token`, 0600) is kept there across restarts. */
  dataDir: string
  /** @default consoleDefaults.port */
  port?: number
  /** @default consoleDefaults.fastPollIntervalMs */
  fastPollIntervalMs?: number
  /** @default consoleDefaults.hsmPollIntervalMs */
  hsmPollIntervalMs?: number
  /** The terminal's working directory. @default the lab directory's parent (where `hsmlab up` ran) */
  terminalCwd?: string
  /** Where a refused action or a failure of the console is logged (one JSON line each). @default nowhere */
  logger?: ProcessLogger
}

/** A running console. */
export interface Console {
  port: number
  /** `http://127.0.0.1:<port>`. */
  endpoint: string
  /** The endpoint with its token: what a person opens. */
  url: string
  stop: () => Promise<void>
}

const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url))
const require = createRequire(import.meta.url)
/** A library's directory: up from its entry point to its package.json (not every library exports its package.json). */
function packageDir (name: string): string {
  let dir = dirname(require.resolve(name))
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return dir
}

/** What `/static/NAME` serves: the page's own files, and the libraries it imports. */
function staticFiles (): Map<string, { file: string, type: string }> {
  const js = 'text/javascript; charset=utf-8'
  const css = 'text/css; charset=utf-8'
  return new Map([
    ['app.js', { file: join(WEB_DIR, 'app.js'), type: js }],
    ['style.css', { file: join(WEB_DIR, 'style.css'), type: css }],
    ['vendor/preact.mjs', { file: join(packageDir('preact'), 'dist/preact.mjs'), type: js }],
    ['vendor/hooks.mjs', { file: join(packageDir('preact'), 'hooks/dist/hooks.mjs'), type: js }],
    ['vendor/htm.mjs', { file: join(packageDir('htm'), 'dist/htm.mjs'), type: js }],
    ['vendor/xterm.mjs', { file: join(packageDir('@xterm/xterm'), 'lib/xterm.mjs'), type: js }],
    ['vendor/xterm.css', { file: join(packageDir('@xterm/xterm'), 'css/xterm.css'), type: css }],
    ['vendor/addon-fit.mjs', { file: join(packageDir('@xterm/addon-fit'), 'lib/addon-fit.mjs'), type: js }]
  ])
}

/** The import map lets the page's modules name their libraries as npm does (`preact/hooks`). */
const IMPORT_MAP = JSON.stringify({
  imports: {
    preact: '/static/vendor/preact.mjs',
    'preact/hooks': '/static/vendor/hooks.mjs',
    htm: '/static/vendor/htm.mjs',
    '@xterm/xterm': '/static/vendor/xterm.mjs',
    '@xterm/addon-fit': '/static/vendor/addon-fit.mjs'
  }
})

function page (): { html: string, csp: string } {
  const hash = createHash('sha256').update(IMPORT_MAP).digest('base64')
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hsmlab console</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="stylesheet" href="/static/vendor/xterm.css">
<script type="importmap">${IMPORT_MAP}</script>
<link rel="modulepreload" href="/static/vendor/preact.mjs">
<link rel="modulepreload" href="/static/vendor/hooks.mjs">
<link rel="modulepreload" href="/static/vendor/htm.mjs">
<script type="module" src="/static/app.js"></script>
</head>
<body><div id="app"><p class="loading">hsmlab console: loading…</p></div></body>
</html>
`
  // Scripts only from here (and the one inline import map, by its hash); styles inline too, which
  // the page's components and xterm.js set; connections only back to the console.
  const csp = `default-src 'self'; script-src 'self' 'sha256-${hash}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`
  return { html, csp }
}

/** The token in `dataDir/token`, made the first time (0600). */
async function tokenOf (dataDir: string): Promise<string> {
  const file = join(dataDir, 'token')
  const existing = (await readFile(file, 'utf8').catch(() => '')).trim()
  if (/^[A-Za-z0-9_-]{16,}$/.test(existing)) return existing
  const token = randomBytes(consoleDefaults.tokenBytes).toString('base64url')
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await writeFile(file, token + '\n', { mode: 0o600 })
  await chmod(file, 0o600)
  return token
}

function securityHeaders (res: ServerResponse): void {
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('X-Frame-Options', 'DENY')
  // The token travels in the first URL: never in a Referer.
  res.setHeader('Referrer-Policy', 'no-referrer')
  res.setHeader('Cache-Control', 'no-store')
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin')
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin')
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(body))
}

async function readBody (req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
    throw new ConsoleError(CONSOLE_ERR_REQUEST, 'send the request as application/json')
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > consoleDefaults.requestBodyBytesMax) throw new ConsoleError(CONSOLE_ERR_REQUEST, `the request body is larger than ${consoleDefaults.requestBodyBytesMax} bytes`)
    chunks.push(chunk as Buffer)
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object')
    return body as Record<string, unknown>
  } catch (err) {
    throw new ConsoleError(CONSOLE_ERR_REQUEST, `the request body is not a JSON object: ${(err as Error).message}`)
  }
}

function text (body: Record<string, unknown>, name: string): string {
  const value = body[name]
  if (typeof value !== 'string' || value === '') throw new ConsoleError(CONSOLE_ERR_REQUEST, `'${name}' must be a non-empty string`)
  return value
}

function syncType (body: Record<string, unknown>): 'KEYS' | 'KEYS_AND_USERS' {
  const value = body.SyncType
  if (value !== 'KEYS' && value !== 'KEYS_AND_USERS') throw new ConsoleError(CONSOLE_ERR_REQUEST, "'SyncType' must be KEYS or KEYS_AND_USERS")
  return value
}

function scope (body: Record<string, unknown>): SyncScope {
  const value = body.Scope
  if (typeof value !== 'object' || value === null) throw new ConsoleError(CONSOLE_ERR_REQUEST, "'Scope' must be an object")
  return value
}

/** Starts the console; it listens and has read the lab once when this resolves. */
export async function startConsole (options: ConsoleOptions): Promise<Console> {
  const token = await tokenOf(options.dataDir)
  const files = staticFiles()
  const cache = new Map<string, Buffer>()
  const { html, csp } = page()
  const streams = new Set<ServerResponse>()
  let guard: Guard | undefined

  const view = new LabView({
    labDir: options.labDir,
    ...(options.fastPollIntervalMs === undefined ? {} : { fastPollIntervalMs: options.fastPollIntervalMs }),
    ...(options.hsmPollIntervalMs === undefined ? {} : { hsmPollIntervalMs: options.hsmPollIntervalMs }),
    onChange: (topic, json) => { for (const res of streams) res.write(eventOf(topic, json)) },
    watched: () => streams.size > 0
  })
  const terminals = new Terminals({ cwd: options.terminalCwd ?? dirname(options.labDir), labDir: options.labDir })

  const eventOf = (topic: Topic, json: string): string => `event: ${topic}\ndata: ${json}\n\n`

  const actions: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
    'faults/apply': async body => {
      const fault = body.fault as LabFault | undefined
      if (typeof fault !== 'object' || fault === null || typeof fault.type !== 'string') throw new ConsoleError(CONSOLE_ERR_REQUEST, "'fault' must be a fault ({ type, group } or { type, between, ms })")
      return await applyFault({ dir: options.labDir, source: 'console', fault })
    },
    'faults/heal': async body => await healFaults({ dir: options.labDir, source: 'console', ...(typeof body.group === 'string' && body.group !== '' ? { group: body.group } : {}) }),
    'backups/create': async body => await view.api(text(body, 'region')).createBackup(text(body, 'clusterId')),
    'backups/copy': async body => await view.api(text(body, 'region')).copyBackupToRegion({ BackupId: text(body, 'backupId'), DestinationRegion: text(body, 'destinationRegion') }),
    'backups/restore-cluster': async body => {
      const region = text(body, 'region')
      return await view.api(region).createCluster({
        HsmType: 'hsm1.medium',
        SubnetIds: availabilityZonesOf(region, 2).map(subnetIdOf),
        SourceBackupId: text(body, 'backupId'),
        TagList: [{ Key: 'hsmlab:created-by', Value: 'console' }]
      })
    },
    'sync/create': async body => await view.api(text(body, 'region')).createSyncTask({
      ClusterId: text(body, 'ClusterId'),
      Replicas: [{ ClusterId: text(body, 'ReplicaClusterId'), Region: text(body, 'ReplicaRegion'), SyncType: syncType(body) }],
      ...(body.Scope === undefined ? {} : { Scope: scope(body) })
    }),
    'sync/associate': async body => await view.api(text(body, 'region')).associateSyncReplica({
      ClusterId: text(body, 'ClusterId'), ReplicaClusterId: text(body, 'ReplicaClusterId'), ReplicaRegion: text(body, 'ReplicaRegion'), SyncType: syncType(body)
    }),
    'sync/disassociate': async body => {
      if (body.Confirm !== true) throw new ConsoleError(CONSOLE_ERR_REQUEST, 'removing a replica instance is irreversible: confirm it (Confirm: true)')
      return await view.api(text(body, 'region')).disassociateSyncReplica({ ClusterId: text(body, 'ClusterId'), ReplicaClusterId: text(body, 'ReplicaClusterId'), Confirm: true })
    },
    'exercise/check': async () => await view.checkExercise(),
    'exercise/hint': async () => await view.hint(),
    'sync/add-resources': async body => await view.api(text(body, 'region')).addSyncResources({ ClusterId: text(body, 'ClusterId'), Scope: scope(body) })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    securityHeaders(res)
    const verdict = (guard as Guard).check(req, url)
    if (!verdict.ok) {
      sendJson(res, verdict.status, { code: verdict.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', message: verdict.message })
      return
    }
    if (verdict.viaQuery && req.method === 'GET' && !url.pathname.startsWith('/api/')) {
      // The token leaves the address bar (and history) for a cookie no script can read.
      url.searchParams.delete('token')
      res.writeHead(302, { 'set-cookie': (guard as Guard).cookie(), location: `${url.pathname}${url.search}` })
      res.end()
      return
    }
    const path = url.pathname
    if (req.method === 'GET' && path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp })
      res.end(html)
      return
    }
    if (req.method === 'GET' && path === '/favicon.ico') {
      res.writeHead(204)
      res.end()
      return
    }
    if (req.method === 'GET' && path.startsWith('/static/')) {
      const entry = files.get(path.slice('/static/'.length))
      if (entry === undefined) { sendJson(res, 404, { code: 'NOT_FOUND', message: `no ${path}` }); return }
      let body = cache.get(entry.file)
      if (body === undefined) { body = await readFile(entry.file); cache.set(entry.file, body) }
      // The page's modules do not change while the console runs: the browser keeps them (for this user only).
      res.writeHead(200, { 'content-type': entry.type, 'cache-control': 'private, max-age=3600' })
      res.end(body)
      return
    }
    if (req.method === 'GET' && path === '/api/events') {
      if (streams.size >= consoleDefaults.sseClientsMax) { sendJson(res, 503, { code: 'BUSY', message: `${streams.size} pages are open already` }); return }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' })
      res.write('retry: 500\n\n')
      for (const topic of TOPICS) {
        const json = view.current(topic)
        if (json !== undefined) res.write(eventOf(topic, json))
      }
      streams.add(res)
      // What was read while nobody looked may be seconds old: read again now.
      if (streams.size === 1) view.wake()
      const heartbeat = setInterval(() => { res.write(': keep-alive\n\n') }, consoleDefaults.sseHeartbeatMs)
      req.on('close', () => { clearInterval(heartbeat); streams.delete(res) })
      return
    }
    if (req.method === 'GET' && path === '/api/report') {
      sendJson(res, 200, await readRun(options.labDir, url.searchParams.get('run') ?? 'scenario'))
      return
    }
    if (req.method === 'POST' && path.startsWith('/api/')) {
      const action = Object.hasOwn(actions, path.slice(5)) ? actions[path.slice(5)] : undefined
      if (action === undefined) { sendJson(res, 404, { code: 'NOT_FOUND', message: `no action ${path}` }); return }
      const body = await readBody(req)
      let result: unknown
      try {
        result = await action(body)
      } catch (err) {
        if (err instanceof ConsoleError) throw err
        throw new ConsoleError(CONSOLE_ERR_LAB, (err as Error).message, { cause: err })
      }
      // What the action changed shows on every page at once, not at the next poll.
      await view.refresh().catch(() => {})
      sendJson(res, 200, { ok: true, result })
      return
    }
    sendJson(res, 404, { code: 'NOT_FOUND', message: `no ${req.method ?? ''} ${path}` })
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof ConsoleError && err.code === CONSOLE_ERR_REQUEST ? 400 : 502
      options.logger?.info({ method: req.method, path: new URL(req.url ?? '/', 'http://127.0.0.1').pathname, status, code: (err as { code?: string }).code, err: (err as Error).message }, 'request failed')
      if (res.headersSent) { res.destroy(); return }
      sendJson(res, status, { code: (err as { code?: string }).code ?? CONSOLE_ERR_LAB, message: (err as Error).message })
    })
  })
  server.on('upgrade', (req, socket) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const verdict = (guard as Guard).check(req, url)
    if (!verdict.ok || url.pathname !== '/api/terminal' || req.headers.origin === undefined) {
      // A WebSocket must come from the console's own page: a browser always sends its Origin.
      const status = !verdict.ok ? verdict.status : req.headers.origin === undefined ? 403 : 404
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Not Found'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
      return
    }
    terminals.accept(req, socket)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', err => { reject(new ConsoleError(CONSOLE_ERR_LISTEN, `cannot listen on ${consoleDefaults.host}:${options.port ?? consoleDefaults.port}: ${err.message}`, { cause: err })) })
    server.listen(options.port ?? consoleDefaults.port, consoleDefaults.host, () => { resolve() })
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  guard = new Guard(token, port)
  await view.start()
  const endpoint = `http://127.0.0.1:${port}`
  let stopping: Promise<void> | undefined
  return {
    port,
    endpoint,
    url: `${endpoint}/?token=${token}`,
    stop: async () => {
      stopping ??= (async () => {
        for (const res of streams) res.end()
        streams.clear()
        terminals.closeAll()
        await view.stop()
        await new Promise<void>(resolve => { server.close(() => { resolve() }); server.closeAllConnections() })
      })()
      await stopping
    }
  }
}
