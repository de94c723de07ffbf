/**
 * The HSM processes of a region on HSM hosts (hsm-host.ts), for a control plane started with
 * `--hsm-hosts FILE`: each host owns one address of an availability zone's subnet (the ENI IP of
 * the HSM placed there) and runs that HSM for the control plane, as the real service puts each
 * HSM in an elastic network interface of the customer's subnet. The control plane uses it as it
 * uses `HsmSupervisor`: it starts, stops and kills HSMs through their hosts' APIs and notices an
 * exit by a long poll on each running HSM's host (`GET /hsm?pid=…&waitMs=…`); a host that does
 * not answer for `unreachableMs` counts as an exit of its HSM (restarted on the host once it
 * answers again). What to do about an exit stays the control plane's decision.
 *
 * The hosts file: `[{"address": "10.201.1.21", "availabilityZone": "us-east-1a", "url":
 * "http://hsm-us-east-1-a:8090"}, ...]`, one entry per host.
 */
import { readFile, rm } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { ControlPlaneError, CP_ERR_HSM_HOST, CP_ERR_HSM_HOSTS_FILE } from './errors.js'
import type { HsmHostErrorBody, HsmHostReport, HsmHostStartRequest } from './hsm-host.js'
import { HsmStartError } from './hsm-supervisor.js'
import type { HsmExit, HsmPaths, HsmProcesses } from './hsm-supervisor.js'
import type { Logger } from './logger.js'

/** One HSM host of the hosts file. */
export interface HsmHostEntry {
  /** The address its HSM listens on: the EniIp of the HSM placed there. */
  address: string
  /** The availability zone of its subnet (`us-east-1a`). */
  availabilityZone: string
  /** Its API (`http://hsm-us-east-1-a:8090`). */
  url: string
}

/** Reads and checks a hosts file for `region`; throws CP_ERR_HSM_HOSTS_FILE saying what is wrong. */
export async function readHsmHostsFile (file: string, region: string): Promise<HsmHostEntry[]> {
  const fail = (message: string, cause?: unknown): never => {
    throw new ControlPlaneError(CP_ERR_HSM_HOSTS_FILE, `the HSM hosts file ${file} ${message}`, cause === undefined ? undefined : { cause })
  }
  let json: unknown
  try {
    json = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    fail(`cannot be read as JSON: ${(err as Error).message}`, err)
  }
  if (!Array.isArray(json) || json.length === 0) fail('must be a JSON list of hosts: [{"address", "availabilityZone", "url"}, ...]')
  const hosts: HsmHostEntry[] = []
  for (const [i, entry] of (json as unknown[]).entries()) {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>
    const { address, availabilityZone: zone, url } = e
    if (typeof address !== 'string' || !isIPv4(address) || address === '0.0.0.0') fail(`: host ${i} has no IPv4 address its HSM listens on (address)`)
    if (typeof zone !== 'string' || !new RegExp(`^${region}[a-z]$`).test(zone)) fail(`: host ${i} has availabilityZone ${JSON.stringify(zone)}, not one of ${region}a, ${region}b, ...`)
    if (typeof url !== 'string' || !/^https?:\/\/[^/]+\/?$/.test(url)) fail(`: host ${i} has url ${JSON.stringify(url)}, not http://host:port`)
    if (hosts.some(h => h.address === address)) fail(`lists address ${String(address)} twice`)
    hosts.push({ address: address as string, availabilityZone: zone as string, url: (url as string).replace(/\/$/, '') })
  }
  return hosts
}

/** Options of `RemoteHsmSupervisor`. */
export interface RemoteSupervisorOptions {
  hosts: readonly HsmHostEntry[]
  /** The address (EniIp) the control plane's state records for HSM `hsmId`. */
  addressOf: (hsmId: string) => string | undefined
  /** How long an HSM may take to be ready on its host, in milliseconds. */
  readyTimeoutMs: number
  /** How long it may take to stop there (SIGTERM, then SIGKILL), in milliseconds. */
  stopTimeoutMs: number
  /** Deadline of a request to a host beyond those, in milliseconds. */
  requestTimeoutMs: number
  /** How long one long poll waits on a host, in milliseconds. */
  waitMs: number
  /** How long a host may go unanswered before its HSM counts as gone, in milliseconds. */
  unreachableMs: number
  /** Delay between two tries to reach a host that did not answer, in milliseconds. */
  retryMs: number
  log: Logger
  /** Called when a process ends without `stop` or `kill` having been asked. */
  onExit: (hsmId: string, exit: HsmExit) => void
}

interface Tracked {
  host: HsmHostEntry
  pid: number
  stopping: boolean
  /** Ends its long poll. */
  watch: AbortController
}

/** A host's error answer, with what it said. */
class HostAnswer extends ControlPlaneError {
  readonly status: number
  readonly detail: HsmHostErrorBody['error'] | undefined
  constructor (status: number, message: string, detail?: HsmHostErrorBody['error']) {
    super(CP_ERR_HSM_HOST, message)
    this.status = status
    this.detail = detail
  }
}

/** Runs a region's HSM processes on its HSM hosts. */
export class RemoteHsmSupervisor implements HsmProcesses {
  private readonly opts: RemoteSupervisorOptions
  private readonly tracked = new Map<string, Tracked>()

  constructor (opts: RemoteSupervisorOptions) {
    this.opts = opts
  }

  pidOf (hsmId: string): number | undefined {
    return this.tracked.get(hsmId)?.pid
  }

  private hostAt (address: string | undefined): HsmHostEntry | undefined {
    return this.opts.hosts.find(h => h.address === address)
  }

  /** One request to a host; its report, or ControlPlaneError CP_ERR_HSM_HOST (a `HostAnswer` when it answered an error). */
  private async call (host: HsmHostEntry, path: string, body: object | undefined, timeoutMs: number, signal?: AbortSignal): Promise<HsmHostReport> {
    const deadline = AbortSignal.timeout(timeoutMs)
    let response: Response
    let text: string
    try {
      response = await fetch(`${host.url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        signal: signal === undefined ? deadline : AbortSignal.any([deadline, signal])
      })
      text = await response.text()
    } catch (err) {
      const why = deadline.aborted ? `no answer within ${timeoutMs} ms` : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message
      throw new ControlPlaneError(CP_ERR_HSM_HOST, `the HSM host ${host.url} (${host.address}) cannot be reached: ${why}`, { cause: err })
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new HostAnswer(response.status, `the HSM host ${host.url} (${host.address}) answered ${response.status} with something that is not JSON`)
    }
    if (!response.ok) {
      const detail = (json as Partial<HsmHostErrorBody>).error
      throw new HostAnswer(response.status, detail?.message ?? `the HSM host ${host.url} answered ${response.status}`, detail)
    }
    return json as HsmHostReport
  }

  private track (hsmId: string, host: HsmHostEntry, pid: number): void {
    const entry: Tracked = { host, pid, stopping: false, watch: new AbortController() }
    this.tracked.set(hsmId, entry)
    void this.follow(hsmId, entry)
  }

  private ended (hsmId: string, entry: Tracked, exit: HsmExit): void {
    if (this.tracked.get(hsmId) === entry) this.tracked.delete(hsmId)
    entry.watch.abort()
    if (!entry.stopping) this.opts.onExit(hsmId, exit)
  }

  /** The long poll on one running HSM's host, until the HSM no longer runs as `entry.pid`. */
  private async follow (hsmId: string, entry: Tracked): Promise<void> {
    let unansweredSince: number | undefined
    while (this.tracked.get(hsmId) === entry) {
      let report: HsmHostReport
      try {
        report = await this.call(entry.host, `/hsm?pid=${entry.pid}&waitMs=${this.opts.waitMs}`, undefined, this.opts.waitMs + this.opts.requestTimeoutMs, entry.watch.signal)
      } catch (err) {
        if (entry.watch.signal.aborted) return
        unansweredSince ??= Date.now()
        if (Date.now() - unansweredSince >= this.opts.unreachableMs) {
          this.ended(hsmId, entry, { code: null, signal: null, logTail: `${(err as Error).message} (for ${Date.now() - unansweredSince} ms)` })
          return
        }
        await delay(this.opts.retryMs, undefined, { signal: entry.watch.signal }).catch(() => {})
        continue
      }
      unansweredSince = undefined
      if (report.state === 'running' && report.hsmId === hsmId && report.pid === entry.pid) continue
      this.opts.log.info({ hsmId, host: entry.host.url, state: report.state }, 'the HSM no longer runs on its host')
      this.ended(hsmId, entry, report.exit ?? { code: null, signal: null, logTail: `its HSM host reports it ${report.state}` })
      return
    }
  }

  /**
   * Starts HSM `hsmId` on the host of `net.host`, sending it the provision file and the backup to
   * restore when there are; resolves with its pid and port once ready. Throws HsmStartError with
   * the HSM's exit code when it failed to start, without one when the host could not start it.
   */
  async start (hsmId: string, paths: HsmPaths, net: { host: string, port: number }, provision: boolean, onSpawn?: (pid: number) => Promise<void>): Promise<{ pid: number, port: number }> {
    if (this.tracked.has(hsmId)) throw new HsmStartError(`${hsmId} is already running (pid ${this.tracked.get(hsmId)?.pid ?? '?'})`)
    const host = this.hostAt(net.host)
    if (host === undefined) throw new HsmStartError(`${hsmId} is at ${net.host}, where no HSM host of the hosts file is`)
    const provisionText = provision ? await readFile(paths.provisionFile, 'utf8').catch(() => undefined) : undefined
    const backup = await readFile(paths.restoreFile).catch(() => undefined)
    const request: HsmHostStartRequest = {
      hsmId,
      address: host.address,
      port: net.port,
      ...(provisionText === undefined ? {} : { provision: provisionText }),
      ...(backup === undefined ? {} : { backup: backup.toString('base64') })
    }
    let report: HsmHostReport
    try {
      report = await this.call(host, '/hsm/start', request, this.opts.readyTimeoutMs + this.opts.requestTimeoutMs)
    } catch (err) {
      const detail = err instanceof HostAnswer ? err.detail : undefined
      if (detail?.exitCode !== undefined || (err instanceof HostAnswer && err.status === 422)) {
        // The HSM names the host's copy of the backup; the control plane knows its own.
        const message = detail?.restoreFile === undefined ? (err as Error).message : (err as Error).message.replaceAll(detail.restoreFile, resolve(paths.restoreFile))
        throw new HsmStartError(message, detail?.exitCode)
      }
      throw new HsmStartError(`${hsmId} cannot be started on its HSM host: ${(err as Error).message}`)
    }
    if (report.state !== 'running' || report.hsmId !== hsmId || report.pid === undefined || report.port === undefined) {
      throw new HsmStartError(`${hsmId}: its HSM host ${host.url} answered the start with ${JSON.stringify(report)}`)
    }
    this.track(hsmId, host, report.pid)
    await onSpawn?.(report.pid)
    // The host's copy is the HSM's now, which deletes it once provisioned, as it does a local one.
    await rm(paths.provisionFile, { force: true })
    this.opts.log.info({ hsmId, host: host.url, pid: report.pid, port: report.port }, 'HSM started on its host')
    return { pid: report.pid, port: report.port }
  }

  /** Watches HSM `hsmId` if its host runs it as process `pid`; false when it does not (or does not answer). */
  async adopt (hsmId: string, pid: number, _paths: HsmPaths, _pollMs: number): Promise<boolean> {
    if (this.tracked.has(hsmId)) return this.tracked.get(hsmId)?.pid === pid
    const host = this.hostAt(this.opts.addressOf(hsmId))
    if (host === undefined) return false
    try {
      const report = await this.call(host, '/hsm', undefined, this.opts.requestTimeoutMs)
      if (report.state !== 'running' || report.hsmId !== hsmId || report.pid !== pid) return false
    } catch (err) {
      this.opts.log.warn({ hsmId, err: (err as Error).message }, 'cannot ask the HSM host whether the HSM runs')
      return false
    }
    this.track(hsmId, host, pid)
    this.opts.log.info({ hsmId, host: host.url, pid }, 'HSM process adopted on its host')
    return true
  }

  private async end (hsmId: string, how: 'stop' | 'kill'): Promise<void> {
    const entry = this.tracked.get(hsmId)
    if (entry === undefined) return
    entry.stopping = true
    try {
      await this.call(entry.host, `/hsm/${how}`, { hsmId }, (how === 'stop' ? this.opts.stopTimeoutMs : 0) + this.opts.requestTimeoutMs)
    } finally {
      this.ended(hsmId, entry, { code: null, signal: null, logTail: '' })
    }
  }

  /** Stops HSM `hsmId` on its host (SIGTERM, then SIGKILL there); resolves once it is gone. */
  async stop (hsmId: string): Promise<void> {
    await this.end(hsmId, 'stop')
  }

  /** Kills HSM `hsmId` on its host (SIGKILL); resolves once it is gone. */
  async kill (hsmId: string): Promise<void> {
    await this.end(hsmId, 'kill')
  }

  /** Has the host of HSM `hsmId` delete it (stopping it if it runs); the host is then free for another HSM. */
  async removeData (hsmId: string, _paths: HsmPaths): Promise<void> {
    const host = this.hostAt(this.opts.addressOf(hsmId))
    if (host === undefined) {
      this.opts.log.warn({ hsmId, address: this.opts.addressOf(hsmId) }, 'no HSM host of the hosts file has this HSM\'s address: nothing to delete')
      return
    }
    await this.call(host, '/hsm/delete', { hsmId }, this.opts.stopTimeoutMs + this.opts.requestTimeoutMs)
  }

  /**
   * Stops watching every HSM and leaves them running: they belong to their hosts, which stop them
   * when they stop (their containers), and the next control plane adopts them.
   */
  async stopAll (): Promise<void> {
    this.detachAll()
  }

  /** Forgets every HSM without stopping it. */
  detachAll (): void {
    for (const entry of this.tracked.values()) {
      entry.stopping = true
      entry.watch.abort()
    }
    this.tracked.clear()
  }
}
