/**
 * The client daemon of each cluster (`hsmlab-client`, issue 16): `hsmlab up` starts one per
 * cluster, detached like the control planes, on the cluster's CMU configuration, listening on
 * `DIR/<region>-<cluster>.sock` (beside the configuration, and short: a Unix socket path has at
 * most 107 bytes); its output and log are in `<cluster dir>/client/`, which is its `--data-dir`,
 * so the lab finds it as it finds its other processes. A daemon that runs on the configuration
 * the cluster has now is kept; one whose configuration changed (HSMs added or replaced) is started
 * again. `hsmlab down` stops them first, before the HSMs.
 */
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { CLIENT_DAEMON_BIN_PATH, PKCS11_MODULE_PATH } from '@hsmlab/client-daemon'
import { FileWatch } from '@hsmlab/control-plane'
import { isProcessAlive } from '@hsmlab/process'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_CLIENT_DAEMON } from './errors.js'
import type { ClusterState, LabLayout, LabState } from './lab-state.js'
import { stopProcess } from './launcher.js'

/** Where an application finds a cluster's daemon (`hsmlab status --json`: `client`). */
export interface ClientStatus {
  socket: string
  /** Absolute path of libhsmlab_pkcs11.so. */
  pkcs11Module: string
  /** What an application sets so that the library reaches this cluster's daemon. */
  env: Record<string, string>
  pid: number | null
  /** NONE: the lab runs without client daemons (`up --no-clients`). */
  state: 'RUNNING' | 'DOWN' | 'NONE'
}

function filesOf (layout: LabLayout, record: { region: string, name: string }): { dir: string, socket: string, out: string, log: string, pid: string } {
  const dir = join(layout.clusterDir(record.region, record.name), 'client')
  return { dir, socket: join(layout.dir, `${record.region}-${record.name}.sock`), out: join(dir, 'hsmlab-client.out'), log: join(dir, 'hsmlab-client.log'), pid: join(dir, 'hsmlab-client.pid') }
}

function recorded (file: string): { pid: number, config: string } | undefined {
  try {
    // Read synchronously: the status report is made synchronously, and the file is a line.
    const json = JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown, config?: unknown }
    return typeof json.pid === 'number' && typeof json.config === 'string' ? { pid: json.pid, config: json.config } : undefined
  } catch {
    return undefined
  }
}

/**
 * The recorded daemon's pid while it runs: alive, not a zombie (its parent, `hsmlab up`, is gone,
 * and not every init reaps), and still hsmlab-client (a pid alone proves nothing: it is reused).
 */
function running (file: string): number | undefined {
  const r = recorded(file)
  if (r === undefined || !isProcessAlive(r.pid)) return undefined
  try {
    const stat = readFileSync(`/proc/${r.pid}/stat`, 'utf8')
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined
    if (!readFileSync(`/proc/${r.pid}/cmdline`, 'utf8').includes(CLIENT_DAEMON_BIN_PATH)) return undefined
  } catch {
    // No /proc (not Linux): the pid is all there is to go by.
  }
  return r.pid
}

/** Whether the lab runs client daemons (`up --no-clients` records false; they run unless it did). */
export function clientsEnabled (lab: LabState): boolean {
  return lab.clients?.enabled ?? true
}

/** The `client` entry of a cluster in the status report. */
export function clientStatusOf (layout: LabLayout, lab: LabState, record: { region: string, name: string }): ClientStatus {
  const files = filesOf(layout, record)
  const pid = running(files.pid)
  return {
    socket: files.socket,
    pkcs11Module: PKCS11_MODULE_PATH,
    env: { HSMLAB_PKCS11_SOCKET: files.socket },
    pid: pid ?? null,
    state: pid !== undefined ? 'RUNNING' : clientsEnabled(lab) ? 'DOWN' : 'NONE'
  }
}

async function startOne (layout: LabLayout, record: ClusterState, logLevel: string): Promise<void> {
  const files = filesOf(layout, record)
  const config = layout.cmuConfig(record.region, record.name)
  const hash = createHash('sha256').update(await readFile(config)).digest('hex')
  const before = recorded(files.pid)
  if (before !== undefined && running(files.pid) !== undefined) {
    if (before.config === hash) return
    await stopProcess(before.pid, labDefaults.stopTimeoutMs)
  }
  await mkdir(files.dir, { recursive: true, mode: 0o700 })
  const out = openSync(files.out, 'w', 0o600)
  const err = openSync(files.log, 'a', 0o600)
  let child
  try {
    child = spawn(process.execPath, [CLIENT_DAEMON_BIN_PATH, '--config', config, '--socket', files.socket, '--label', record.name,
      '--data-dir', files.dir, '--log-level', logLevel], { detached: true, stdio: ['ignore', out, err] })
  } finally {
    closeSync(out)
    closeSync(err)
  }
  // The ready line is read the moment it is written (as the launcher reads the other processes'); an exit or a spawn failure wakes the wait too.
  const outChanges = new FileWatch(files.out)
  let exited: string | undefined
  child.on('exit', (code, signal) => { exited = signal ?? String(code); outChanges.notify() })
  child.on('error', e => { exited = e.message; outChanges.notify() })
  try {
    if (child.pid !== undefined) await writeFile(files.pid, JSON.stringify({ pid: child.pid, config: hash }) + '\n', { mode: 0o600 })
    const deadline = Date.now() + labDefaults.readyTimeoutMs
    // The daemon prints its ready line once its socket listens (it connects to the HSMs it can first, within hsmConnectTimeoutMs).
    for (;;) {
      const text = await readFile(files.out, 'utf8').catch(() => '')
      if (text.includes('"event":"ready"')) break
      if (exited !== undefined || Date.now() > deadline) {
        if (exited === undefined) child.kill('SIGKILL')
        const log = await readFile(files.log, 'utf8').catch(() => '')
        throw new LabError(LAB_ERR_CLIENT_DAEMON, `the client daemon of ${record.region}/${record.name} ${exited === undefined ? 'was not ready in time' : `exited (${exited})`}; its log, ${files.log}:\n${log.split('\n').slice(-10).join('\n')}`)
      }
      await outChanges.next(Math.max(0, Math.min(deadline - Date.now(), labDefaults.readyFallbackReadMs)))
    }
  } finally {
    outChanges.close()
  }
  child.unref()
}

/**
 * Starts (or keeps) the client daemon of every cluster whose CMU configuration exists; in a lab
 * without client daemons (`up --no-clients`), stops those that run.
 */
export async function ensureClientDaemons (layout: LabLayout, lab: LabState, logLevel: string = labDefaults.logLevel): Promise<void> {
  if (!clientsEnabled(lab)) {
    await stopClientDaemons(layout, lab.clusters)
    return
  }
  await Promise.all(lab.clusters.map(async record => {
    const exists = await stat(layout.cmuConfig(record.region, record.name)).then(() => true, () => false)
    if (exists) await startOne(layout, record, logLevel)
  }))
}

/** Stops every cluster's client daemon; answers those it stopped. */
export async function stopClientDaemons (layout: LabLayout, clusters: readonly ClusterState[]): Promise<Array<{ region: string, pid: number, how: 'terminated' | 'killed' }>> {
  const stopped: Array<{ region: string, pid: number, how: 'terminated' | 'killed' }> = []
  await Promise.all(clusters.map(async record => {
    const pid = running(filesOf(layout, record).pid)
    if (pid === undefined) return
    const how = await stopProcess(pid, labDefaults.stopTimeoutMs)
    if (how !== 'gone') stopped.push({ region: record.region, pid, how })
  }))
  return stopped
}
