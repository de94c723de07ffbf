/**
 * Topologies: the JSON file that says which regions, clusters, HSMs and users a lab has
 * (DESIGN.md "The lab's contract", docs/lab.md). `parseTopology` checks a parsed file and lists
 * every problem it finds, each with its place in the file, so that one run tells a person all
 * there is to fix.
 */
import { readFile } from 'node:fs/promises'
import { APPLIANCE_USER_NAME, DEFAULT_ADMIN_NAME, DEFAULT_ADMIN_PASSWORD } from '@hsmlab/hsm'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_TOPOLOGY } from './errors.js'
import { describeGroups, groupIndex, linksBetween, planLinks } from './fault-links.js'
import { FAULT_MS_MAX, allFaultFields, checkFault } from './fault-vocabulary.js'
import type { FaultDialect, LabFault } from './fault-vocabulary.js'
import { FileChecker, describe } from './file-checker.js'
import type { Json } from './file-checker.js'
import { SYNC_REPLICAS_MAX, SYNC_TYPES, parseSyncKeys, parseSyncType, parseSyncUsers } from './sync-scope.js'
import type { SyncKeys, SyncType } from './sync-scope.js'

/** A user the lab creates on every HSM of an activated cluster. */
export interface TopologyUser {
  type: 'CO' | 'CU'
  name: string
  password: string
}

/** One cluster of a region. */
export interface TopologyCluster {
  name: string
  /** Number of HSMs, 1 to 28. */
  hsms: number
  /** Activate the cluster: the PRECO `admin` takes this password and becomes a CO. */
  activate?: { admin: string }
  /** Users created on every HSM once the cluster is activated (requires `activate`). */
  users: TopologyUser[]
  /** Make the cluster from a backup of another: a backup of the source is copied to this region and a cluster is created from it. */
  cloneOf?: { region: string, cluster: string }
  /** A synchronisation task with this cluster as its primary, which `hsmlab up` builds once every cluster is ACTIVE (docs/sync.md). */
  sync?: TopologySync
}

/** A cluster's synchronisation task in a topology: its replicas (1 to 3, other regions, the primary's lineage) and its scope. */
export interface TopologySync {
  replicas: Array<{ region: string, cluster: string, type: SyncType }>
  keys?: SyncKeys
  users?: string[]
}

/** One region of the lab. */
export interface TopologyRegion {
  name: string
  clusters: TopologyCluster[]
}

/** A checked topology; `users` is always present (empty when the file has none). */
export interface Topology {
  description?: string
  regions: TopologyRegion[]
  /** Faults set on the lab's links once it is up (by the `up` that starts its fault proxy); see faults.ts. */
  faults?: LabFault[]
}

// The AWS region pattern (reference F.2), which the control planes accept (`us-east-1`, `us-gov-west-1`).
const REGION_NAME = /^[a-z]{2}(-(gov|iso|isob))?-(east|west|north|south|central){1,2}-\d$/
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
// Reference B.2: user names up to 31 characters, `_` the only special character; passwords 7–32.
const USER_NAME = /^[A-Za-z0-9_]{1,31}$/
const PASSWORD_LENGTH_MIN = 7
const PASSWORD_LENGTH_MAX = 32
// Users every HSM has from the start; a topology cannot create them again.
const RESERVED_USER_NAMES = [DEFAULT_ADMIN_NAME, APPLIANCE_USER_NAME]

/** The topology's checks: the common ones, and passwords as the HSM accepts them. */
class Checker extends FileChecker {
  password (path: string, value: unknown): string | undefined {
    if (value === undefined) { this.fail(path, `is missing (a password of ${PASSWORD_LENGTH_MIN} to ${PASSWORD_LENGTH_MAX} characters)`); return undefined }
    if (typeof value !== 'string' || value.length < PASSWORD_LENGTH_MIN || value.length > PASSWORD_LENGTH_MAX) {
      const got = typeof value === 'string' ? `${value.length} characters` : describe(value)
      this.fail(path, `must be a password of ${PASSWORD_LENGTH_MIN} to ${PASSWORD_LENGTH_MAX} characters, not ${got}`)
      return undefined
    }
    return value
  }
}

function checkUser (c: Checker, path: string, raw: unknown): TopologyUser | undefined {
  const u = c.object(path, raw, ['type', 'name', 'password'])
  if (u === undefined) return undefined
  let type: TopologyUser['type'] | undefined
  if (u.type === 'CO' || u.type === 'CU') type = u.type
  else c.fail(`${path}.type`, u.type === undefined ? 'is missing ("CO" or "CU")' : `must be "CO" or "CU", not ${describe(u.type)}`)
  const name = c.string(`${path}.name`, u.name, USER_NAME, 'a user name of 1 to 31 letters, digits or _')
  if (name !== undefined && RESERVED_USER_NAMES.includes(name.toLowerCase())) {
    c.fail(`${path}.name`, `"${name}" is a user every HSM already has; pick another name`)
  }
  const password = c.password(`${path}.password`, u.password)
  if (type === undefined || name === undefined || password === undefined) return undefined
  return { type, name, password }
}

function checkCluster (c: Checker, path: string, raw: unknown): TopologyCluster | undefined {
  const k = c.object(path, raw, ['name', 'hsms', 'activate', 'users', 'cloneOf', 'sync'])
  if (k === undefined) return undefined
  const name = c.string(`${path}.name`, k.name, CLUSTER_NAME, 'a cluster name of 1 to 32 letters, digits, - or _')
  let hsms: number | undefined
  if (k.hsms === undefined) c.fail(`${path}.hsms`, `is missing (the number of HSMs, 1 to ${labDefaults.hsmsPerClusterMax})`)
  else if (typeof k.hsms !== 'number' || !Number.isInteger(k.hsms) || k.hsms < 1 || k.hsms > labDefaults.hsmsPerClusterMax) {
    c.fail(`${path}.hsms`, `must be a whole number from 1 to ${labDefaults.hsmsPerClusterMax} (a cluster has 1 to 28 HSMs), not ${describe(k.hsms)}`)
  } else hsms = k.hsms
  let activate: TopologyCluster['activate']
  if (k.activate !== undefined) {
    const a = c.object(`${path}.activate`, k.activate, ['admin'])
    if (a !== undefined) {
      const admin = c.password(`${path}.activate.admin`, a.admin)
      if (admin !== undefined) {
        if (admin === DEFAULT_ADMIN_PASSWORD) c.fail(`${path}.activate.admin`, `must differ from the PRECO's default password "${DEFAULT_ADMIN_PASSWORD}"`)
        else activate = { admin }
      }
    }
  }
  const users: TopologyUser[] = []
  let usersOk = true
  if (k.users !== undefined) {
    const list = c.array(`${path}.users`, k.users, 0)
    if (list === undefined) usersOk = false
    else {
      const seen = new Set<string>()
      list.forEach((rawUser, i) => {
        const user = checkUser(c, `${path}.users[${i}]`, rawUser)
        if (user === undefined) { usersOk = false; return }
        if (seen.has(user.name.toLowerCase())) {
          c.fail(`${path}.users[${i}].name`, `"${user.name}" is listed twice (user names do not depend on case)`)
          usersOk = false
        }
        seen.add(user.name.toLowerCase())
        users.push(user)
      })
      if (list.length > 0 && k.activate === undefined && k.cloneOf === undefined) {
        c.fail(`${path}.users`, 'needs "activate": only a crypto officer can create users, and a cluster has none until it is activated')
      }
    }
  }
  let cloneOf: TopologyCluster['cloneOf']
  if (k.cloneOf !== undefined) {
    const s = c.object(`${path}.cloneOf`, k.cloneOf, ['region', 'cluster'])
    if (s !== undefined) {
      const region = c.string(`${path}.cloneOf.region`, s.region, REGION_NAME, 'the name of a region of this topology')
      const cluster = c.string(`${path}.cloneOf.cluster`, s.cluster, CLUSTER_NAME, 'the name of a cluster of that region')
      if (region !== undefined && cluster !== undefined) cloneOf = { region, cluster }
    }
    if (k.activate !== undefined || (Array.isArray(k.users) && k.users.length > 0)) {
      c.fail(`${path}.cloneOf`, 'a clone takes its users from the backup of its source: drop "activate" and "users"')
    }
  }
  const sync = k.sync === undefined ? undefined : checkSync(c, `${path}.sync`, k.sync)
  if (name === undefined || hsms === undefined || !usersOk || (k.activate !== undefined && activate === undefined) || (k.cloneOf !== undefined && cloneOf === undefined) ||
    (k.sync !== undefined && sync === undefined)) return undefined
  const out: TopologyCluster = { name, hsms, users }
  if (activate !== undefined) out.activate = activate
  if (cloneOf !== undefined) out.cloneOf = cloneOf
  if (sync !== undefined) out.sync = sync
  return out
}

/** A cluster's `sync`, each field on its own; what it names is checked once every cluster is known (`checkSyncTasks`). */
function checkSync (c: Checker, path: string, raw: unknown): TopologySync | undefined {
  const s = c.object(path, raw, ['replicas', 'keys', 'users'])
  if (s === undefined) return undefined
  let ok = true
  const replicas: TopologySync['replicas'] = []
  const list = c.array(`${path}.replicas`, s.replicas, 1)
  if (list === undefined) ok = false
  else if (list.length > SYNC_REPLICAS_MAX) { c.fail(`${path}.replicas`, `lists ${list.length} replicas; a synchronisation task has at most ${SYNC_REPLICAS_MAX}`); ok = false }
  list?.forEach((rawReplica, i) => {
    const at = `${path}.replicas[${i}]`
    const r = c.object(at, rawReplica, ['region', 'cluster', 'type'])
    if (r === undefined) { ok = false; return }
    const region = c.string(`${at}.region`, r.region, REGION_NAME, 'the name of another region of this topology')
    const cluster = c.string(`${at}.cluster`, r.cluster, CLUSTER_NAME, 'the name of a cluster of that region')
    let type: SyncType | undefined
    if (r.type === undefined) c.fail(`${at}.type`, `is missing (${SYNC_TYPES.join(' or ')})`)
    else {
      try { type = parseSyncType(r.type) } catch (err) { c.fail(`${at}.type`, (err as Error).message) }
    }
    if (region === undefined || cluster === undefined || type === undefined) { ok = false; return }
    if (replicas.some(x => x.region === region && x.cluster === cluster)) { c.fail(at, `${region}/${cluster} is listed twice`); ok = false; return }
    replicas.push({ region, cluster, type })
  })
  const out: TopologySync = { replicas }
  if (s.keys !== undefined) {
    try { out.keys = parseSyncKeys(s.keys) } catch (err) { c.fail(`${path}.keys`, (err as Error).message); ok = false }
  }
  if (s.users !== undefined) {
    try { out.users = parseSyncUsers(s.users) } catch (err) { c.fail(`${path}.users`, (err as Error).message); ok = false }
  }
  return ok ? out : undefined
}

/**
 * What each task's replicas name, once every cluster is known: a cluster of the topology, in
 * another region than its primary, of the primary's lineage (both made, through cloneOf, from the
 * same cluster: a clone inherits its source's masking key), not the primary of a task itself and
 * not the replica of two tasks, as the control plane would refuse them (docs/sync.md).
 */
function checkSyncTasks (c: Checker, regions: TopologyRegion[], find: (ref: { region: string, cluster: string }) => TopologyCluster | undefined): void {
  const originOf = (cluster: TopologyCluster): TopologyCluster => {
    const seen = new Set<TopologyCluster>()
    let at = cluster
    while (at.cloneOf !== undefined && !seen.has(at)) {
      seen.add(at)
      const next = find(at.cloneOf)
      if (next === undefined) break
      at = next
    }
    return at
  }
  const replicaOf = new Map<TopologyCluster, string>()
  regions.forEach((region, r) => {
    region.clusters.forEach((cluster, k) => {
      if (cluster.sync === undefined) return
      const primary = `${region.name}/${cluster.name}`
      cluster.sync.replicas.forEach((ref, i) => {
        const path = `regions[${r}].clusters[${k}].sync.replicas[${i}]`
        const name = `${ref.region}/${ref.cluster}`
        const replica = find(ref)
        if (replica === undefined) { c.fail(path, `names ${name}, which this topology does not define`); return }
        if (ref.region === region.name) { c.fail(`${path}.region`, `${name} is in the primary's region ${region.name}; a replica is in another region`); return }
        if (originOf(replica) !== originOf(cluster)) {
          c.fail(path, `${name} is not of ${primary}'s lineage: a replica is made from a backup of its primary (give it "cloneOf": { "region": "${region.name}", "cluster": "${cluster.name}" })`)
          return
        }
        if (replica.sync !== undefined) c.fail(path, `${name} is the primary of a synchronisation task itself; a replica cannot be one`)
        const other = replicaOf.get(replica)
        if (other !== undefined) c.fail(path, `${name} is already a replica of ${other}; a cluster is the replica of one task at most`)
        replicaOf.set(replica, primary)
      })
    })
  })
}

/**
 * Checks a parsed topology file and returns it in normal form; throws `LAB_ERR_TOPOLOGY` listing
 * every problem, each as `<source>: <path>: <what is wrong>`.
 */
export function parseTopology (json: unknown, source = 'topology'): Topology {
  const c = new Checker()
  const regions: TopologyRegion[] = []
  let description: string | undefined
  const top = c.object('topology', json, ['description', 'regions', 'faults'])
  if (top !== undefined) {
    if (top.description !== undefined) {
      if (typeof top.description === 'string') description = top.description
      else c.fail('description', `must be a string, not ${describe(top.description)}`)
    }
    const list = c.array('regions', top.regions, 1) ?? []
    const regionNames = new Set<string>()
    list.forEach((rawRegion, r) => {
      const path = `regions[${r}]`
      const g = c.object(path, rawRegion, ['name', 'clusters'])
      if (g === undefined) return
      const name = c.string(`${path}.name`, g.name, REGION_NAME, 'an AWS region name (like "us-east-1" or "eu-west-2")')
      if (name !== undefined) {
        if (regionNames.has(name)) c.fail(`${path}.name`, `region "${name}" is listed twice`)
        regionNames.add(name)
      }
      const clusters: TopologyCluster[] = []
      const clusterNames = new Set<string>()
      const rawClusters = c.array(`${path}.clusters`, g.clusters, 1) ?? []
      rawClusters.forEach((rawCluster, k) => {
        const cluster = checkCluster(c, `${path}.clusters[${k}]`, rawCluster)
        if (cluster === undefined) return
        if (clusterNames.has(cluster.name)) c.fail(`${path}.clusters[${k}].name`, `cluster "${cluster.name}" is listed twice in region "${name ?? '?'}"`)
        clusterNames.add(cluster.name)
        clusters.push(cluster)
      })
      if (name !== undefined) regions.push({ name, clusters })
    })
    // A clone's source must be a cluster of this topology that gets backups: an activated one, or
    // a clone (ACTIVE once restored); and following cloneOf must end at such a cluster, not loop.
    const find = (ref: { region: string, cluster: string }): TopologyCluster | undefined =>
      regions.find(g => g.name === ref.region)?.clusters.find(x => x.name === ref.cluster)
    regions.forEach((region, r) => {
      region.clusters.forEach((cluster, k) => {
        if (cluster.cloneOf === undefined) return
        const path = `regions[${r}].clusters[${k}].cloneOf`
        const { region: sourceRegion, cluster: sourceCluster } = cluster.cloneOf
        const source = find(cluster.cloneOf)
        if (source === undefined) { c.fail(path, `names ${sourceRegion}/${sourceCluster}, which this topology does not define`); return }
        if (source === cluster) { c.fail(path, 'names the cluster itself'); return }
        const seen = new Set<TopologyCluster>([cluster])
        let at: TopologyCluster | undefined = source
        while (at?.cloneOf !== undefined && !seen.has(at)) { seen.add(at); at = find(at.cloneOf) }
        if (at !== undefined && seen.has(at)) { c.fail(path, `${region.name}/${cluster.name} and ${sourceRegion}/${sourceCluster} are clones of each other in a loop: one of them must be made from scratch`); return }
        if (source.cloneOf === undefined && source.activate === undefined) {
          c.fail(path, `names ${sourceRegion}/${sourceCluster}, which the lab does not activate: a cluster is backed up only once it is active, so give it "activate"`)
        }
      })
    })
    checkSyncTasks(c, regions, find)
  }
  let faults: LabFault[] | undefined
  if (top?.faults !== undefined) faults = checkFaults(c, top.faults, regions)
  if (c.problems.length > 0) {
    throw new LabError(LAB_ERR_TOPOLOGY, `${source} is not a valid topology:\n${c.problems.map(p => `  ${p}`).join('\n')}`)
  }
  const out: Topology = { regions }
  if (description !== undefined) out.description = description
  if (faults !== undefined && faults.length > 0) out.faults = faults
  return out
}

/** How a topology spells faults: `reset_peer` (also `reset-peer`), `jitter`, delays up to an hour. */
const TOPOLOGY_FAULT_SPELLING = {
  words: { partition: ['partition'], blackhole: ['blackhole'], latency: ['latency'], reset_peer: ['reset_peer', 'reset-peer'] }
} as const

/**
 * The fault dialect of a topology whose links are `links`: each fault names groups the lab will
 * have (regions, clusters, `<region>/<cluster>/hsm-<i>`, link families such as `wan`; not HSM ids,
 * which do not exist yet), a `between` names two groups with links between them, and the numbers
 * are whole milliseconds.
 */
function topologyFaultDialect (links: ReturnType<typeof planLinks>): FaultDialect {
  const groups = groupIndex(links)
  const known = describeGroups(links)
  const group = (c: FileChecker, path: string, value: unknown): string | undefined => {
    if (typeof value !== 'string' || value === '') { c.fail(path, value === undefined ? `is missing (a group of the lab: ${known})` : `must be the name of a group, not ${describe(value)}`); return undefined }
    if (!groups.has(value)) { c.fail(path, `the lab has no group "${value}" (${known})`); return undefined }
    return value
  }
  const dialect: FaultDialect = {
    ...TOPOLOGY_FAULT_SPELLING,
    fillDefaults: false,
    number: (c, path, value, field) => {
      if (field.unit === 'fraction') {
        if (value === undefined) return undefined
        if (typeof value !== 'number' || !(value >= 0 && value <= 1)) { c.fail(path, `must be a number from 0 to 1, not ${describe(value)}`); return null }
        return value
      }
      if (value === undefined) {
        if (!field.required) return undefined
        c.fail(path, `is missing (whole milliseconds, 0 to ${FAULT_MS_MAX})`)
        return null
      }
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > FAULT_MS_MAX) {
        c.fail(path, `must be a whole number of milliseconds from 0 to ${FAULT_MS_MAX}, not ${describe(value)}`)
        return null
      }
      return value
    },
    group,
    between: (c, path, value) => {
      const between = Array.isArray(value) && value.length === 2 ? value : undefined
      if (between === undefined) { c.fail(path, `must be two groups, like ["us-east-1", "us-west-2"], not ${describe(value)}`); return undefined }
      const a = group(c, `${path}[0]`, between[0])
      const b = group(c, `${path}[1]`, between[1])
      if (a === undefined || b === undefined) return undefined
      if (linksBetween(links, a, b).length === 0) {
        c.fail(path, `no link runs between "${a}" and "${b}": name two regions, or two HSMs of one cluster`)
        return undefined
      }
      return [a, b]
    },
    unknownType: (c, path, raw, listed) => {
      if (c.object(path, raw, allFaultFields(TOPOLOGY_FAULT_SPELLING)) === undefined) return
      const type = (raw as Json).type
      c.fail(`${path}.type`, type === undefined ? `is missing (${listed.join(', ')})` : `must be one of ${listed.join(', ')}, not ${describe(type)}`)
    }
  }
  return dialect
}

/** Checks the `faults` of a topology through the fault vocabulary, in the topology's dialect. */
function checkFaults (c: Checker, raw: unknown, regions: TopologyRegion[]): LabFault[] | undefined {
  const list = c.array('faults', raw, 0)
  if (list === undefined) return undefined
  const links = planLinks({
    regions: regions.map(r => ({ name: r.name, controlPlane: '127.0.0.1:1', clusters: r.clusters.map(k => ({ name: k.name, hsms: Array.from({ length: k.hsms }, () => ({ address: '127.0.0.1:1' })) })) }))
  })
  const dialect = topologyFaultDialect(links)
  return list.flatMap((rawFault, i) => checkFault(c, `faults[${i}]`, rawFault, dialect) ?? [])
}

/**
 * Reads a JSON file for the lab (a topology, a scenario): a missing or unreadable file and text
 * that is not JSON fail with `code`, naming the file `name` the way the person typed it.
 */
export async function readLabJsonFile (file: string, name: string, code: string, what: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new LabError(code, `cannot read the ${what} file ${name}: ${why}`, { cause: err })
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new LabError(code, `${name} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Reads and checks a topology file (`LAB_ERR_TOPOLOGY` when it cannot be read or is wrong);
 * messages name it `name` (by default the path), the way the person typed it.
 */
export async function readTopology (file: string, name: string = file): Promise<Topology> {
  return parseTopology(await readLabJsonFile(file, name, LAB_ERR_TOPOLOGY, 'topology'), name)
}

/** Every cluster of a topology in lab order (regions in file order, then clusters). */
export function clustersOf (topology: Topology): Array<{ region: TopologyRegion, cluster: TopologyCluster }> {
  return topology.regions.flatMap(region => region.clusters.map(cluster => ({ region, cluster })))
}
