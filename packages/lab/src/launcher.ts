/**
 * Starting, probing and stopping HSM processes. An HSM is started detached (its own process
 * group, so it outlives `hsmlab up` and a Ctrl-C in that terminal), with its standard output in a
 * file the launcher reads until the ready line appears and its standard error appended to a log
 * file. A process counts as running only when its pid is alive and it completes a handshake as
 * the HSM the lab recorded; a pid alone proves nothing, since the system may have reused it.
 */
import { execFile, spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { HsmConnection } from '@hsmlab/client'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_HSM_START } from './errors.js'

/** Options of `launchHsm`. */
export interface LaunchOptions {
  /** Absolute path of the HSM bin (`HSM_BIN_PATH` of @hsmlab/hsm). */
  binPath: string
  dataDir: string
  host: string
  /** 0 lets the system choose. */
  port: number
  manufacturerKeyFile: string
  /** Receives the process's standard output (truncated at each start). */
  stdoutFile: string
  /** Receives the process's standard error (appended across restarts). */
  logFile: string
  /** `--log-level` of the HSM. @default labDefaults.hsmLogLevel */
  logLevel?: string
  /** @default labDefaults.readyTimeoutMs */
  readyTimeoutMs?: number
  /** Says which HSM this is in error messages (`us-east-1/primary server 0`). */
  what: string
  /** Called with the pid as soon as the process exists, before it is ready. */
  onSpawn?: (pid: number) => void | Promise<void>
}

/** What an HSM's ready line announces. */
export interface ReadyHsm {
  pid: number
  hsmId: string
  host: string
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

function parseReady (text: string): ReadyHsm | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const json = JSON.parse(line) as Record<string, unknown>
      if (json.event === 'ready' && typeof json.pid === 'number' && typeof json.hsmId === 'string' && typeof json.host === 'string' && typeof json.port === 'number') {
        return { pid: json.pid, hsmId: json.hsmId, host: json.host, port: json.port }
      }
    } catch {
      // A line still being written; read again on the next poll.
    }
  }
  return undefined
}

/**
 * Starts one HSM and resolves once it printed its ready line. Throws `LAB_ERR_HSM_START` with the
 * tail of its log when it exits first or is not ready within the deadline (it is then killed).
 */
export async function launchHsm (options: LaunchOptions): Promise<ReadyHsm> {
  const readyTimeoutMs = options.readyTimeoutMs ?? labDefaults.readyTimeoutMs
  const logOffset = await sizeOf(options.logFile)
  const out = openSync(options.stdoutFile, 'w', 0o644)
  const err = openSync(options.logFile, 'a', 0o644)
  const args = [
    options.binPath,
    '--data-dir', options.dataDir,
    '--host', options.host,
    '--port', String(options.port),
    '--manufacturer-key-file', options.manufacturerKeyFile,
    '--log-level', options.logLevel ?? labDefaults.hsmLogLevel
  ]
  let child
  try {
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, err] })
  } finally {
    closeSync(out)
    closeSync(err)
  }
  let exited: string | undefined
  child.on('exit', (code, signal) => { exited = signal !== null ? `was killed by ${signal}` : code === 2 ? 'exited with code 2 (its store was changed on disk and refused to load)' : `exited with code ${String(code)}` })
  const spawnError = new Promise<Error>(resolve => { child.once('error', resolve) })
  let failure: Error | undefined
  void spawnError.then(e => { failure = e })
  if (child.pid !== undefined) await options.onSpawn?.(child.pid)

  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    const ready = parseReady(await readFile(options.stdoutFile, 'utf8').catch(() => ''))
    if (ready !== undefined) {
      // From here on the HSM lives on its own; do not keep this process alive for it.
      child.unref()
      return ready
    }
    if (failure !== undefined) {
      throw new LabError(LAB_ERR_HSM_START, `${options.what}: cannot start ${process.execPath} ${options.binPath}: ${failure.message}`, { cause: failure })
    }
    if (exited !== undefined) {
      const tail = await tailOf(options.logFile, logOffset)
      throw new LabError(LAB_ERR_HSM_START, `${options.what} ${exited} before it was ready (data ${options.dataDir}, log ${options.logFile})${tail === '' ? '' : `; the end of its log:\n${tail}`}`)
    }
    if (Date.now() >= deadline) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      const tail = await tailOf(options.logFile, logOffset)
      throw new LabError(LAB_ERR_HSM_START, `${options.what} was not ready within ${readyTimeoutMs} ms and was killed (data ${options.dataDir}, log ${options.logFile})${tail === '' ? '' : `; the end of its log:\n${tail}`}`)
    }
    await new Promise(resolve => setTimeout(resolve, labDefaults.readyPollIntervalMs))
  }
}

/** True when a process with this pid exists (it may belong to someone else). */
export function isProcessAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
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

/** The command line of a process, or undefined when the system does not tell. */
export async function commandLineOf (pid: number): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ')
  } catch {
    // No /proc (macOS): ask ps.
  }
  return await new Promise(resolve => {
    execFile('ps', ['-o', 'command=', '-p', String(pid)], (error, stdout) => {
      resolve(error === null && stdout.trim() !== '' ? stdout.trim() : undefined)
    })
  })
}

/**
 * True when `pid` is alive and is the HSM process of `dataDir` (its command line names the data
 * directory). Where the command line cannot be read, a live pid is taken at its word.
 */
export async function isHsmProcess (pid: number | null, dataDir: string): Promise<boolean> {
  if (pid === null || !isProcessAlive(pid)) return false
  const commandLine = await commandLineOf(pid)
  if (commandLine === undefined) return isProcessAlive(pid)
  return commandLine.includes(dataDir)
}

/** Options of `probeHsm`. */
export interface ProbeOptions {
  endpoint: string
  trustAnchor: Uint8Array
  clusterId: string
  hsmId: string
  /** @default labDefaults.probeTimeoutMs */
  timeoutMs?: number
}

/** True when the HSM at `endpoint` completes a handshake as `hsmId` of `clusterId`. */
export async function probeHsm (options: ProbeOptions): Promise<boolean> {
  let connection: HsmConnection
  try {
    connection = await HsmConnection.connect({
      url: options.endpoint,
      trustAnchor: options.trustAnchor,
      expectedClusterId: options.clusterId,
      connectTimeoutMs: options.timeoutMs ?? labDefaults.probeTimeoutMs
    })
  } catch {
    return false
  }
  const ok = connection.hsmId === options.hsmId
  await connection.close()
  return ok
}

async function waitGone (pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (isProcessAlive(pid)) {
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
