/**
 * Starting, finding and stopping the lab's processes. A control plane is started detached (its
 * own process group, so it outlives `hsmlab up` and a Ctrl-C in that terminal), with its standard
 * output in a file the launcher reads until the ready line appears and its standard error
 * appended to a log file; it starts and supervises its region's HSMs itself. A process counts as
 * the lab's only when its pid is alive and its command line names a data directory of the lab: a
 * pid alone proves nothing, since the system may have reused it.
 */
import { execFile, spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { readFile, readdir, stat } from 'node:fs/promises'
import { sep } from 'node:path'
import { FileWatch } from '@hsmlab/control-plane'
import { isProcessAlive } from '@hsmlab/process'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_CONSOLE, LAB_ERR_CONTROL_PLANE, LAB_ERR_FAULTS } from './errors.js'

/** Options of `launchControlPlane`. */
export interface LaunchOptions {
  /** Absolute path of the control-plane bin (`CONTROL_PLANE_BIN_PATH` of @hsmlab/control-plane). */
  binPath: string
  region: string
  dataDir: string
  host: string
  /** 0 lets the system choose. */
  port: number
  manufacturerKeyFile: string
  regionsFile: string
  /** Receives the process's standard output (truncated at each start). */
  stdoutFile: string
  /** Receives the process's standard error (appended across restarts). */
  logFile: string
  /** `--log-level` of the control plane and `--hsm-log-level` of its HSMs. @default labDefaults.logLevel */
  logLevel?: string
  /** `--transition-delay-ms`. @default labDefaults.transitionDelayMs */
  transitionDelayMs?: number
  /** `--clusters-max`. */
  clustersMax: number
  /** `--hsms-max`. */
  hsmsMax: number
  /** @default labDefaults.readyTimeoutMs */
  readyTimeoutMs?: number
  /** `--copy-retry-window-seconds`. @default the control plane's (60) */
  copyRetryWindowSeconds?: number
  /** Called with the pid as soon as the process exists, before it is ready. */
  onSpawn?: (pid: number) => void | Promise<void>
}

/** What a control plane's ready line announces. */
export interface ReadyControlPlane {
  pid: number
  region: string
  port: number
}

/** The last `lines` lines of a file from byte `offset` on ('' when it cannot be read). */
export async function tailOf (file: string, offset = 0, lines: number = labDefaults.logTailLines): Promise<string> {
  try {
    const text = (await readFile(file)).subarray(offset).toString('utf8')
    return text.split('\n').filter(l => l.trim() !== '').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

async function sizeOf (file: string): Promise<number> {
  try {
    return (await stat(file)).size
  } catch {
    return 0
  }
}

function parseReady (text: string): ReadyControlPlane | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const json = JSON.parse(line) as Record<string, unknown>
      if (json.event === 'ready' && typeof json.pid === 'number' && typeof json.region === 'string' && typeof json.port === 'number') {
        return { pid: json.pid, region: json.region, port: json.port }
      }
    } catch {
      // A line still being written; read again on the next poll.
    }
  }
  return undefined
}

/** What `launchDetached` needs: the process, where its output goes, and how its ready line reads. */
interface DetachedLaunch<T> {
  /** For messages: `the control plane of us-east-1`. */
  what: string
  binPath: string
  args: string[]
  /** Node's own flags, before the bin. */
  nodeArgs?: readonly string[]
  stdoutFile: string
  logFile: string
  readyTimeoutMs: number
  /** What the messages say the process serves (`data DIR`). */
  serves: string
  parseReady: (text: string) => T | undefined
  onSpawn?: (pid: number) => void | Promise<void>
}

/**
 * Starts `node binPath args` detached (its own process group), standard output to `stdoutFile`,
 * standard error appended to `logFile`, and resolves once `stdoutFile` holds its ready line.
 * Throws `LAB_ERR_CONTROL_PLANE`-style errors through `fail` with the tail of its log when it
 * exits first or is not ready within the deadline (it is then killed).
 */
async function launchDetached<T> (launch: DetachedLaunch<T>, fail: (message: string, cause?: unknown) => Error): Promise<T> {
  const logOffset = await sizeOf(launch.logFile)
  const out = openSync(launch.stdoutFile, 'w', 0o644)
  const err = openSync(launch.logFile, 'a', 0o644)
  let child
  try {
    child = spawn(process.execPath, [...(launch.nodeArgs ?? []), launch.binPath, ...launch.args], { detached: true, stdio: ['ignore', out, err] })
  } finally {
    closeSync(out)
    closeSync(err)
  }
  // The ready line is read the moment it is written; an exit or a spawn failure wakes the wait too.
  const stdoutChanges = new FileWatch(launch.stdoutFile)
  let exited: string | undefined
  child.on('exit', (code, signal) => {
    exited = signal !== null ? `was killed by ${signal}` : `exited with code ${String(code)}`
    stdoutChanges.notify()
  })
  const spawnError = new Promise<Error>(resolve => { child.once('error', resolve) })
  let failure: Error | undefined
  void spawnError.then(e => { failure = e; stdoutChanges.notify() })
  try {
    if (child.pid !== undefined) await launch.onSpawn?.(child.pid)
    const deadline = Date.now() + launch.readyTimeoutMs
    for (;;) {
      const ready = launch.parseReady(await readFile(launch.stdoutFile, 'utf8').catch(() => ''))
      if (ready !== undefined) {
        // From here on the process lives on its own; do not keep this process alive for it.
        child.unref()
        return ready
      }
      if (failure !== undefined) {
        throw fail(`${launch.what}: cannot start ${process.execPath} ${launch.binPath}: ${failure.message}`, failure)
      }
      if (exited !== undefined) {
        const tail = await tailOf(launch.logFile, logOffset)
        throw fail(`${launch.what} ${exited} before it was ready (${launch.serves}, log ${launch.logFile})${tail === '' ? '' : `; the end of its log:\n${tail}`}`)
      }
      const left = deadline - Date.now()
      if (left <= 0) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        const tail = await tailOf(launch.logFile, logOffset)
        throw fail(`${launch.what} was not ready within ${launch.readyTimeoutMs} ms and was killed (${launch.serves}, log ${launch.logFile})${tail === '' ? '' : `; the end of its log:\n${tail}`}`)
      }
      await stdoutChanges.next(Math.min(left, labDefaults.readyFallbackReadMs))
    }
  } finally {
    stdoutChanges.close()
  }
}

/**
 * Starts one region's control plane and resolves once it printed its ready line. Throws
 * `LAB_ERR_CONTROL_PLANE` with the tail of its log when it exits first or is not ready within
 * the deadline (it is then killed).
 */
export async function launchControlPlane (options: LaunchOptions): Promise<ReadyControlPlane> {
  const logLevel = options.logLevel ?? labDefaults.logLevel
  return await launchDetached({
    what: `the control plane of ${options.region}`,
    binPath: options.binPath,
    args: [
      '--region', options.region,
      '--data-dir', options.dataDir,
      '--hsm-manufacturer-key-file', options.manufacturerKeyFile,
      '--host', options.host,
      '--port', String(options.port),
      '--regions-file', options.regionsFile,
      '--transition-delay-ms', String(options.transitionDelayMs ?? labDefaults.transitionDelayMs),
      '--clusters-max', String(options.clustersMax),
      '--hsms-max', String(options.hsmsMax),
      '--log-level', logLevel,
      '--hsm-log-level', logLevel,
      ...(options.copyRetryWindowSeconds === undefined ? [] : ['--copy-retry-window-seconds', String(options.copyRetryWindowSeconds)])
    ],
    stdoutFile: options.stdoutFile,
    logFile: options.logFile,
    readyTimeoutMs: options.readyTimeoutMs ?? labDefaults.readyTimeoutMs,
    serves: `data ${options.dataDir}`,
    parseReady,
    ...(options.onSpawn === undefined ? {} : { onSpawn: options.onSpawn })
  }, (message, cause) => new LabError(LAB_ERR_CONTROL_PLANE, message, cause === undefined ? undefined : { cause }))
}

/** Options of `launchFaultProxy`. */
export interface FaultProxyLaunchOptions {
  /** Absolute path of the fault proxy bin (`FAULT_PROXY_BIN_PATH` of @hsmlab/fault-proxy). */
  binPath: string
  host: string
  /** 0 lets the system choose. */
  port: number
  seed: number
  /**
   * `--config`: the proxies to create at start (a `POST /populate` body). It also marks the
   * process as the lab's: `down` finds it by this path, as it finds the others by `--data-dir`.
   */
  configFile: string
  stdoutFile: string
  logFile: string
  /** `--log-level`. @default labDefaults.logLevel */
  logLevel?: string
  /** @default labDefaults.readyTimeoutMs */
  readyTimeoutMs?: number
  onSpawn?: (pid: number) => void | Promise<void>
}

/** What the fault proxy's ready line announces. */
export interface ReadyFaultProxy {
  pid: number
  port: number
  seed: number
}

function parseFaultProxyReady (text: string): ReadyFaultProxy | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const json = JSON.parse(line) as Record<string, unknown>
      if (json.event === 'ready' && typeof json.pid === 'number' && typeof json.port === 'number' && typeof json.seed === 'number') {
        return { pid: json.pid, port: json.port, seed: json.seed }
      }
    } catch {
      // A line still being written.
    }
  }
  return undefined
}

/**
 * Starts the lab's fault proxy (`hsmlab-fault-proxy`) detached and resolves once it printed its
 * ready line; throws `LAB_ERR_FAULTS` with the tail of its log when it exits first (its
 * `--config` could not be populated: a port taken) or is not ready in time.
 */
export async function launchFaultProxy (options: FaultProxyLaunchOptions): Promise<ReadyFaultProxy> {
  return await launchDetached({
    what: 'the fault proxy',
    binPath: options.binPath,
    args: [
      '--host', options.host,
      '--port', String(options.port),
      '--seed', String(options.seed),
      '--config', options.configFile,
      '--log-level', options.logLevel ?? labDefaults.logLevel
    ],
    stdoutFile: options.stdoutFile,
    logFile: options.logFile,
    readyTimeoutMs: options.readyTimeoutMs ?? labDefaults.readyTimeoutMs,
    serves: `links ${options.configFile}`,
    parseReady: parseFaultProxyReady,
    ...(options.onSpawn === undefined ? {} : { onSpawn: options.onSpawn })
  }, (message, cause) => new LabError(LAB_ERR_FAULTS, message, cause === undefined ? undefined : { cause }))
}

/** Options of `launchConsole`. */
export interface ConsoleLaunchOptions {
  /** Absolute path of the console's bin (`hsmlab-console` of @hsmlab/console, found by its package.json). */
  binPath: string
  labDir: string
  /** `--data-dir`: its token; it also marks the process as the lab's, as the others' do. */
  dataDir: string
  /** 0 lets the system choose. */
  port: number
  stdoutFile: string
  logFile: string
  /** `--log-level`. @default labDefaults.logLevel */
  logLevel?: string
  /** @default labDefaults.readyTimeoutMs */
  readyTimeoutMs?: number
  onSpawn?: (pid: number) => void | Promise<void>
}

/** What the console's ready line announces. */
export interface ReadyConsole {
  pid: number
  port: number
}

function parseConsoleReady (text: string): ReadyConsole | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const json = JSON.parse(line) as Record<string, unknown>
      if (json.event === 'ready' && typeof json.pid === 'number' && typeof json.port === 'number') return { pid: json.pid, port: json.port }
    } catch {
      // A line still being written.
    }
  }
  return undefined
}

/**
 * Starts the lab's web console (`hsmlab-console`) detached and resolves once it printed its ready
 * line; throws `LAB_ERR_CONSOLE` with the tail of its log when it exits first or is not ready in time.
 */
export async function launchConsole (options: ConsoleLaunchOptions): Promise<ReadyConsole> {
  return await launchDetached({
    what: 'the console',
    binPath: options.binPath,
    args: ['--lab-dir', options.labDir, '--data-dir', options.dataDir, '--port', String(options.port), '--log-level', options.logLevel ?? labDefaults.logLevel],
    nodeArgs: labDefaults.consoleNodeArgs,
    stdoutFile: options.stdoutFile,
    logFile: options.logFile,
    readyTimeoutMs: options.readyTimeoutMs ?? labDefaults.readyTimeoutMs,
    serves: `the lab in ${options.labDir}`,
    parseReady: parseConsoleReady,
    ...(options.onSpawn === undefined ? {} : { onSpawn: options.onSpawn })
  }, (message, cause) => new LabError(LAB_ERR_CONSOLE, message, cause === undefined ? undefined : { cause }))
}

/**
 * True when `pid` has exited but its parent has not collected it yet (a zombie; Linux only).
 * An HSM killed after `hsmlab up` exited is the child of the system's init, which may take a
 * moment to collect it; meanwhile its pid still looks alive, to the HSM's data-directory lock too.
 */
export async function isZombie (pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

/**
 * Waits until an exited process is collected (see `isZombie`); resolves false if it is still a
 * zombie after `timeoutMs`.
 */
export async function waitUntilReaped (pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (await isZombie(pid)) {
    if (Date.now() >= deadline) return false
    await new Promise(resolve => setTimeout(resolve, labDefaults.stopPollIntervalMs))
  }
  return true
}

/** The arguments of a process (argv), or undefined when the system does not tell. */
export async function commandLineOf (pid: number): Promise<string[] | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    return text.split('\0').filter(a => a !== '')
  } catch {
    // No /proc (macOS): ask ps, which gives the command line as one string.
  }
  return await new Promise(resolve => {
    execFile('ps', ['-o', 'command=', '-p', String(pid)], (error, stdout) => {
      resolve(error === null && stdout.trim() !== '' ? stdout.trim().split(' ') : undefined)
    })
  })
}

/**
 * The path that makes a process the lab's: the `--data-dir` of a control plane or an HSM, or the
 * `--config` of the fault proxy (`DIR/fault-proxy/proxies.json`; only the fault proxy's: a KMU
 * shell's `--config` names a file in DIR too, and is no process of the lab).
 */
function dataDirOf (argv: readonly string[]): string | undefined {
  const at = argv.indexOf('--data-dir')
  if (at !== -1) return argv[at + 1]
  const config = argv.indexOf('--config')
  return config === -1 || !argv.some(a => a.endsWith('fault-proxy.js')) ? undefined : argv[config + 1]
}

function isUnder (path: string | undefined, root: string): path is string {
  return path !== undefined && (path === root || path.startsWith(`${root}${sep}`))
}

/**
 * True when `pid` is alive and is a process of the lab under `root` (its `--data-dir` lies
 * inside it: a control plane, or one of its HSMs). Where the command line cannot be read, a live
 * pid is taken at its word.
 */
export async function isLabProcess (pid: number | null, root: string): Promise<boolean> {
  if (pid === null || !isProcessAlive(pid)) return false
  const argv = await commandLineOf(pid)
  if (argv === undefined) return isProcessAlive(pid)
  return isUnder(dataDirOf(argv), root)
}

/** A live process of the lab and the data directory it serves. */
export interface LabProcess {
  pid: number
  dataDir: string
}

/**
 * Every live process whose `--data-dir` lies inside `root`: a control plane and its HSMs, also
 * those whose pids the lab never saw (an HSM its control plane restarted). Reads /proc, or `ps`
 * where there is none.
 */
export async function findLabProcesses (root: string): Promise<LabProcess[]> {
  const found: LabProcess[] = []
  let pids: number[]
  try {
    pids = (await readdir('/proc')).filter(name => /^\d+$/.test(name)).map(Number)
  } catch {
    const listing = await new Promise<string>(resolve => {
      execFile('ps', ['-axo', 'pid=,command='], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => { resolve(error === null ? stdout : '') })
    })
    for (const line of listing.split('\n')) {
      const match = /^\s*(\d+)\s+(.*)$/.exec(line)
      const dataDir = dataDirOf((match?.[2] ?? '').split(' '))
      if (match !== null && isUnder(dataDir, root) && Number(match[1]) !== process.pid) found.push({ pid: Number(match[1]), dataDir })
    }
    return found
  }
  await Promise.all(pids.map(async pid => {
    if (pid === process.pid) return
    const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    const dataDir = dataDirOf(text.split('\0'))
    if (isUnder(dataDir, root)) found.push({ pid, dataDir })
  }))
  return found.sort((a, b) => a.pid - b.pid)
}

/** Kills a process (SIGKILL) and waits until it is gone. */
export async function killProcess (pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    return
  }
  await waitGone(pid, 2_000)
}

/**
 * Waits until `pid` has exited; resolves false if it still runs after `timeoutMs`. An exited
 * process that its parent has not collected yet (a zombie: the system's init may take a second)
 * counts as exited.
 */
export async function waitGone (pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (isProcessAlive(pid) && !await isZombie(pid)) {
    if (Date.now() >= deadline) return false
    await new Promise(resolve => setTimeout(resolve, labDefaults.stopPollIntervalMs))
  }
  return true
}

/**
 * Stops a process: SIGTERM, then SIGKILL if it is still there after `timeoutMs`. Resolves with
 * how it ended ('gone' when it was not running).
 */
export async function stopProcess (pid: number, timeoutMs: number = labDefaults.stopTimeoutMs): Promise<'gone' | 'terminated' | 'killed'> {
  try {
    process.kill(pid, 'SIGTERM')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return 'gone'
    throw err
  }
  if (await waitGone(pid, timeoutMs)) return 'terminated'
  try {
    process.kill(pid, 'SIGKILL')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return 'terminated'
    throw err
  }
  await waitGone(pid, 2_000)
  return 'killed'
}
