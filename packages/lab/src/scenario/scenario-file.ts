/**
 * Scenario files (docs/scenarios.md): a lab topology, a workload of client operations and a timed
 * schedule of faults, kills and heals, as JSON. `parseScenario` checks a parsed file and lists
 * every problem with its place in the file, as `parseTopology` does; `resolveScenario` then checks
 * the names it uses (clusters, regions, HSMs) against the topology the lab will have.
 */
import { dirname, resolve } from 'node:path'
import { LabError, LAB_ERR_SCENARIO } from '../errors.js'
import { parseTopology, readLabJsonFile, readTopology } from '../topology.js'
import type { Topology, TopologyCluster } from '../topology.js'
import { DEFAULT_TOPOLOGY_PATH } from '../defaults.js'
import { scenarioDefaults } from './defaults.js'
import { FileChecker, describe } from '../file-checker.js'
import type { Json } from '../file-checker.js'
import { checkFault as checkLabFault } from '../fault-vocabulary.js'
import type { FaultDialect, FaultLinks, LabFault } from '../fault-vocabulary.js'

/** One operation a workload stream may pick; `weight` makes it likelier. */
export type WorkloadOp =
  | { op: 'createKey', weight: number, cluster: string, as?: string, sizesBytes: number[], minServers?: number }
  | { op: 'createUser', weight: number, cluster: string, userType: 'CU' | 'CO' }
  | { op: 'syncKey', weight: number, from: string, to: string }
  | { op: 'syncUser', weight: number, from: string, to: string }
  | { op: 'createBackup', weight: number, cluster: string }
  | { op: 'copyBackup', weight: number, cluster: string, to: string }
  | { op: 'shareKey', weight: number, cluster: string }
  | { op: 'deleteKey', weight: number, cluster: string }

export type WorkloadOpName = WorkloadOp['op']

/** A group of clients that each run operations one after the other, picked at random by weight. */
export interface WorkloadStream {
  name: string
  /** @default 1 */
  clients: number
  /** @default 0 */
  startMs: number
  /** @default the scenario's durationMs */
  stopMs: number
  /** Each client waits a random time in [min, max] before each operation. @default [0, 50] */
  pauseMs: [number, number]
  /** At most this many operations per client. */
  operationsMax?: number
  ops: WorkloadOp[]
}

/** Which links a latency or reset fault applies to: every link of a group, or the links between two groups. */
export type LinkSelector = FaultLinks

/** A flap: a group partitioned and healed in turn until `untilMs`, for random times in `downMs` and `upMs` (a schedule of partitions, not a fault of its own). */
export interface Flap { type: 'flap', group: string, untilMs: number, upMs: [number, number], downMs: [number, number] }

/**
 * A fault of the schedule: one of the lab's faults in normal form (fault-vocabulary.ts; the file
 * writes `reset-peer` and `jitterMs`, and every field is filled in), lifted after `durationMs` when
 * given; or a flap.
 */
export type Fault = (LabFault & { durationMs?: number }) | Flap

/** One entry of the schedule, at `atMs` (plus a random part of `jitterMs`) after the start. */
export type ScheduleEntry = { atMs: number, jitterMs: number } & (
  | { action: 'fault', fault: Fault }
  | { action: 'heal', group: string } // a group's name, or 'all'
  | { action: 'kill', target: string, restartAfterMs?: number }
)

/** A checked scenario. */
export interface Scenario {
  name: string
  description?: string
  /** The topology as given: a path (relative to the scenario file) or an inline object; absent: the default lab. */
  topology?: string | Record<string, unknown>
  seed?: number
  durationMs: number
  settleTimeoutMs: number
  /** Deadline of each request the workload sends (to an HSM or a control plane). */
  requestTimeoutMs: number
  workload: WorkloadStream[]
  schedule: ScheduleEntry[]
}



const MS_MAX = 3_600_000
const CLUSTER_REF = /^[a-z0-9-]+\/[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
const AES_SIZES = [16, 24, 32]

/** The scenario's checks: the common ones, and numbers, fractions and time ranges. */
class Checker extends FileChecker {
  int (path: string, value: unknown, min: number, max: number, fallback?: number): number | undefined {
    if (value === undefined) {
      if (fallback === undefined) this.fail(path, `is missing (a whole number from ${min} to ${max})`)
      return fallback
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(path, `must be a whole number from ${min} to ${max}, not ${describe(value)}`)
      return undefined
    }
    return value
  }

  optionalInt (path: string, value: unknown, min: number, max: number): number | undefined {
    return value === undefined ? undefined : this.int(path, value, min, max)
  }

  fraction (path: string, value: unknown, fallback: number): number | undefined {
    if (value === undefined) return fallback
    if (typeof value !== 'number' || !(value > 0) || value > 1) {
      this.fail(path, `must be a number above 0 and at most 1, not ${describe(value)}`)
      return undefined
    }
    return value
  }

  range (path: string, value: unknown, fallback?: [number, number]): [number, number] | undefined {
    if (value === undefined) {
      if (fallback === undefined) this.fail(path, 'is missing ([min, max] in milliseconds)')
      return fallback
    }
    if (!Array.isArray(value) || value.length !== 2 || !value.every(v => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MS_MAX) || (value[0] as number) > (value[1] as number)) {
      this.fail(path, `must be [min, max]: two whole numbers of milliseconds, min ≤ max, not ${describe(value)}`)
      return undefined
    }
    return [value[0] as number, value[1] as number]
  }


}

const OP_FIELDS: Record<WorkloadOpName, readonly string[]> = {
  createKey: ['op', 'weight', 'cluster', 'as', 'sizesBytes', 'minServers'],
  createUser: ['op', 'weight', 'cluster', 'userType'],
  syncKey: ['op', 'weight', 'from', 'to'],
  syncUser: ['op', 'weight', 'from', 'to'],
  createBackup: ['op', 'weight', 'cluster'],
  copyBackup: ['op', 'weight', 'cluster', 'to'],
  shareKey: ['op', 'weight', 'cluster'],
  deleteKey: ['op', 'weight', 'cluster']
}

const CLUSTER_RULE = 'a cluster of the topology as "<region>/<cluster>"'

function checkOp (c: Checker, path: string, raw: unknown): WorkloadOp | undefined {
  const name = (raw as Json | null)?.op
  // Own entries only: `in` would take `constructor` or `toString` for an operation.
  if (typeof name !== 'string' || !Object.hasOwn(OP_FIELDS, name)) {
    c.fail(`${path}.op`, `must be one of ${Object.keys(OP_FIELDS).join(', ')}, not ${describe(name)}`)
    return undefined
  }
  const op = name as WorkloadOpName
  const o = c.object(path, raw, OP_FIELDS[op])
  if (o === undefined) return undefined
  const weight = c.int(`${path}.weight`, o.weight, 1, 1000, 1)
  if (weight === undefined) return undefined
  const cluster = (field: string): string | undefined => c.string(`${path}.${field}`, o[field], CLUSTER_REF, CLUSTER_RULE)
  switch (op) {
    case 'createKey': {
      const at = cluster('cluster')
      let as: string | undefined
      if (o.as !== undefined) as = c.string(`${path}.as`, o.as, /^[A-Za-z0-9_]{1,31}$/, 'the name of a crypto user (CU) of the topology')
      let sizesBytes: number[] | undefined = [...AES_SIZES]
      if (o.sizesBytes !== undefined) {
        if (!Array.isArray(o.sizesBytes) || o.sizesBytes.length === 0 || !o.sizesBytes.every(s => AES_SIZES.includes(s as number))) {
          c.fail(`${path}.sizesBytes`, `must list AES key sizes in bytes (16, 24, 32), not ${describe(o.sizesBytes)}`)
          sizesBytes = undefined
        } else sizesBytes = o.sizesBytes as number[]
      }
      const minServers = c.optionalInt(`${path}.minServers`, o.minServers, 1, 28)
      if (at === undefined || sizesBytes === undefined || (o.as !== undefined && as === undefined) || (o.minServers !== undefined && minServers === undefined)) return undefined
      return { op, weight, cluster: at, sizesBytes, ...(as === undefined ? {} : { as }), ...(minServers === undefined ? {} : { minServers }) }
    }
    case 'createUser': {
      const at = cluster('cluster')
      let userType: 'CU' | 'CO' = 'CU'
      if (o.userType !== undefined) {
        if (o.userType === 'CU' || o.userType === 'CO') userType = o.userType
        else { c.fail(`${path}.userType`, `must be "CU" or "CO", not ${describe(o.userType)}`); return undefined }
      }
      return at === undefined ? undefined : { op, weight, cluster: at, userType }
    }
    case 'syncKey': case 'syncUser': {
      const from = cluster('from')
      const to = cluster('to')
      if (from !== undefined && from === to) c.fail(`${path}.to`, 'must differ from "from"')
      return from === undefined || to === undefined || from === to ? undefined : { op, weight, from, to }
    }
    case 'createBackup': case 'shareKey': case 'deleteKey': {
      const at = cluster('cluster')
      return at === undefined ? undefined : { op, weight, cluster: at }
    }
    case 'copyBackup': {
      const at = cluster('cluster')
      const to = c.string(`${path}.to`, o.to, /^[a-z0-9-]+$/, 'a region of the topology')
      return at === undefined || to === undefined ? undefined : { op, weight, cluster: at, to }
    }
  }
}

function checkStream (c: Checker, path: string, raw: unknown, index: number, durationMs: number | undefined): WorkloadStream | undefined {
  const s = c.object(path, raw, ['name', 'clients', 'startMs', 'stopMs', 'pauseMs', 'operationsMax', 'ops'])
  if (s === undefined) return undefined
  let name = `stream-${index}`
  if (s.name !== undefined) name = c.string(`${path}.name`, s.name, /^[A-Za-z0-9_-]{1,32}$/, 'a name of 1 to 32 letters, digits, - or _') ?? name
  const clients = c.int(`${path}.clients`, s.clients, 1, scenarioDefaults.clientsPerStreamMax, 1)
  const startMs = c.int(`${path}.startMs`, s.startMs, 0, MS_MAX, 0)
  const stopMs = c.int(`${path}.stopMs`, s.stopMs, 0, MS_MAX, durationMs ?? 0)
  if (startMs !== undefined && stopMs !== undefined && stopMs < startMs) c.fail(`${path}.stopMs`, `must not be before startMs (${startMs})`)
  if (durationMs !== undefined && stopMs !== undefined && stopMs > durationMs) c.fail(`${path}.stopMs`, `must not be after durationMs (${durationMs})`)
  const pauseMs = c.range(`${path}.pauseMs`, s.pauseMs, scenarioDefaults.pauseMs)
  const operationsMax = c.optionalInt(`${path}.operationsMax`, s.operationsMax, 1, 100_000)
  const ops: WorkloadOp[] = []
  let opsOk = true
  const list = c.array(`${path}.ops`, s.ops, 1)
  if (list === undefined) opsOk = false
  list?.forEach((rawOp, i) => {
    const op = checkOp(c, `${path}.ops[${i}]`, rawOp)
    if (op === undefined) opsOk = false
    else ops.push(op)
  })
  if (clients === undefined || startMs === undefined || stopMs === undefined || pauseMs === undefined || !opsOk || (s.operationsMax !== undefined && operationsMax === undefined)) return undefined
  return { name, clients, startMs, stopMs, pauseMs, ops, ...(operationsMax === undefined ? {} : { operationsMax }) }
}

const GROUP_RULE = 'a fault group: a region, "<region>/<cluster>", "<region>/<cluster>/hsm-N", or another group of the lab\'s links'

/** The longest delay of a scheduled fault (latency, jitter, reset-peer's timeout): a minute, in milliseconds. */
const FAULT_DELAY_MS_MAX = 60_000

/**
 * How a scenario spells faults: `reset-peer`, `jitterMs`, delays up to a minute, a toxicity above
 * 0, every field filled in; groups are checked for their form here and against the lab's links
 * once it runs.
 */
export const SCENARIO_FAULT_DIALECT: FaultDialect = {
  words: { partition: ['partition'], blackhole: ['blackhole'], latency: ['latency'], reset_peer: ['reset-peer'] },
  fieldNames: { jitter: 'jitterMs' },
  fillDefaults: true,
  number: (c, path, value, field) => {
    const checker = c as Checker
    if (field.unit === 'fraction') return checker.fraction(path, value, field.default) ?? null
    return checker.int(path, value, 0, FAULT_DELAY_MS_MAX, field.required ? undefined : field.default) ?? null
  },
  group: (c, path, value) => c.string(path, value, /^\S+$/, GROUP_RULE),
  between: (c, path, value) => {
    if (!Array.isArray(value) || value.length !== 2 || !value.every(g => typeof g === 'string' && g !== '') || value[0] === value[1]) {
      c.fail(path, `must be two different groups, like ["us-east-1", "us-west-2"], not ${describe(value)}`)
      return undefined
    }
    return [value[0] as string, value[1] as string]
  },
  unknownType: (c, path, raw, listed) => {
    c.fail(`${path}.type`, `must be one of ${listed.join(', ')}, not ${describe((raw as Json | null)?.type)}`)
  }
}

const FLAP_FIELDS = ['type', 'group', 'untilMs', 'upMs', 'downMs']

/** A fault of the schedule: one of the vocabulary's in the scenario's dialect, with an optional `durationMs`; or a flap. */
function checkFault (c: Checker, path: string, raw: unknown): Fault | undefined {
  let durationMs: number | undefined
  const duration = (f: Json): boolean => {
    durationMs = c.optionalInt(`${path}.durationMs`, f.durationMs, 1, MS_MAX)
    return f.durationMs === undefined || durationMs !== undefined
  }
  if ((raw as Json | null)?.type !== 'flap') {
    const fault = checkLabFault(c, path, raw, SCENARIO_FAULT_DIALECT, { words: ['flap'], fields: ['durationMs'], check: duration })
    return fault === undefined ? undefined : { ...fault, ...(durationMs === undefined ? {} : { durationMs }) }
  }
  const f = c.object(path, raw, FLAP_FIELDS)
  if (f === undefined || !duration(f)) return undefined
  const group = c.string(`${path}.group`, f.group, /^\S+$/, GROUP_RULE)
  const untilMs = c.int(`${path}.untilMs`, f.untilMs, 0, MS_MAX)
  const upMs = c.range(`${path}.upMs`, f.upMs)
  const downMs = c.range(`${path}.downMs`, f.downMs)
  if (upMs !== undefined && upMs[1] === 0) c.fail(`${path}.upMs`, 'must allow some time up (max above 0)')
  if (downMs !== undefined && downMs[1] === 0) c.fail(`${path}.downMs`, 'must allow some time down (max above 0)')
  if (group === undefined || untilMs === undefined || upMs === undefined || downMs === undefined || upMs[1] === 0 || downMs[1] === 0) return undefined
  return { type: 'flap', group, untilMs, upMs, downMs }
}

const KILL_TARGET = /^[a-z0-9-]+\/(control-plane|[A-Za-z0-9][A-Za-z0-9_-]{0,31}\/hsm-\d+)$/

function checkEntry (c: Checker, path: string, raw: unknown): ScheduleEntry | undefined {
  const e = c.object(path, raw, ['atMs', 'jitterMs', 'fault', 'heal', 'kill', 'restartAfterMs'])
  if (e === undefined) return undefined
  const atMs = c.int(`${path}.atMs`, e.atMs, 0, MS_MAX)
  const jitterMs = c.int(`${path}.jitterMs`, e.jitterMs, 0, MS_MAX, 0)
  const actions = ['fault', 'heal', 'kill'].filter(k => e[k] !== undefined)
  if (actions.length !== 1) {
    c.fail(path, `needs exactly one of "fault", "heal" and "kill"${actions.length > 1 ? ` (it has ${actions.join(', ')})` : ''}`)
    return undefined
  }
  if (e.restartAfterMs !== undefined && e.kill === undefined) c.fail(`${path}.restartAfterMs`, 'goes with "kill" only')
  if (atMs === undefined || jitterMs === undefined) return undefined
  if (e.fault !== undefined) {
    const fault = checkFault(c, `${path}.fault`, e.fault)
    return fault === undefined ? undefined : { atMs, jitterMs, action: 'fault', fault }
  }
  if (e.heal !== undefined) {
    const group = c.string(`${path}.heal`, e.heal, /^\S+$/, `"all" or ${GROUP_RULE}`)
    return group === undefined ? undefined : { atMs, jitterMs, action: 'heal', group }
  }
  const target = c.string(`${path}.kill`, e.kill, KILL_TARGET, 'an HSM as "<region>/<cluster>/hsm-N" (N: its server id in the cluster) or a control plane as "<region>/control-plane"')
  const restartAfterMs = c.optionalInt(`${path}.restartAfterMs`, e.restartAfterMs, 0, MS_MAX)
  if (target === undefined || (e.restartAfterMs !== undefined && restartAfterMs === undefined)) return undefined
  return { atMs, jitterMs, action: 'kill', target, ...(restartAfterMs === undefined ? {} : { restartAfterMs }) }
}

/**
 * Checks a parsed scenario file and returns it in normal form (defaults filled in); throws
 * `LAB_ERR_SCENARIO` listing every problem, each as `<source>: <path>: <what is wrong>`. Names of
 * clusters, regions and HSMs are checked later, against the topology (`resolveScenario`).
 */
export function parseScenario (json: unknown, source = 'scenario'): Scenario {
  const c = new Checker()
  const top = c.object('scenario', json, ['name', 'description', 'topology', 'seed', 'durationMs', 'settleTimeoutMs', 'requestTimeoutMs', 'workload', 'schedule'])
  let scenario: Scenario | undefined
  if (top !== undefined) {
    // eslint-disable-next-line no-control-regex -- control characters are what this pattern refuses
    const name = c.string('name', top.name, /^[^\x00-\x1f\x7f]{1,100}$/, 'a name of 1 to 100 characters on one line')
    if (top.description !== undefined && typeof top.description !== 'string') c.fail('description', `must be a string, not ${describe(top.description)}`)
    if (top.topology !== undefined && typeof top.topology !== 'string' && (typeof top.topology !== 'object' || top.topology === null || Array.isArray(top.topology))) {
      c.fail('topology', `must be a path to a topology file (relative to the scenario) or a topology object, not ${describe(top.topology)}`)
    }
    if (top.seed !== undefined && (typeof top.seed !== 'number' || !Number.isSafeInteger(top.seed))) c.fail('seed', `must be a whole number, not ${describe(top.seed)}`)
    const durationMs = c.int('durationMs', top.durationMs, 1, MS_MAX)
    const settleTimeoutMs = c.int('settleTimeoutMs', top.settleTimeoutMs, 1_000, MS_MAX, scenarioDefaults.settleTimeoutMs)
    const requestTimeoutMs = c.int('requestTimeoutMs', top.requestTimeoutMs, 100, 600_000, scenarioDefaults.requestTimeoutMs)
    const workload: WorkloadStream[] = []
    const streams = c.array('workload', top.workload, 1) ?? []
    streams.forEach((raw, i) => {
      const stream = checkStream(c, `workload[${i}]`, raw, i, durationMs)
      if (stream !== undefined) workload.push(stream)
    })
    const names = new Set<string>()
    for (const s of workload) {
      if (names.has(s.name)) c.fail('workload', `stream name "${s.name}" is used twice`)
      names.add(s.name)
    }
    const schedule: ScheduleEntry[] = []
    const entries = top.schedule === undefined ? [] : (c.array('schedule', top.schedule, 0) ?? [])
    entries.forEach((raw, i) => {
      const entry = checkEntry(c, `schedule[${i}]`, raw)
      const atMs = (raw as Json | null)?.atMs
      if (durationMs !== undefined && typeof atMs === 'number' && atMs > durationMs) c.fail(`schedule[${i}].atMs`, `must not be after durationMs (${durationMs}): every fault is healed when the workload ends`)
      if (entry !== undefined) schedule.push(entry)
    })
    if (name !== undefined && durationMs !== undefined && settleTimeoutMs !== undefined && requestTimeoutMs !== undefined) {
      scenario = { name, durationMs, settleTimeoutMs, requestTimeoutMs, workload, schedule }
      if (typeof top.description === 'string') scenario.description = top.description
      if (typeof top.topology === 'string' || (typeof top.topology === 'object' && top.topology !== null && !Array.isArray(top.topology))) scenario.topology = top.topology as string | Record<string, unknown>
      if (typeof top.seed === 'number' && Number.isSafeInteger(top.seed)) scenario.seed = top.seed
    }
  }
  if (c.problems.length > 0 || scenario === undefined) {
    throw new LabError(LAB_ERR_SCENARIO, `${source} is not a valid scenario:\n${c.problems.map(p => `  ${p}`).join('\n')}`)
  }
  return scenario
}

/** Reads and checks a scenario file (`LAB_ERR_SCENARIO` when it cannot be read or is wrong). */
export async function readScenario (file: string, name: string = file): Promise<Scenario> {
  return parseScenario(await readLabJsonFile(file, name, LAB_ERR_SCENARIO, 'scenario'), name)
}

/** A cluster of the topology, with the credentials the runner uses on it. */
export interface ScenarioCluster {
  /** `<region>/<cluster>`. */
  ref: string
  region: string
  name: string
  hsms: number
  /** The crypto officer the runner logs in as (the activated PRECO, `admin`). */
  officer: { name: string, password: string }
  /** The crypto users of the topology (a clone has its source's). */
  cryptoUsers: Array<{ name: string, password: string }>
  /** `<region>/<cluster>` of its source, for a clone. */
  cloneOf?: string
}

/** A scenario with its topology loaded and every name it uses checked. */
export interface ResolvedScenario {
  scenario: Scenario
  /** The topology file the lab is started with. */
  topologyFile: string | undefined
  topology: Topology
  clusters: Map<string, ScenarioCluster>
}

/**
 * Loads the scenario's topology (a path relative to `scenarioFile`, an inline object written to
 * `inlineTopologyFile`, or the default lab) and checks every cluster, region and HSM the workload
 * and the schedule name; throws `LAB_ERR_SCENARIO` listing every problem.
 */
export async function resolveScenario (scenario: Scenario, scenarioFile: string, writeInline: (topology: Topology) => Promise<string>): Promise<ResolvedScenario> {
  let topology: Topology
  let topologyFile: string | undefined
  try {
    if (typeof scenario.topology === 'string') {
      topologyFile = resolve(dirname(scenarioFile), scenario.topology)
      topology = await readTopology(topologyFile, scenario.topology)
    } else if (scenario.topology !== undefined) {
      topology = parseTopology(scenario.topology, `${scenarioFile}: topology`)
      topologyFile = await writeInline(topology)
    } else {
      topologyFile = DEFAULT_TOPOLOGY_PATH
      topology = await readTopology(DEFAULT_TOPOLOGY_PATH)
    }
  } catch (err) {
    throw new LabError(LAB_ERR_SCENARIO, `${scenarioFile}: its topology is refused: ${(err as Error).message}`, { cause: err })
  }
  const clusters = clustersOfTopology(topology)
  const problems: string[] = []
  const regions = new Set(topology.regions.map(r => r.name))
  const known = [...clusters.keys()].join(', ')
  const checkCluster = (path: string, ref: string): ScenarioCluster | undefined => {
    const cluster = clusters.get(ref)
    if (cluster === undefined) problems.push(`${path}: names cluster ${ref}, which the topology does not have (it has ${known})`)
    else if (cluster.officer.password === '') problems.push(`${path}: cluster ${ref} is not activated by the lab, so the runner cannot log in to it`)
    return cluster
  }
  scenario.workload.forEach((stream, s) => {
    stream.ops.forEach((op, i) => {
      const path = `workload[${s}].ops[${i}]`
      switch (op.op) {
        case 'createKey': {
          const cluster = checkCluster(`${path}.cluster`, op.cluster)
          if (cluster !== undefined && cluster.cryptoUsers.length === 0) problems.push(`${path}: cluster ${op.cluster} has no crypto user (CU) in the topology to create keys as`)
          if (cluster !== undefined && op.as !== undefined && !cluster.cryptoUsers.some(u => u.name.toLowerCase() === op.as?.toLowerCase())) {
            problems.push(`${path}.as: ${op.as} is not a crypto user (CU) of ${op.cluster} in the topology`)
          }
          if (cluster !== undefined && op.minServers !== undefined && op.minServers > cluster.hsms) problems.push(`${path}.minServers: ${op.cluster} has only ${cluster.hsms} HSMs`)
          break
        }
        case 'createUser': case 'createBackup':
          checkCluster(`${path}.cluster`, op.cluster)
          break
        case 'shareKey': case 'deleteKey': {
          const cluster = checkCluster(`${path}.cluster`, op.cluster)
          if (op.op === 'shareKey' && cluster !== undefined && cluster.cryptoUsers.length < 2) problems.push(`${path}: cluster ${op.cluster} needs two crypto users (CU) in the topology: a key is shared by its owner with another`)
          break
        }
        case 'copyBackup':
          checkCluster(`${path}.cluster`, op.cluster)
          if (!regions.has(op.to)) problems.push(`${path}.to: names region ${op.to}, which the topology does not have`)
          else if (op.to === op.cluster.split('/')[0]) problems.push(`${path}.to: a backup is copied to another region, not its own`)
          break
        case 'syncKey': case 'syncUser': {
          const from = checkCluster(`${path}.from`, op.from)
          const to = checkCluster(`${path}.to`, op.to)
          if (from !== undefined && to !== undefined && lineageRoot(clusters, from) !== lineageRoot(clusters, to)) {
            problems.push(`${path}: ${op.from} and ${op.to} are not of one lineage (one must be a clone of the other, or both of one source): masked objects do not pass between them`)
          }
          break
        }
      }
    })
  })
  scenario.schedule.forEach((entry, i) => {
    if (entry.action !== 'kill') return
    const parts = entry.target.split('/')
    if (parts[1] === 'control-plane') {
      if (!regions.has(parts[0] ?? '')) problems.push(`schedule[${i}].kill: names region ${parts[0] ?? ''}, which the topology does not have`)
      return
    }
    const ref = `${parts[0] ?? ''}/${parts[1] ?? ''}`
    const cluster = clusters.get(ref)
    const n = Number((parts[2] ?? '').slice('hsm-'.length))
    if (cluster === undefined) problems.push(`schedule[${i}].kill: names cluster ${ref}, which the topology does not have (it has ${known})`)
    else if (n >= cluster.hsms) problems.push(`schedule[${i}].kill: ${ref} has ${cluster.hsms} HSMs, hsm-0 to hsm-${cluster.hsms - 1}`)
  })
  if (problems.length > 0) {
    throw new LabError(LAB_ERR_SCENARIO, `${scenarioFile} does not fit its topology:\n${problems.map(p => `  ${p}`).join('\n')}`)
  }
  return { scenario, topologyFile, topology, clusters }
}

function lineageRoot (clusters: Map<string, ScenarioCluster>, cluster: ScenarioCluster): string {
  let at = cluster
  const seen = new Set<string>()
  while (at.cloneOf !== undefined && !seen.has(at.ref)) {
    seen.add(at.ref)
    const next = clusters.get(at.cloneOf)
    if (next === undefined) break
    at = next
  }
  return at.ref
}

/** Every cluster of a topology by `<region>/<cluster>`, with the credentials a clone inherits from its source. */
export function clustersOfTopology (topology: Topology): Map<string, ScenarioCluster> {
  const byRef = new Map<string, TopologyCluster>()
  for (const region of topology.regions) for (const cluster of region.clusters) byRef.set(`${region.name}/${cluster.name}`, cluster)
  const rootOf = (cluster: TopologyCluster): TopologyCluster => {
    let at = cluster
    const seen = new Set<TopologyCluster>()
    while (at.cloneOf !== undefined && !seen.has(at)) {
      seen.add(at)
      const next = byRef.get(`${at.cloneOf.region}/${at.cloneOf.cluster}`)
      if (next === undefined) break
      at = next
    }
    return at
  }
  const out = new Map<string, ScenarioCluster>()
  for (const region of topology.regions) {
    for (const cluster of region.clusters) {
      const root = rootOf(cluster)
      const ref = `${region.name}/${cluster.name}`
      out.set(ref, {
        ref,
        region: region.name,
        name: cluster.name,
        hsms: cluster.hsms,
        officer: { name: 'admin', password: root.activate?.admin ?? '' },
        cryptoUsers: root.users.filter(u => u.type === 'CU').map(u => ({ name: u.name, password: u.password })),
        ...(cluster.cloneOf === undefined ? {} : { cloneOf: `${cluster.cloneOf.region}/${cluster.cloneOf.cluster}` })
      })
    }
  }
  return out
}
