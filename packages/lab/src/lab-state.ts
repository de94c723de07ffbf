/**
 * What a lab directory holds and the state file that records it (`DIR/lab.json`): the topology
 * the lab was made from, each region's control plane (port, pid), and each cluster's id as its
 * control plane gave it, with what the lab last saw of its HSMs. The control planes are the truth
 * about clusters, HSMs and backups; lab.json only remembers which of their resources belong to
 * which cluster of the topology, and the pids `down` must make sure are gone. The file is
 * rewritten atomically (temporary file, fsync, rename), so a reader never sees half of it, and
 * `up` records a pid as soon as a process exists, so that `down` can always find it.
 *
 * The directory is its owner's only (0700), and lab.json holds no password: the topology's
 * passwords live apart, in `secrets/passwords.json` (0600, in a 0700 directory). They are kept at
 * all because `up` needs them after the first one: an activation it must finish or do again (an
 * `up` interrupted during the activation; a cluster its control plane no longer knows, made
 * again) logs in with them, and a later `up` compares a given topology with the lab's and tells
 * the credentials in its summary. `readLabState` puts them back into the topology; a password
 * the lab no longer has reads as `UNKNOWN_PASSWORD` (an `up --topology FILE` gives it again).
 *
 * Layout of DIR (docs/lab.md "The lab directory"):
 *
 * ```
 * lab.json                          this state (no password)
 * secrets/passwords.json            the topology's passwords (0600; secrets/ 0700)
 * lab.lock                          held by a running `up` or `down` (holds its pid)
 * manufacturer.key                  the installation's manufacturer key (0600), given to every control plane
 * roots/AWS_CloudHSM_Root-G1.crt, roots/cavium_cert.crt   hsmlab's stand-ins for the AWS CloudHSM and
 *                                   manufacturer roots, made from the manufacturer key (verify-hsm-identity)
 * regions.json                      region → control-plane endpoint (direct)
 * <region>/regions.json             that region's control plane's --regions-file: the others through its WAN links
 * fault-proxy/proxies.json          the fault proxy's --config: every link's proxy as last made
 * fault-proxy/fault-proxy.out, .log the fault proxy's standard output (ready line) and log
 * faults.jsonl                      the fault timeline: every fault set or lifted (faults.ts `recordFault`)
 * console/token, console.out, .log  the web console's token (0600), ready line and log (console-process.ts)
 * ca/issuing-ca.key, issuing-ca.crt the customer CA that signs each new cluster's CSR (InitializeCluster)
 * <region>-<cluster>.cfg            CMU configuration of each cluster
 * <src region>-<src>--<region>-<clone>.cfg   CMU configuration spanning a source and its clone
 * key_mgmt_util.cfg                 KMU configuration (the first cluster)
 * <region>/control-plane/data/      the control plane's data directory (its state, backups, HSMs)
 * <region>/control-plane/control-plane.out   its standard output (the ready line)
 * <region>/control-plane/control-plane.log   its standard error (JSON log lines, kept across restarts)
 * <region>/clusters/<cluster>/customerCA.crt the cluster's trust anchor (the configurations' CAfile)
 * ```
 *
 * Region names always hold a `-` and a digit (`us-east-1`), so they never clash with `ca`.
 */
import { chmod, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { takePidLock, writeFileAtomic } from '@hsmlab/process/files'
import { KMU_CONFIG_FILE_NAME, MANUFACTURER_KEY_FILE_NAME, PASSWORDS_FILE_NAME, PEER_SECRET_FILE_NAME, REGIONS_FILE_NAME, STATE_FILE_NAME } from './defaults.js'
import { LabError, LAB_ERR_BUSY, LAB_ERR_STATE } from './errors.js'
import type { Topology } from './topology.js'

/** The format tag of lab.json; another tag is refused with LAB_ERR_STATE. */
export const LAB_STATE_FORMAT = 'hsmlab-lab/2'

/** One region's control plane. */
export interface ControlPlaneState {
  region: string
  /** Port its API listens on; 0 until it first started. Restarts reuse it so endpoints stay valid. */
  port: number
  /** Pid of the process last started, or null when the lab stopped it. */
  pid: number | null
  /**
   * Set when the control plane runs elsewhere (`hsmlab up --control-plane REGION=URL`, as in the
   * Docker lab): its endpoint. The lab then neither starts nor stops it; `port` stays 0 and `pid`
   * null (its process is not the lab's to signal).
   */
  endpoint?: string
  /** When the process last became ready (ISO 8601). */
  startedAt?: string
}

/** What the lab last saw of one HSM (from DescribeClusters). */
export interface HsmSeen {
  id: string
  pid: number | null
  endpoint: string
}

/** One cluster of the topology. */
export interface ClusterState {
  region: string
  name: string
  /** Its ClusterId, once CreateCluster answered; null before. */
  id: string | null
  /** Its lineage, once known (clones share their source's). */
  lineage: string | null
  /** True once the lab finished its activation (PRECO password changed, topology users created), or it is a clone. */
  activated: boolean
  /** For a clone: the backup in its own region it was created from (the copy of a backup of its source). */
  sourceBackupId?: string
  /** Its HSMs as last seen, in the order of its CMU configuration. */
  hsms: HsmSeen[]
}

/** One link's proxy as the lab made it (docs/lab.md "Faults"). */
export interface FaultLinkState {
  /** The proxy's name (`us-east-1/primary/hsm-0`, `wan/us-east-1->us-west-2`). */
  name: string
  kind: 'client' | 'peer' | 'control' | 'wan'
  /** `host:port` it listens on; restarts reuse it so that configurations stay valid. */
  listen: string
  /** `host:port` it forwards to. */
  upstream: string
  /** Its explicit groups (the fault proxy adds the `/` prefixes of its name). */
  groups: string[]
  /** The HSM it reaches (client, peer and control links). */
  hsmId?: string
  /** Who dials it: `client`, `control-plane`, an HSM's id, or a region (WAN). */
  from: string
}

/** The lab's fault proxy: one process on every link of the lab. */
export interface FaultProxyState {
  /** False for a lab made with `hsmlab up --no-faults`: no fault proxy, every link direct. */
  enabled: boolean
  /** Port of its API; 0 until it first started. Restarts reuse it. */
  port: number
  /** Pid of the process last started, or null when the lab stopped it. */
  pid: number | null
  /** The seed of its random draws (`up --seed N`, else drawn once and kept). */
  seed: number | null
  /** When the process last became ready (ISO 8601). */
  startedAt?: string
  /** Every link's proxy as last made. */
  links: FaultLinkState[]
  /**
   * Set when the fault proxy runs elsewhere (`hsmlab up --fault-proxy URL`, as in the Docker lab,
   * where it is a container on every region's network): its API. The lab neither starts nor stops
   * it (`port` stays 0, `pid` null); its links listen on every interface of its host (0.0.0.0) and
   * are reached at the URL's host name.
   */
  endpoint?: string
}

/** The content of lab.json. */
export interface LabState {
  format: typeof LAB_STATE_FORMAT
  createdAt: string
  topology: Topology
  controlPlanes: ControlPlaneState[]
  clusters: ClusterState[]
  /** The fault proxy; absent in a lab made before the fault layer existed (the next `up` adds it). */
  faultProxy?: FaultProxyState
  /** `up --copy-retry-window-seconds`: the control planes' copy retry window, given when they start. */
  copyRetryWindowSeconds?: number
  /** The web console (console-process.ts); absent in a lab made before it existed (the next `up` adds it). */
  console?: ConsoleState
  /** The client daemons (client-daemons.ts): `enabled` false for a lab brought up with `--no-clients`; absent: they run. */
  clients?: { enabled: boolean }
}

/** The web console as lab.json records it. */
export interface ConsoleState {
  /** False for a lab brought up with `--no-console`. */
  enabled: boolean
  /** Its port; 0 until it first started. Restarts reuse it, so that a page left open reconnects. */
  port: number
  pid: number | null
  startedAt?: string
}

/** Every path of a lab directory, from its root. */
export class LabLayout {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  get stateFile (): string { return join(this.dir, STATE_FILE_NAME) }
  /** Where the topology's passwords are kept, apart from lab.json (see the module comment). */
  get secretsDir (): string { return join(this.dir, 'secrets') }
  get passwordsFile (): string { return join(this.secretsDir, PASSWORDS_FILE_NAME) }
  get lockFile (): string { return join(this.dir, 'lab.lock') }
  get manufacturerKeyFile (): string { return join(this.dir, MANUFACTURER_KEY_FILE_NAME) }
  /** The peer secret the lab's control planes sign region-to-region requests with (0600). */
  get peerSecretFile (): string { return join(this.dir, PEER_SECRET_FILE_NAME) }
  get regionsFile (): string { return join(this.dir, REGIONS_FILE_NAME) }
  get kmuConfig (): string { return join(this.dir, KMU_CONFIG_FILE_NAME) }
  get caDir (): string { return join(this.dir, 'ca') }
  /** Where the stand-in roots of the HSMs' certificate chains are written (ROOT_FILE_NAMES). */
  get rootsDir (): string { return join(this.dir, 'roots') }
  get caKeyFile (): string { return join(this.caDir, 'issuing-ca.key') }
  get caCertFile (): string { return join(this.caDir, 'issuing-ca.crt') }
  cmuConfig (region: string, cluster: string): string { return join(this.dir, `${region}-${cluster}.cfg`) }
  crossConfig (source: { region: string, name: string }, clone: { region: string, name: string }): string {
    return join(this.dir, `${source.region}-${source.name}--${clone.region}-${clone.name}.cfg`)
  }
  regionDir (region: string): string { return join(this.dir, region) }
  /** Everything of a region's control plane, its HSMs included: every process of the lab names a data directory under it. */
  controlPlaneDir (region: string): string { return join(this.regionDir(region), 'control-plane') }
  controlPlaneDataDir (region: string): string { return join(this.controlPlaneDir(region), 'data') }
  controlPlaneStdoutFile (region: string): string { return join(this.controlPlaneDir(region), 'control-plane.out') }
  controlPlaneLogFile (region: string): string { return join(this.controlPlaneDir(region), 'control-plane.log') }
  clusterDir (region: string, cluster: string): string { return join(this.regionDir(region), 'clusters', cluster) }
  trustAnchorFile (region: string, cluster: string): string { return join(this.clusterDir(region, cluster), 'customerCA.crt') }
  /** An HSM's data directory, where its control plane keeps it (docs/control-plane.md). */
  hsmDataDir (region: string, hsmId: string): string { return join(this.controlPlaneDataDir(region), 'hsms', hsmId, 'data') }
  /** The fault proxy's directory: its `--config` (proxies.json), standard output and log. */
  get faultProxyDir (): string { return join(this.dir, 'fault-proxy') }
  get faultProxyConfigFile (): string { return join(this.faultProxyDir, 'proxies.json') }
  get faultProxyStdoutFile (): string { return join(this.faultProxyDir, 'fault-proxy.out') }
  get faultProxyLogFile (): string { return join(this.faultProxyDir, 'fault-proxy.log') }
  /** A region's control plane's `--regions-file`: the other regions through its WAN links (or direct without a fault proxy). */
  regionRegionsFile (region: string): string { return join(this.regionDir(region), REGIONS_FILE_NAME) }
  /** An HSM's log, beside its data directory. */
  hsmLogFile (region: string, hsmId: string): string { return join(this.controlPlaneDataDir(region), 'hsms', hsmId, 'hsm.log') }
}

/** A password of the topology that the lab does not have (its passwords file is gone): never a valid password. */
export const UNKNOWN_PASSWORD = ''

/** The format tag of the passwords file. */
const PASSWORDS_FORMAT = 'hsmlab-passwords/1'

/** The content of the passwords file: per cluster of the topology, its admin's and its users' passwords. */
interface PasswordsFile {
  format: typeof PASSWORDS_FORMAT
  clusters: Array<{ region: string, cluster: string, admin?: string, users: Array<{ name: string, password: string }> }>
}

/** The known passwords of a topology; undefined when it has none. */
function passwordsOf (topology: Topology): PasswordsFile | undefined {
  const clusters: PasswordsFile['clusters'] = []
  for (const region of topology.regions) {
    for (const cluster of region.clusters) {
      const admin = cluster.activate?.admin
      const users = cluster.users.filter(u => u.password !== UNKNOWN_PASSWORD).map(u => ({ name: u.name, password: u.password }))
      if ((admin === undefined || admin === UNKNOWN_PASSWORD) && users.length === 0) continue
      clusters.push({ region: region.name, cluster: cluster.name, ...(admin === undefined || admin === UNKNOWN_PASSWORD ? {} : { admin }), users })
    }
  }
  return clusters.length === 0 ? undefined : { format: PASSWORDS_FORMAT, clusters }
}

/** The topology as lab.json holds it: `activate: {}` and users without their passwords. */
function withoutPasswords (topology: Topology): unknown {
  return {
    ...topology,
    regions: topology.regions.map(region => ({
      ...region,
      clusters: region.clusters.map(cluster => ({
        ...cluster,
        ...(cluster.activate === undefined ? {} : { activate: {} }),
        users: cluster.users.map(({ password: _password, ...user }) => user)
      }))
    }))
  }
}

/**
 * Puts the passwords back into the topology lab.json holds; a password found in neither the
 * passwords file nor lab.json itself (a lab.json of an earlier version held them) is unknown.
 */
function withPasswords (topology: Topology, passwords: PasswordsFile | undefined): Topology {
  const find = (region: string, cluster: string): PasswordsFile['clusters'][number] | undefined =>
    passwords?.clusters.find(c => c.region === region && c.cluster === cluster)
  return {
    ...topology,
    regions: topology.regions.map(region => ({
      ...region,
      clusters: region.clusters.map(cluster => {
        const kept = find(region.name, cluster.name)
        const known = (value: unknown): string | undefined => typeof value === 'string' && value !== UNKNOWN_PASSWORD ? value : undefined
        return {
          ...cluster,
          ...(cluster.activate === undefined ? {} : { activate: { admin: known(kept?.admin) ?? known(cluster.activate.admin) ?? UNKNOWN_PASSWORD } }),
          // `?? []`: lab.json is read as written, and a hand-written one may leave out an empty list.
          users: (cluster.users ?? []).map(user => ({
            ...user,
            password: known(kept?.users.find(u => u.name === user.name)?.password) ?? known(user.password) ?? UNKNOWN_PASSWORD
          }))
        }
      })
    }))
  }
}

/** Reads the passwords file; undefined when there is none. */
async function readPasswords (layout: LabLayout): Promise<PasswordsFile | undefined> {
  let text: string
  try {
    text = await readFile(layout.passwordsFile, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new LabError(LAB_ERR_STATE, `cannot read ${layout.passwordsFile}: ${(err as Error).message}`, { cause: err })
  }
  let passwords: unknown
  try {
    passwords = JSON.parse(text)
  } catch (err) {
    throw new LabError(LAB_ERR_STATE, `${layout.passwordsFile} is not valid JSON (${(err as Error).message}); remove it and run 'hsmlab up --topology FILE' to give the lab its topology's passwords again`, { cause: err })
  }
  const { format, clusters } = (passwords ?? {}) as { format?: unknown, clusters?: unknown }
  if (format !== PASSWORDS_FORMAT || !Array.isArray(clusters)) {
    throw new LabError(LAB_ERR_STATE, `${layout.passwordsFile} is not a passwords file of this version of hsmlab (format ${JSON.stringify(format)}, expected "${PASSWORDS_FORMAT}"); remove it and run 'hsmlab up --topology FILE'`)
  }
  return passwords as PasswordsFile
}

/** Reads lab.json, with the topology's passwords put back; undefined when the directory holds no lab. */
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
  const lab = state as LabState
  lab.topology = withPasswords(lab.topology, await readPasswords(layout))
  return lab
}

/**
 * Saves lab.json, one write at a time in call order: `up` saves as each process and cluster
 * appears, from several regions at once, and the last call must win. The topology's passwords go
 * to the passwords file (0600 in a 0700 directory), written before the lab.json that leaves them
 * out, and only when they changed; lab.json is 0600 too, as nobody else has any use for it.
 */
export class LabStateWriter {
  private readonly layout: LabLayout
  private chain: Promise<void> = Promise.resolve()
  /** The passwords file's content as last written by this writer. */
  private passwordsWritten: string | undefined

  constructor (layout: LabLayout) {
    this.layout = layout
  }

  /** Queues a save of the state as it is now. */
  async save (state: LabState): Promise<void> {
    const text = JSON.stringify({ ...state, topology: withoutPasswords(state.topology) }, null, 2) + '\n'
    const passwords = passwordsOf(state.topology)
    const passwordsText = passwords === undefined ? undefined : JSON.stringify(passwords, null, 2) + '\n'
    const next = this.chain.then(async () => {
      if (passwordsText !== undefined && passwordsText !== this.passwordsWritten) {
        await mkdir(this.layout.secretsDir, { recursive: true, mode: 0o700 })
        await chmod(this.layout.secretsDir, 0o700)
        await writeFileAtomic(this.layout.passwordsFile, passwordsText, { mode: 0o600 })
        await chmod(this.layout.passwordsFile, 0o600)
        this.passwordsWritten = passwordsText
      }
      await writeFileAtomic(this.layout.stateFile, text, { mode: 0o600 })
    })
    this.chain = next.catch(() => {})
    await next
  }
}

/**
 * Takes the lab directory's lock (`lab.lock`, created exclusively, holding our pid) so that two
 * `up`/`down` never work on one lab at once; a lock left by a process that died is taken over.
 * Returns the function that releases it.
 */
export async function acquireLabLock (layout: LabLayout): Promise<() => Promise<void>> {
  // The lab's directory is its owner's only: it holds the manufacturer key, the customer CA's key,
  // the passwords file and every HSM's data; one made by an earlier version is narrowed too.
  await mkdir(layout.dir, { recursive: true, mode: 0o700 })
  await chmod(layout.dir, 0o700)
  const lock = await takePidLock(layout.lockFile)
  if ('release' in lock) return lock.release
  if (lock.heldBy === undefined) throw new LabError(LAB_ERR_BUSY, `cannot take the lock ${layout.lockFile}; remove it if no hsmlab is running`)
  throw new LabError(LAB_ERR_BUSY, `another hsmlab (pid ${lock.heldBy}) is working on ${layout.dir}; wait for it to finish (or, if it hangs, stop it and remove ${layout.lockFile})`)
}
