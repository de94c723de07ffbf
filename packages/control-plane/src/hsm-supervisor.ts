/**
 * The HSM processes of one region: `node HSM_BIN_PATH --data-dir ... [--provision FILE]
 * --manufacturer-key-file F --host IP --port P`, each started detached (its own process group),
 * with standard output in a file read until the ready line appears and standard error appended
 * to a log file, so an HSM outlives a control plane killed with SIGKILL and is adopted again by
 * the next one. The supervisor only runs processes and reports their exits; what to do about an
 * exit (restart, mark DEGRADED) is the control plane's decision.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { HSM_NODE_ARGS, HSM_PROCESS_ENV } from '@hsmlab/hsm'
import { isProcessAlive } from '@hsmlab/process'
import { ControlPlaneError, CP_ERR_HSM } from './errors.js'
import { FileWatch } from './file-watch.js'
import type { Logger } from './logger.js'

/** Files of one HSM inside `<data dir>/hsms/<hsm id>/`. */
export interface HsmPaths {
  dir: string
  dataDir: string
  stdoutFile: string
  logFile: string
  provisionFile: string
  restoreFile: string
}

/** The files of HSM `hsmId` under the control plane's data directory. */
export function hsmPaths (root: string, hsmId: string): HsmPaths {
  const dir = join(root, 'hsms', hsmId)
  return {
    dir,
    dataDir: join(dir, 'data'),
    stdoutFile: join(dir, 'stdout.log'),
    logFile: join(dir, 'hsm.log'),
    provisionFile: join(dir, 'provision.json'),
    restoreFile: join(dir, 'restore.backup')
  }
}

/** How an HSM process ended. */
export interface HsmExit {
  code: number | null
  signal: string | null
  /** The end of its log, to say why. */
  logTail: string
}

/** An HSM process that failed to start; `exitCode` 2 means its data (or backup) cannot be loaded. */
export class HsmStartError extends ControlPlaneError {
  readonly exitCode: number | undefined
  constructor (message: string, exitCode?: number) {
    super(CP_ERR_HSM, message)
    this.exitCode = exitCode
  }
}

/** Options of `HsmSupervisor`. */
export interface SupervisorOptions {
  binPath: string
  manufacturerKeyFile: string
  logLevel: string
  readyTimeoutMs: number
  stopTimeoutMs: number
  log: Logger
  /** Called when a process ends without `stop` having been asked. */
  onExit: (hsmId: string, exit: HsmExit) => void
}

interface Tracked {
  pid: number
  child?: ChildProcess
  stopping: boolean
  logFile: string
  gone: Promise<void>
  markGone: () => void
  poll?: NodeJS.Timeout
}

/**
 * How long the supervisor waits for a change of a starting HSM's stdout file before it reads the
 * file anyway, in milliseconds: the ready line is read on the change itself; this only matters on
 * a file system that reports no changes.
 */
const READY_FALLBACK_READ_MS = 50

/** True when `pid` is (by its command line, where the system shows it) an HSM serving `dataDir`. */
export function looksLikeHsm (pid: number, dataDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return cmdline.includes(dataDir)
  } catch {
    // No /proc (macOS): trust the pid; the caller also checks the HSM's identity over the wire.
    return process.platform !== 'linux'
  }
}

async function tail (file: string, offset: number, lines = 15): Promise<string> {
  try {
    const text = (await readFile(file)).subarray(offset).toString('utf8')
    return text.split('\n').filter(l => l.trim() !== '').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

/**
 * What an HSM that failed to start says about why: the one line its bin writes on standard error
 * (`hsmlab-hsm: [HSM_ERR_...] reason`), without the prefix; else the end of its log as it is.
 */
export function startFailureReason (logTail: string): string {
  const own = logTail.split('\n').filter(l => l.startsWith('hsmlab-hsm: ')).at(-1)
  return own === undefined ? logTail : own.slice('hsmlab-hsm: '.length)
}

function parseReady (text: string): { pid: number, host: string, port: number } | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const json = JSON.parse(line) as Record<string, unknown>
      if (json.event === 'ready' && typeof json.pid === 'number' && typeof json.port === 'number') {
        return { pid: json.pid, host: typeof json.host === 'string' ? json.host : '', port: json.port }
      }
    } catch {
      // A line still being written.
    }
  }
  return undefined
}

/**
 * What the control plane asks of whatever runs its HSM processes: `HsmSupervisor` as its own
 * children, or `RemoteHsmSupervisor` on HSM hosts (remote-hsm-supervisor.ts).
 */
export interface HsmProcesses {
  /** The pid of HSM `hsmId`'s process while it is known to run. */
  pidOf: (hsmId: string) => number | undefined
  /** Starts it; resolves with its pid and port once ready; throws HsmStartError otherwise. */
  start: (hsmId: string, paths: HsmPaths, net: { host: string, port: number }, provision: boolean, onSpawn?: (pid: number) => Promise<void>) => Promise<{ pid: number, port: number }>
  /** Watches a process started earlier (recorded as `pid`) if it still runs as HSM `hsmId`; false when it does not. */
  adopt: (hsmId: string, pid: number, paths: HsmPaths, pollMs: number) => Promise<boolean>
  /** SIGTERM, then SIGKILL after the deadline; resolves once it is gone. */
  stop: (hsmId: string) => Promise<void>
  /** SIGKILL; resolves once it is gone. */
  kill: (hsmId: string) => Promise<void>
  /** Deletes the data of a stopped HSM. */
  removeData: (hsmId: string, paths: HsmPaths) => Promise<void>
  /** The control plane is stopping: stops every process it runs itself (HSMs on hosts run on, theirs to stop). */
  stopAll: () => Promise<void>
  /** Forgets every process without stopping it (they run on, to be adopted again). */
  detachAll: () => void
}

/** Runs and watches HSM processes. */
export class HsmSupervisor implements HsmProcesses {
  private readonly opts: SupervisorOptions
  private readonly tracked = new Map<string, Tracked>()

  constructor (opts: SupervisorOptions) {
    this.opts = opts
  }

  /** The pid of HSM `hsmId`'s process while the supervisor knows one. */
  pidOf (hsmId: string): number | undefined {
    return this.tracked.get(hsmId)?.pid
  }

  private track (hsmId: string, pid: number, logFile: string, child?: ChildProcess): Tracked {
    let markGone = (): void => {}
    const gone = new Promise<void>(resolve => { markGone = resolve })
    const entry: Tracked = { pid, child, stopping: false, logFile, gone, markGone }
    this.tracked.set(hsmId, entry)
    return entry
  }

  private ended (hsmId: string, entry: Tracked, code: number | null, signal: string | null, logOffset: number): void {
    if (entry.poll !== undefined) clearInterval(entry.poll)
    if (this.tracked.get(hsmId) === entry) this.tracked.delete(hsmId)
    entry.markGone()
    if (entry.stopping) return
    void tail(entry.logFile, logOffset).then(logTail => { this.opts.onExit(hsmId, { code, signal, logTail }) })
  }

  /**
   * Starts HSM `hsmId` and resolves with its pid and port once it printed its ready line.
   * Throws HsmStartError (with the exit code, and the end of its log) when it exits first or is
   * not ready in time (it is then killed).
   */
  async start (hsmId: string, paths: HsmPaths, net: { host: string, port: number }, provision: boolean, onSpawn?: (pid: number) => Promise<void>): Promise<{ pid: number, port: number }> {
    if (this.tracked.has(hsmId)) throw new HsmStartError(`${hsmId} is already running (pid ${this.tracked.get(hsmId)?.pid ?? '?'})`)
    await mkdir(paths.dir, { recursive: true, mode: 0o700 })
    const logOffset = await stat(paths.logFile).then(s => s.size, () => 0)
    const out = openSync(paths.stdoutFile, 'w', 0o644)
    const err = openSync(paths.logFile, 'a', 0o644)
    const args = [
      this.opts.binPath,
      '--data-dir', paths.dataDir,
      '--manufacturer-key-file', this.opts.manufacturerKeyFile,
      '--host', net.host,
      '--port', String(net.port),
      '--log-level', this.opts.logLevel,
      ...(provision ? ['--provision', paths.provisionFile] : [])
    ]
    let child: ChildProcess
    try {
      // HSM_NODE_ARGS and HSM_PROCESS_ENV size the process for a small server (see @hsmlab/hsm).
      child = spawn(process.execPath, [...HSM_NODE_ARGS, ...args], { detached: true, stdio: ['ignore', out, err], env: { ...process.env, ...HSM_PROCESS_ENV } })
    } finally {
      closeSync(out)
      closeSync(err)
    }
    // The ready line is read the moment it is written; an exit or a spawn failure wakes the wait too.
    const stdoutChanges = new FileWatch(paths.stdoutFile)
    const spawnFailure = new Promise<Error>(resolve => { child.once('error', resolve) })
    let failure: Error | undefined
    void spawnFailure.then(e => { failure = e; stdoutChanges.notify() })
    try {
      if (child.pid === undefined) {
        const e = await spawnFailure
        throw new HsmStartError(`cannot start ${process.execPath} ${this.opts.binPath}: ${e.message}`)
      }
      const entry = this.track(hsmId, child.pid, paths.logFile, child)
      let exit: { code: number | null, signal: string | null } | undefined
      child.once('exit', (code, signal) => {
        exit = { code, signal }
        stdoutChanges.notify()
        this.ended(hsmId, entry, code, signal, logOffset)
      })
      this.opts.log.info({ hsmId, pid: child.pid, port: net.port, provision }, 'HSM process started')
      await onSpawn?.(child.pid)
      const deadline = Date.now() + this.opts.readyTimeoutMs
      // Until it is ready, an exit is a failure to start, not something to report through onExit.
      entry.stopping = true
      for (;;) {
        const ready = parseReady(await readFile(paths.stdoutFile, 'utf8').catch(() => ''))
        if (ready !== undefined && exit === undefined) {
          entry.stopping = false
          child.unref()
          return { pid: child.pid, port: ready.port }
        }
        if (failure !== undefined) throw new HsmStartError(`${hsmId}: cannot start the HSM process: ${failure.message}`)
        if (exit !== undefined) {
          const logTail = await tail(paths.logFile, logOffset)
          const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${String(exit.code)}`
          this.opts.log.warn({ hsmId, code: exit.code, signal: exit.signal, log: logTail }, 'HSM process ended before it was ready')
          const reason = startFailureReason(logTail)
          throw new HsmStartError(`${hsmId} ${how} before it was ready${reason === '' ? '' : `: ${reason}`}`, exit.code ?? undefined)
        }
        const left = deadline - Date.now()
        if (left <= 0) {
          child.kill('SIGKILL')
          await entry.gone
          throw new HsmStartError(`${hsmId} was not ready within ${this.opts.readyTimeoutMs} ms and was killed (log ${paths.logFile})`)
        }
        await stdoutChanges.next(Math.min(left, READY_FALLBACK_READ_MS))
      }
    } finally {
      stdoutChanges.close()
    }
  }

  /**
   * Watches a process that a previous control plane started (its exit is noticed by polling), if
   * `pid` still runs and is (by its command line) the HSM of `paths`; false when it is not.
   */
  async adopt (hsmId: string, pid: number, paths: HsmPaths, pollMs: number): Promise<boolean> {
    if (this.tracked.has(hsmId)) return this.tracked.get(hsmId)?.pid === pid
    if (!isProcessAlive(pid) || !looksLikeHsm(pid, paths.dataDir)) return false
    const entry = this.track(hsmId, pid, paths.logFile)
    void stat(paths.logFile).then(s => s.size, () => 0).then(offset => {
      entry.poll = setInterval(() => {
        if (!isProcessAlive(pid)) this.ended(hsmId, entry, null, null, offset)
      }, pollMs)
      entry.poll.unref()
    })
    this.opts.log.info({ hsmId, pid }, 'HSM process adopted')
    return true
  }

  /** Deletes the data directory of a stopped HSM. */
  async removeData (hsmId: string, paths: HsmPaths): Promise<void> {
    await rm(paths.dataDir, { recursive: true, force: true })
  }

  /** Stops HSM `hsmId`: SIGTERM, then SIGKILL after the deadline; resolves once it is gone. */
  async stop (hsmId: string): Promise<void> {
    const entry = this.tracked.get(hsmId)
    if (entry === undefined) return
    entry.stopping = true
    const signal = (sig: NodeJS.Signals): void => {
      try { process.kill(entry.pid, sig) } catch { /* already gone */ }
    }
    if (entry.child === undefined && entry.poll === undefined) {
      entry.poll = setInterval(() => { if (!isProcessAlive(entry.pid)) this.ended(hsmId, entry, null, null, 0) }, 20)
    }
    signal('SIGTERM')
    const timer = setTimeout(() => { signal('SIGKILL') }, this.opts.stopTimeoutMs)
    if (entry.child === undefined && entry.poll !== undefined) {
      // Adopted: poll faster while it stops.
      clearInterval(entry.poll)
      entry.poll = setInterval(() => { if (!isProcessAlive(entry.pid)) this.ended(hsmId, entry, null, null, 0) }, 20)
    }
    await entry.gone
    clearTimeout(timer)
    this.opts.log.info({ hsmId, pid: entry.pid }, 'HSM process stopped')
  }

  /** Kills HSM `hsmId` at once (SIGKILL) and resolves once it is gone. */
  async kill (hsmId: string): Promise<void> {
    const entry = this.tracked.get(hsmId)
    if (entry === undefined) return
    entry.stopping = true
    try { process.kill(entry.pid, 'SIGKILL') } catch { /* already gone */ }
    if (entry.child === undefined) {
      if (entry.poll !== undefined) clearInterval(entry.poll)
      entry.poll = setInterval(() => { if (!isProcessAlive(entry.pid)) this.ended(hsmId, entry, null, null, 0) }, 20)
    }
    await entry.gone
  }

  /** Stops every process. */
  async stopAll (): Promise<void> {
    await Promise.all([...this.tracked.keys()].map(async id => { await this.stop(id) }))
  }

  /** Forgets every process without stopping it (they run on, to be adopted again). */
  detachAll (): void {
    for (const entry of this.tracked.values()) {
      entry.stopping = true
      if (entry.poll !== undefined) clearInterval(entry.poll)
    }
    this.tracked.clear()
  }
}
