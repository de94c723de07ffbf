/**
 * An HSM host: the agent of one address, as the real service places each HSM in an elastic
 * network interface of the customer's subnet. It owns that address (its container's, in the
 * Docker lab) and runs at most one HSM process there on a control plane's behalf, with
 * `HsmSupervisor` (the control plane's own spawner) in a data directory of its own; the
 * manufacturer key file is passed on to the HSM, never read. A control plane started with
 * `--hsm-hosts` drives its hosts through `RemoteHsmSupervisor`.
 *
 * The API (JSON; errors `{"error": {"code", "message", "exitCode"?, "restoreFile"?}}`):
 *
 * - `GET /hsm[?pid=P&waitMs=N]`: the report (`HsmHostReport`); with `pid` and `waitMs`, answered
 *   once the HSM is no longer running as process P, or after N ms (at most `waitMsMax`): the
 *   control plane's long poll, by which it notices an exit.
 * - `POST /hsm/start` `{hsmId, address, port, provision?, backup?}`: the provision file's text
 *   and the bytes (base64) of the backup it restores; answered once the HSM printed its ready
 *   line (200, the report), or failed to start (422, with its exit code: 2 is data that cannot
 *   be loaded). Starting the HSM that runs already answers its report; another one: 409.
 * - `POST /hsm/stop`, `POST /hsm/kill` `{hsmId}`: SIGTERM then SIGKILL after
 *   `hsmStopTimeoutMs`, or SIGKILL; answered once it is gone.
 * - `POST /hsm/delete` `{hsmId}`: stops it and deletes its files; the host is free again.
 *
 * Changes are made one at a time. What runs is recorded in `hsm-host.json`, so a host killed
 * with SIGKILL leaves its HSM running and the next one on the same directory adopts it; a host
 * stopped with SIGTERM stops its HSM first.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { isIPv4 } from 'node:net'
import type { AddressInfo } from 'node:net'
import { mkdir, readFile, rm, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { HSM_BIN_PATH, readProvisionFile, writeProvisionFile } from '@hsmlab/hsm'
import type { LevelWithSilent } from 'pino'
import { HSM_HOST_LOCK_FILE_NAME, hsmHostDefaults, requestTimeouts } from './defaults.js'
import { ControlPlaneError, CP_ERR_HSM, CP_ERR_HSM_HOST, CP_ERR_INVALID_ARGUMENT, CP_ERR_LISTEN } from './errors.js'
import { HsmStartError, HsmSupervisor, hsmPaths } from './hsm-supervisor.js'
import type { HsmExit } from './hsm-supervisor.js'
import { LOG_LEVELS, createLogger, forComponent } from './logger.js'
import type { Logger } from './logger.js'
import { writeFileAtomic } from '@hsmlab/process'
import { lockDataDir } from './state-store.js'

/** Where the host's HSM is: `none` (the host is free), or the life of its one HSM. */
export type HsmHostState = 'none' | 'starting' | 'running' | 'stopped' | 'exited'

/** What `GET /hsm` answers. */
export interface HsmHostReport {
  /** The address the host's HSM listens on (its EniIp). */
  address: string
  state: HsmHostState
  hsmId?: string
  /** While `running` (and `starting`, once spawned). */
  pid?: number
  /** While `running`. */
  port?: number
  /** When `exited`: how it ended (or why it failed to start). */
  exit?: HsmExit
}

/** The body of `POST /hsm/start`. */
export interface HsmHostStartRequest {
  hsmId: string
  /** The address the control plane placed the HSM at: it must be this host's. */
  address: string
  /** 0 for any. */
  port: number
  /** The provision file's text, for an HSM not provisioned yet. */
  provision?: string
  /** Base64 of the backup the provision file restores. */
  backup?: string
}

/** An error answer of the host's API. */
export interface HsmHostErrorBody {
  error: { code: string, message: string, exitCode?: number, restoreFile?: string }
}

type HostNumericDefaults = { [K in keyof typeof hsmHostDefaults as (typeof hsmHostDefaults)[K] extends number ? K : never]: number }

/** Delays and limits of an HSM host (see `hsmHostDefaults` for each one's meaning, unit and default). */
export type HsmHostTuning = Omit<HostNumericDefaults, 'port'>

/** Options of `startHsmHost`. */
export interface HsmHostOptions {
  /** The IPv4 address its HSM listens on, where clients reach it (the container's). */
  address: string
  /** Where it keeps its HSM's data (`hsms/<hsm id>/`, as a control plane does) and `hsm-host.json`. */
  dataDir: string
  /** Passed to the HSM process (`--manufacturer-key-file`); the host never reads it. */
  manufacturerKeyFile: string
  /** Address its API binds. @default '127.0.0.1' */
  host?: string
  /** @default 0 */
  port?: number
  /** Log level of a logger made for it (ignored when `logger` is given). @default 'silent' */
  logLevel?: LevelWithSilent
  logger?: Logger
  /** `--log-level` of the HSM process. @default 'warn' */
  hsmLogLevel?: string
  /** The HSM script to run. @default HSM_BIN_PATH of @hsmlab/hsm */
  hsmBinPath?: string
  /** Limits and delays; see `hsmHostDefaults`. */
  tuning?: Partial<HsmHostTuning>
}

/** A running HSM host. */
export interface HsmHost {
  address: string
  port: number
  /** `http://host:port` of its API, for a control plane's hosts file. */
  url: string
  dataDir: string
  /** Stops it; its HSM is stopped first unless `stopHsm` is false (the next host adopts it). Safe to call twice. */
  stop: (opts?: { stopHsm?: boolean }) => Promise<void>
}

const STATE_FILE_NAME = 'hsm-host.json'

/** What `hsm-host.json` records: the host's HSM, and its process while it runs. */
interface Recorded { hsmId?: string, pid?: number, port?: number }

class HostError extends ControlPlaneError {
  readonly status: number
  readonly exitCode: number | undefined
  readonly restoreFile: string | undefined
  constructor (status: number, code: string, message: string, extra: { exitCode?: number, restoreFile?: string } = {}) {
    super(code, message)
    this.status = status
    this.exitCode = extra.exitCode
    this.restoreFile = extra.restoreFile
  }
}

function checkHsmId (value: unknown): string {
  if (typeof value !== 'string' || !/^hsm-[2-7a-zA-Z]{11,16}$/.test(value)) throw new HostError(400, CP_ERR_INVALID_ARGUMENT, `hsmId must be an HSM id (hsm-...), not ${JSON.stringify(value)}`)
  return value
}

function checkStart (body: Record<string, unknown>): HsmHostStartRequest {
  const bad = (message: string): never => { throw new HostError(400, CP_ERR_INVALID_ARGUMENT, message) }
  const { address, port, provision, backup } = body
  if (typeof address !== 'string') bad('address must be a string')
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) bad('port must be 0 to 65535')
  if (provision !== undefined && typeof provision !== 'string') bad('provision must be the provision file\'s text')
  if (backup !== undefined && (typeof backup !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(backup))) bad('backup must be base64')
  return {
    hsmId: checkHsmId(body.hsmId),
    address: address as string,
    port: port as number,
    ...(provision === undefined ? {} : { provision: provision as string }),
    ...(backup === undefined ? {} : { backup: backup as string })
  }
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

class HostAgent {
  readonly address: string
  readonly dataDir: string
  readonly tuning: HsmHostTuning
  readonly log: Logger
  private readonly supervisor: HsmSupervisor
  private current: { hsmId: string, state: Exclude<HsmHostState, 'none'>, pid?: number, port?: number, exit?: HsmExit } | undefined
  /** The change in progress; the next waits for it. */
  private changing: Promise<unknown> = Promise.resolve()
  private readonly waiters = new Set<() => void>()

  constructor (init: { address: string, dataDir: string, tuning: HsmHostTuning, log: Logger, binPath: string, manufacturerKeyFile: string, hsmLogLevel: string }) {
    this.address = init.address
    this.dataDir = init.dataDir
    this.tuning = init.tuning
    this.log = init.log
    this.supervisor = new HsmSupervisor({
      binPath: init.binPath,
      manufacturerKeyFile: init.manufacturerKeyFile,
      logLevel: init.hsmLogLevel,
      readyTimeoutMs: init.tuning.hsmReadyTimeoutMs,
      stopTimeoutMs: init.tuning.hsmStopTimeoutMs,
      log: init.log,
      // Recording the exit can fail (a full disk); an unhandled rejection would end the host.
      onExit: (hsmId, exit) => { this.exited(hsmId, exit).catch(err => { this.log.warn({ hsmId, err: (err as Error).message }, 'recording the exit of an HSM process failed') }) }
    })
  }

  report (): HsmHostReport {
    const c = this.current
    if (c === undefined) return { address: this.address, state: 'none' }
    return {
      address: this.address,
      state: c.state,
      hsmId: c.hsmId,
      ...(c.pid === undefined ? {} : { pid: c.pid }),
      ...(c.port === undefined ? {} : { port: c.port }),
      ...(c.exit === undefined ? {} : { exit: c.exit })
    }
  }

  private async set (next: HostAgent['current']): Promise<void> {
    this.current = next
    for (const wake of [...this.waiters]) wake()
    const recorded: Recorded = next === undefined ? {} : { hsmId: next.hsmId, ...(next.pid === undefined ? {} : { pid: next.pid }), ...(next.port === undefined ? {} : { port: next.port }) }
    await writeFileAtomic(join(this.dataDir, STATE_FILE_NAME), `${JSON.stringify(recorded)}\n`)
  }

  /** Runs one change after the previous one. */
  private async serial<T> (work: () => Promise<T>): Promise<T> {
    const run = this.changing.then(work, work)
    this.changing = run.catch(() => {})
    return await run
  }

  /** Picks up what a previous host on this directory left: its HSM adopted if it still runs. */
  async recover (): Promise<void> {
    const recorded = JSON.parse(await readFile(join(this.dataDir, STATE_FILE_NAME), 'utf8').catch(() => '{}')) as Recorded
    if (recorded.hsmId === undefined) return
    const hsmId = recorded.hsmId
    const paths = hsmPaths(this.dataDir, hsmId)
    const alive = recorded.pid !== undefined && await this.supervisor.adopt(hsmId, recorded.pid, paths, this.tuning.adoptedPollMs)
    if (alive && recorded.pid !== undefined && recorded.port !== undefined) {
      this.current = { hsmId, state: 'running', pid: recorded.pid, port: recorded.port }
      this.log.info({ hsmId, pid: recorded.pid }, 'HSM adopted')
      return
    }
    // Started but never seen ready: nothing would tell its control plane it is, so it goes.
    if (alive) await this.supervisor.kill(hsmId)
    const how = recorded.pid === undefined ? 'stopped' : 'exited'
    await this.set(how === 'stopped' ? { hsmId, state: how } : { hsmId, state: how, exit: { code: null, signal: null, logTail: `the HSM process (pid ${recorded.pid ?? '?'}) was gone when the HSM host started` } })
  }

  private async exited (hsmId: string, exit: HsmExit): Promise<void> {
    await this.serial(async () => {
      // Only the exit of the process that runs now: a newer start of the same HSM is tracked again.
      if (this.current?.hsmId !== hsmId || this.current.state !== 'running' || this.supervisor.pidOf(hsmId) !== undefined) return
      this.log.warn({ hsmId, code: exit.code, signal: exit.signal }, 'HSM process exited')
      await this.set({ hsmId, state: 'exited', exit })
    })
  }

  async start (req: HsmHostStartRequest): Promise<HsmHostReport> {
    return await this.serial(async () => {
      if (req.address !== this.address) {
        throw new HostError(400, CP_ERR_INVALID_ARGUMENT, `this HSM host's address is ${this.address}, not ${req.address}: check the control plane's hosts file`)
      }
      const c = this.current
      if (c?.hsmId === req.hsmId && c.state === 'running') return this.report()
      if (c !== undefined && c.hsmId !== req.hsmId && (c.state === 'running' || c.state === 'starting')) {
        throw new HostError(409, CP_ERR_HSM_HOST, `this HSM host (${this.address}) runs ${c.hsmId}; delete it before placing ${req.hsmId} here`)
      }
      const paths = hsmPaths(this.dataDir, req.hsmId)
      await mkdir(paths.dir, { recursive: true, mode: 0o700 })
      if (req.backup !== undefined) await writeFileAtomic(paths.restoreFile, Buffer.from(req.backup, 'base64'))
      if (req.provision !== undefined) {
        await writeFileAtomic(paths.provisionFile, req.provision)
        if (req.backup !== undefined) {
          // The file names the control plane's copy of the backup; the HSM restores this host's.
          let file
          try {
            file = await readProvisionFile(paths.provisionFile)
          } catch (err) {
            throw new HostError(400, CP_ERR_INVALID_ARGUMENT, (err as Error).message)
          }
          await writeProvisionFile(paths.provisionFile, { ...file, backupFile: resolve(paths.restoreFile) })
        }
      }
      // A provision file left by an earlier attempt still applies: the HSM deletes it once provisioned.
      const provision = await exists(paths.provisionFile)
      await this.set({ hsmId: req.hsmId, state: 'starting' })
      try {
        const ran = await this.supervisor.start(req.hsmId, paths, { host: this.address, port: req.port }, provision, async pid => {
          await this.set({ hsmId: req.hsmId, state: 'starting', pid })
        })
        await this.set({ hsmId: req.hsmId, state: 'running', pid: ran.pid, port: ran.port })
        await rm(paths.restoreFile, { force: true })
        return this.report()
      } catch (err) {
        const exitCode = err instanceof HsmStartError ? err.exitCode : undefined
        const message = (err as Error).message
        await this.set({ hsmId: req.hsmId, state: 'exited', exit: { code: exitCode ?? null, signal: null, logTail: message } })
        throw new HostError(422, CP_ERR_HSM, message, { ...(exitCode === undefined ? {} : { exitCode }), restoreFile: resolve(paths.restoreFile) })
      }
    })
  }

  /** Stops (SIGTERM, then SIGKILL) or kills its HSM if it is `hsmId`; resolves once it is gone. */
  async stop (hsmId: string, how: 'stop' | 'kill'): Promise<HsmHostReport> {
    return await this.serial(async () => {
      const c = this.current
      if (c?.hsmId !== hsmId) return this.report()
      if (this.supervisor.pidOf(hsmId) !== undefined) await (how === 'kill' ? this.supervisor.kill(hsmId) : this.supervisor.stop(hsmId))
      if (c.state === 'running' || c.state === 'starting') await this.set({ hsmId, state: 'stopped' })
      return this.report()
    })
  }

  /** Stops HSM `hsmId` if it is this host's and deletes its files; the host is then free. */
  async remove (hsmId: string): Promise<HsmHostReport> {
    return await this.serial(async () => {
      if (this.current?.hsmId === hsmId) {
        await this.supervisor.stop(hsmId)
        await this.set(undefined)
      }
      await rm(hsmPaths(this.dataDir, hsmId).dir, { recursive: true, force: true })
      this.log.info({ hsmId }, 'HSM deleted')
      return this.report()
    })
  }

  /** Resolves once the HSM no longer runs as process `pid`, after `waitMs`, or when `closed` aborts. */
  async whileRunning (pid: number, waitMs: number, closed: AbortSignal): Promise<HsmHostReport> {
    const deadline = Date.now() + Math.min(waitMs, this.tuning.waitMsMax)
    while (this.current?.state === 'running' && this.current.pid === pid && Date.now() < deadline && !closed.aborted) {
      await new Promise<void>(resolveWait => {
        const wake = (): void => {
          clearTimeout(timer)
          this.waiters.delete(wake)
          closed.removeEventListener('abort', wake)
          resolveWait()
        }
        const timer = setTimeout(wake, Math.max(0, deadline - Date.now()))
        this.waiters.add(wake)
        closed.addEventListener('abort', wake)
      })
    }
    return this.report()
  }

  /** On the host's stop: its HSM is stopped (or left running, to be adopted), every long poll answered. */
  async close (stopHsm: boolean): Promise<void> {
    await this.serial(async () => {
      const c = this.current
      if (stopHsm && c !== undefined && this.supervisor.pidOf(c.hsmId) !== undefined) {
        await this.supervisor.stop(c.hsmId)
        if (c.state === 'running' || c.state === 'starting') await this.set({ hsmId: c.hsmId, state: 'stopped' })
      } else {
        this.supervisor.detachAll()
      }
    })
    for (const wake of [...this.waiters]) wake()
  }
}

async function readJson (req: IncomingMessage, max: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > max) throw new HostError(413, CP_ERR_INVALID_ARGUMENT, `the request body is larger than ${max} bytes`)
    chunks.push(chunk as Buffer)
  }
  let body: unknown
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HostError(400, CP_ERR_INVALID_ARGUMENT, 'the request body is not JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HostError(400, CP_ERR_INVALID_ARGUMENT, 'the request body must be a JSON object')
  return body as Record<string, unknown>
}

function send (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function createHostServer (agent: HostAgent): Server {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://hsm-host')
    if (url.pathname === '/hsm' && req.method === 'GET') {
      const pid = Number(url.searchParams.get('pid'))
      const waitMs = Number(url.searchParams.get('waitMs'))
      if (!Number.isSafeInteger(pid) || pid <= 0 || !(waitMs > 0)) {
        send(res, 200, agent.report())
        return
      }
      const closed = new AbortController()
      res.once('close', () => { closed.abort() })
      send(res, 200, await agent.whileRunning(pid, waitMs, closed.signal))
      return
    }
    const action = /^\/hsm\/(start|stop|kill|delete)$/.exec(url.pathname)?.[1]
    if (action === undefined || req.method !== 'POST') throw new HostError(404, CP_ERR_INVALID_ARGUMENT, `no such path: ${req.method ?? ''} ${url.pathname}`)
    const body = await readJson(req, agent.tuning.requestBodyBytesMax)
    if (action === 'start') send(res, 200, await agent.start(checkStart(body)))
    else if (action === 'delete') send(res, 200, await agent.remove(checkHsmId(body.hsmId)))
    else send(res, 200, await agent.stop(checkHsmId(body.hsmId), action === 'kill' ? 'kill' : 'stop'))
  }
  // Bounded, so that slow or half-sent requests do not hold connections open (issue 9).
  return createServer(requestTimeouts(agent.tuning), (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) { res.destroy(); return }
      const e = err instanceof HostError ? err : new HostError(500, CP_ERR_HSM_HOST, `the HSM host failed: ${(err as Error).message}`)
      if (e.status === 500) agent.log.error({ err }, 'request failed unexpectedly')
      const body: HsmHostErrorBody = {
        error: { code: e.code, message: e.message, ...(e.exitCode === undefined ? {} : { exitCode: e.exitCode }), ...(e.restoreFile === undefined ? {} : { restoreFile: e.restoreFile }) }
      }
      send(res, e.status, body)
    })
  })
}

function checkOptions (options: HsmHostOptions): void {
  const fail = (message: string): never => { throw new ControlPlaneError(CP_ERR_INVALID_ARGUMENT, message) }
  if (!isIPv4(options.address) || options.address === '0.0.0.0') fail(`address must be the IPv4 address its HSM listens on and clients reach, not '${options.address}'`)
  if (options.dataDir === '') fail('dataDir is required')
  if (options.manufacturerKeyFile === '') fail('manufacturerKeyFile is required')
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)) fail(`port must be 0 to 65535, not ${options.port}`)
  if (options.logLevel !== undefined && !LOG_LEVELS.includes(options.logLevel)) fail(`logLevel must be one of ${LOG_LEVELS.join(', ')}`)
  for (const [k, v] of Object.entries(options.tuning ?? {})) {
    if (!(k in hsmHostDefaults)) fail(`unknown tuning option ${k}`)
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(`tuning option ${k} must be a number ≥ 0, not ${String(v)}`)
  }
}

/** Starts an HSM host: adopts the HSM a previous host left running, then listens. */
export async function startHsmHost (options: HsmHostOptions): Promise<HsmHost> {
  checkOptions(options)
  const dataDir = resolve(options.dataDir)
  const host = options.host ?? hsmHostDefaults.host
  const logger = options.logger ?? createLogger(options.logLevel ?? 'silent')
  const log = forComponent(logger, 'hsm-host').child({ address: options.address })
  const tuning: HsmHostTuning = { ...(hsmHostDefaults as unknown as HsmHostTuning), ...options.tuning }
  const release = await lockDataDir(dataDir, { what: 'HSM host', file: HSM_HOST_LOCK_FILE_NAME })
  const agent = new HostAgent({
    address: options.address,
    dataDir,
    tuning,
    log,
    binPath: options.hsmBinPath ?? HSM_BIN_PATH,
    manufacturerKeyFile: resolve(options.manufacturerKeyFile),
    hsmLogLevel: options.hsmLogLevel ?? hsmHostDefaults.hsmLogLevel
  })
  const server = createHostServer(agent)
  try {
    await mkdir(join(dataDir, 'hsms'), { recursive: true, mode: 0o700 })
    await agent.recover()
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', err => { reject(new ControlPlaneError(CP_ERR_LISTEN, `cannot listen on ${host}:${options.port ?? 0}: ${err.message}`, { cause: err })) })
      server.listen(options.port ?? hsmHostDefaults.port, host, () => { resolveListen() })
    })
  } catch (err) {
    await agent.close(false)
    server.close()
    await release()
    throw err
  }
  const port = (server.address() as AddressInfo).port
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  log.info({ url }, 'HSM host listening')
  let stopped: Promise<void> | undefined
  return {
    address: options.address,
    port,
    url,
    dataDir,
    stop: async (opts = {}) => {
      stopped ??= (async () => {
        const closed = new Promise<void>(resolveClose => { server.close(() => { resolveClose() }) })
        await agent.close(opts.stopHsm ?? true)
        server.closeAllConnections()
        await closed
        await release()
        log.info('HSM host stopped')
      })()
      await stopped
    }
  }
}
