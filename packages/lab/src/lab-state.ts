/**
 * What a lab directory holds and the state file that records it (`DIR/lab.json`): the topology
 * the lab was made from, each cluster's id and lineage, and each HSM's id, address and process.
 * The file is rewritten atomically (temporary file, fsync, rename), so a reader never sees half
 * of it, and `up` records a pid as soon as a process exists, so that `down` can always find it.
 *
 * Layout of DIR (paths in lab.json are relative to DIR, so a lab directory can be moved):
 *
 * ```
 * lab.json                  this state
 * lab.lock                  held by a running `up` or `down` (holds its pid)
 * manufacturer.key          the installation's manufacturer key (0600)
 * <region>-<cluster>.cfg    CMU configuration of each cluster
 * key_mgmt_util.cfg         KMU configuration (the first cluster)
 * <region>/<cluster>/
 *   cluster-secrets.json    the cluster's trust anchor and masking key (0600)
 *   customerCA.crt          the trust anchor's public key, the CAfile of the configurations
 *   hsm<i>/data/            the data directory of HSM i
 *   hsm<i>/hsm.out          its standard output (the ready line)
 *   hsm<i>/hsm.log          its standard error (JSON log lines, kept across restarts)
 * ```
 */
import { open as fsOpen, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { KMU_CONFIG_FILE_NAME, MANUFACTURER_KEY_FILE_NAME, STATE_FILE_NAME } from './defaults.js'
import { LabError, LAB_ERR_BUSY, LAB_ERR_STATE } from './errors.js'
import type { Topology } from './topology.js'

/** The format tag of lab.json; another tag is refused with LAB_ERR_STATE. */
export const LAB_STATE_FORMAT = 'hsmlab-lab/1'

/** How HSMs get their addresses (decided when the lab is made, see docs/lab.md). */
export type Addressing =
  /** Each HSM binds its own loopback address 127.0.<cluster>.<server + 1>, which is also its CMU name. */
  | 'loopback'
  /** Every HSM binds 127.0.0.1 (where other loopback addresses cannot be bound); its CMU name is its HSM id. */
  | 'localhost'

/** One HSM of a cluster. */
export interface HsmState {
  /** Its place in the cluster: server id in the CMU configuration, and handle slot. */
  index: number
  id: string
  host: string
  /** Port it listens on; 0 until it first started. Restarts reuse it so configurations stay valid. */
  port: number
  /** Pid of the process last started, or null when the lab stopped it. */
  pid: number | null
  /** When the process last became ready (ISO 8601). */
  startedAt?: string
}

/** One cluster. */
export interface ClusterState {
  region: string
  name: string
  id: string
  lineage: string
  /** True once every HSM's PRECO became a CO and every topology user exists on every HSM. */
  activated: boolean
  /** Version of the last peer list the lab signed for this cluster. */
  peersVersion: number
  hsms: HsmState[]
}

/** The content of lab.json. */
export interface LabState {
  format: typeof LAB_STATE_FORMAT
  createdAt: string
  addressing: Addressing
  topology: Topology
  clusters: ClusterState[]
}

/** Every path of a lab directory, from its root. */
export class LabLayout {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  get stateFile (): string { return join(this.dir, STATE_FILE_NAME) }
  get lockFile (): string { return join(this.dir, 'lab.lock') }
  get manufacturerKeyFile (): string { return join(this.dir, MANUFACTURER_KEY_FILE_NAME) }
  get kmuConfig (): string { return join(this.dir, KMU_CONFIG_FILE_NAME) }
  cmuConfig (region: string, cluster: string): string { return join(this.dir, `${region}-${cluster}.cfg`) }
  clusterDir (region: string, cluster: string): string { return join(this.dir, region, cluster) }
  clusterSecretsFile (region: string, cluster: string): string { return join(this.clusterDir(region, cluster), 'cluster-secrets.json') }
  trustAnchorFile (region: string, cluster: string): string { return join(this.clusterDir(region, cluster), 'customerCA.crt') }
  hsmDir (region: string, cluster: string, index: number): string { return join(this.clusterDir(region, cluster), `hsm${index}`) }
  dataDir (region: string, cluster: string, index: number): string { return join(this.hsmDir(region, cluster, index), 'data') }
  stdoutFile (region: string, cluster: string, index: number): string { return join(this.hsmDir(region, cluster, index), 'hsm.out') }
  logFile (region: string, cluster: string, index: number): string { return join(this.hsmDir(region, cluster, index), 'hsm.log') }
}

/** Writes a file atomically: temporary file, fsync, rename. */
export async function writeFileAtomically (file: string, data: string, mode = 0o644): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`
  const handle = await fsOpen(tmp, 'w', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, file)
}

/** Reads lab.json; undefined when the directory holds no lab. */
export async function readLabState (layout: LabLayout): Promise<LabState | undefined> {
  let text: string
  try {
    text = await readFile(layout.stateFile, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new LabError(LAB_ERR_STATE, `cannot read ${layout.stateFile}: ${(err as Error).message}`, { cause: err })
  }
  let state: unknown
  try {
    state = JSON.parse(text)
  } catch (err) {
    throw new LabError(LAB_ERR_STATE, `${layout.stateFile} is not valid JSON (${(err as Error).message}); stop what runs with 'hsmlab down' and start over with 'hsmlab down --purge'`, { cause: err })
  }
  const format = (state as { format?: unknown } | null)?.format
  if (format !== LAB_STATE_FORMAT) {
    throw new LabError(LAB_ERR_STATE, `${layout.stateFile} was written by another version of hsmlab (format ${JSON.stringify(format)}, expected "${LAB_STATE_FORMAT}"); remove the lab with 'hsmlab down --purge'`)
  }
  return state as LabState
}

/**
 * Saves lab.json, one write at a time in call order: `up` saves as each process appears, from
 * several HSM start-ups at once, and the last call must win.
 */
export class LabStateWriter {
  private readonly layout: LabLayout
  private chain: Promise<void> = Promise.resolve()

  constructor (layout: LabLayout) {
    this.layout = layout
  }

  /** Queues a save of the state as it is now. */
  async save (state: LabState): Promise<void> {
    const text = JSON.stringify(state, null, 2) + '\n'
    const next = this.chain.then(async () => { await writeFileAtomically(this.layout.stateFile, text) })
    this.chain = next.catch(() => {})
    await next
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Takes the lab directory's lock (`lab.lock`, created exclusively, holding our pid) so that two
 * `up`/`down` never work on one lab at once; a lock left by a process that died is taken over.
 * Returns the function that releases it.
 */
export async function acquireLabLock (layout: LabLayout): Promise<() => Promise<void>> {
  await mkdir(layout.dir, { recursive: true })
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(layout.lockFile, `${process.pid}\n`, { flag: 'wx' })
      return async () => { await rm(layout.lockFile, { force: true }) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const holder = Number.parseInt(await readFile(layout.lockFile, 'utf8').catch(() => ''), 10)
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new LabError(LAB_ERR_BUSY, `another hsmlab (pid ${holder}) is working on ${layout.dir}; wait for it to finish (or, if it hangs, stop it and remove ${layout.lockFile})`)
    }
    // A stale lock (its holder is gone): remove it and try again.
    await rm(layout.lockFile, { force: true })
  }
  throw new LabError(LAB_ERR_BUSY, `cannot take the lock ${layout.lockFile}; remove it if no hsmlab is running`)
}
