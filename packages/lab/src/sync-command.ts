/**
 * `hsmlab sync ...`: the command line of sync.ts (docs/sync.md), the seed's procedures on the
 * lab's clusters.
 *
 *   hsmlab sync create           REGION/CLUSTER --replica REGION/CLUSTER --type KEYS|KEYS_AND_USERS [--keys ...] [--users ...]
 *   hsmlab sync add-replica      REGION/CLUSTER --replica REGION/CLUSTER --type KEYS|KEYS_AND_USERS
 *   hsmlab sync add-resources    REGION/CLUSTER [--keys all|owner:NAME|H,H..] [--users NAME,..]
 *   hsmlab sync remove-resources REGION/CLUSTER ...        (refused: a scope only grows)
 *   hsmlab sync remove-replica   REGION/CLUSTER --replica REGION/CLUSTER --yes
 *   hsmlab sync status           REGION/CLUSTER [--replica REGION/CLUSTER] [--status S] [--json]
 *
 * `syncMain(argv, io)` returns the exit code: 0 done, 1 failed (`[LAB_ERR_...]` and why), 2 the
 * command line cannot be understood or names a cluster the lab does not have. `--json` output is
 * a contract for scripts (sync-scope.ts).
 */
import { parseArgs } from 'node:util'
import { labDefaults } from './defaults.js'
import { LAB_ERR_USAGE, LabError } from './errors.js'
import { KEYS_SYNTAX, SYNC_REPLICAS_MAX, SYNC_STATUSES, describeScope, parseClusterRef, parseSyncKeys, parseSyncStatus, parseSyncType, parseSyncUsers } from './sync-scope.js'
import type { SyncResourceJson, SyncScope, SyncStatus, SyncStatusJson, SyncType } from './sync-scope.js'
import type { SyncTaskJson } from './sync.js'

/** Where `syncMain` writes, and the directory it resolves `--dir` against. */
export interface SyncCommandIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** @default process.cwd() */
  cwd?: string
}

/** `hsmlab sync --help`. */
export const SYNC_HELP = `usage: hsmlab sync <create|add-replica|add-resources|remove-resources|remove-replica|status> REGION/CLUSTER ... [--dir DIR]

Synchronisation tasks (docs/sync.md): the primary cluster REGION/CLUSTER kept in step, resource by
resource, with up to ${SYNC_REPLICAS_MAX} replica clusters in other regions, made from a backup of it.

  create           REGION/CLUSTER --replica REGION/CLUSTER --type TYPE [--keys KEYS] [--users NAMES]
                   make the task; repeat --replica (and --type, or give one --type for all)
  add-replica      REGION/CLUSTER --replica REGION/CLUSTER --type TYPE
                   associate one more replica
  add-resources    REGION/CLUSTER [--keys KEYS] [--users NAMES]
                   add to the scope (a scope only grows)
  remove-resources REGION/CLUSTER ...
                   refused: removing previously selected resources is not supported
  remove-replica   REGION/CLUSTER --replica REGION/CLUSTER --yes
                   disassociate a replica, irreversibly (it keeps running and keeps what it has,
                   read-only, and can never be associated with this primary again)
  status           REGION/CLUSTER [--replica REGION/CLUSTER] [--status SYNCHRONIZING|SYNCHRONIZED|FAILED] [--json]
                   the task, and every synchronised resource on every replica with its status and
                   failure cause

  TYPE    KEYS (token keys) or KEYS_AND_USERS (also the users in scope)
  KEYS    ${KEYS_SYNTAX}
  NAMES   user names, like alice,bob
  -d, --dir DIR   lab directory (default: ${labDefaults.dir})
      --json      print JSON (the shape docs/sync.md gives; a contract for scripts)
`

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

const SUBCOMMANDS = ['create', 'add-replica', 'add-resources', 'remove-resources', 'remove-replica', 'status'] as const
type Subcommand = typeof SUBCOMMANDS[number]

/** The flags each subcommand takes (beside --dir and --help). */
const FLAGS: Readonly<Record<Exclude<Subcommand, 'remove-resources'>, readonly string[]>> = {
  create: ['replica', 'type', 'keys', 'users', 'json'],
  'add-replica': ['replica', 'type', 'json'],
  'add-resources': ['keys', 'users', 'json'],
  'remove-replica': ['replica', 'yes', 'json'],
  status: ['replica', 'status', 'json']
}

function usage (message: string): LabError {
  return new LabError(LAB_ERR_USAGE, `${message}\n\n${SYNC_HELP}`)
}

/** A value of the command line through one of sync-scope.ts's parsers; what it refuses is a usage error naming the flag. */
function flag<T> (name: string, parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    throw usage(`${name}: ${(err as Error).message}`)
  }
}

/** The parsed command line of one sync command: what sync.ts's functions take. */
export type SyncCommand =
  | { sub: 'create', primary: string, replicas: Array<{ cluster: string, type: SyncType }>, scope: SyncScope, json: boolean }
  | { sub: 'add-replica', primary: string, replica: string, type: SyncType, json: boolean }
  | { sub: 'add-resources', primary: string, scope: SyncScope, json: boolean }
  | { sub: 'remove-resources' }
  | { sub: 'remove-replica', primary: string, replica: string, confirm: boolean, json: boolean }
  | { sub: 'status', primary: string, replica?: string, status?: SyncStatus, json: boolean }
  | { sub: 'help' }

/**
 * Parses `hsmlab sync ARGS` (without `--dir`, returned beside); throws LAB_ERR_USAGE with the
 * help for what it cannot understand. Pure: it looks at no lab.
 */
export function parseSyncCommand (argv: string[]): { command: SyncCommand, dir?: string } {
  const [sub, ...rest] = argv
  if (sub === undefined) throw usage('name a sync command')
  if (sub === 'help' || sub === '--help' || sub === '-h') return { command: { sub: 'help' } }
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw usage(`unknown sync command '${sub}'`)
  // Refused whatever follows: the seed's rule, not a command line to correct.
  if (sub === 'remove-resources') return { command: { sub: 'remove-resources' } }
  let parsed
  try {
    parsed = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: true,
      options: {
        dir: { type: 'string', short: 'd' },
        replica: { type: 'string', multiple: true },
        type: { type: 'string', multiple: true },
        keys: { type: 'string' },
        users: { type: 'string' },
        yes: { type: 'boolean', short: 'y' },
        status: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    throw usage((err as Error).message)
  }
  const { values: v, positionals } = parsed
  const dir = v.dir
  const out = (command: SyncCommand): { command: SyncCommand, dir?: string } => dir === undefined ? { command } : { command, dir }
  if (v.help === true) return out({ sub: 'help' })
  const name = sub as Exclude<Subcommand, 'remove-resources'>
  const allowed = FLAGS[name]
  for (const f of ['replica', 'type', 'keys', 'users', 'yes', 'status', 'json'] as const) {
    if (v[f] !== undefined && !allowed.includes(f)) throw usage(`--${f} does not apply to 'hsmlab sync ${sub}'`)
  }
  if (positionals.length !== 1) throw usage(`'hsmlab sync ${sub}' takes one primary cluster, REGION/CLUSTER (like us-east-1/primary)`)
  const primary = positionals[0] as string
  flag('the primary', () => parseClusterRef(primary))
  const replicas = v.replica ?? []
  for (const r of replicas) flag('--replica', () => parseClusterRef(r))
  const types = (v.type ?? []).map(t => flag('--type', () => parseSyncType(t)))
  const json = v.json === true
  const scope = (): SyncScope => {
    const s: SyncScope = {}
    if (v.keys !== undefined) s.keys = flag('--keys', () => parseSyncKeys(v.keys))
    if (v.users !== undefined) s.users = flag('--users', () => parseSyncUsers(v.users))
    return s
  }
  const one = (what: string): string => {
    if (replicas.length !== 1) throw usage(`'hsmlab sync ${sub}' takes one --replica REGION/CLUSTER (${what})`)
    return replicas[0] as string
  }
  switch (name) {
    case 'create': {
      if (replicas.length === 0) throw usage("'hsmlab sync create' needs --replica REGION/CLUSTER (and its --type)")
      if (replicas.length > SYNC_REPLICAS_MAX) throw usage(`a synchronisation task has at most ${SYNC_REPLICAS_MAX} replicas, not ${replicas.length}`)
      if (new Set(replicas).size !== replicas.length) throw usage('--replica names the same cluster twice')
      if (types.length === 0) throw usage('--type KEYS|KEYS_AND_USERS is required: the synchronisation type of the replicas')
      if (types.length !== 1 && types.length !== replicas.length) throw usage(`give one --type for every replica, or one for all (${replicas.length} replicas, ${types.length} types)`)
      return out({ sub: 'create', primary, replicas: replicas.map((cluster, i) => ({ cluster, type: (types[i] ?? types[0]) as SyncType })), scope: scope(), json })
    }
    case 'add-replica': {
      const replica = one('the cluster to associate')
      if (types.length !== 1) throw usage('--type KEYS|KEYS_AND_USERS is required, once: the synchronisation type of the replica')
      return out({ sub: 'add-replica', primary, replica, type: types[0] as SyncType, json })
    }
    case 'add-resources': {
      const s = scope()
      if (s.keys === undefined && s.users === undefined) throw usage("'hsmlab sync add-resources' needs --keys or --users: what to add to the scope")
      return out({ sub: 'add-resources', primary, scope: s, json })
    }
    case 'remove-replica':
      return out({ sub: 'remove-replica', primary, replica: one('the replica to disassociate'), confirm: v.yes === true, json })
    case 'status': {
      if (replicas.length > 1) throw usage("'hsmlab sync status' takes at most one --replica")
      const status = v.status === undefined ? undefined : flag('--status', () => parseSyncStatus(v.status as string))
      return out({ sub: 'status', primary, ...(replicas[0] === undefined ? {} : { replica: replicas[0] }), ...(status === undefined ? {} : { status }), json })
    }
  }
}

function table (rows: string[][]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map(row => row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd())
}

function nameOf (c: { region: string, cluster: string | null, clusterId: string }): string {
  return c.cluster === null ? `${c.region}/${c.clusterId}` : `${c.region}/${c.cluster}`
}

/** A task as a person reads it: the primary, the scope, each replica. */
export function formatSyncTask (task: SyncTaskJson, resources?: readonly SyncResourceJson[]): string {
  const lines = [`primary ${nameOf(task.primary)} (${task.primary.clusterId})`, `scope   ${describeScope(task.scope)}`, '']
  const counted = (clusterId: string, status: SyncStatus): string => resources === undefined ? '' : String(resources.filter(r => r.replicaClusterId === clusterId && r.status === status).length)
  lines.push(...table([
    ['REPLICA', 'CLUSTER ID', 'TYPE', 'STATE', ...(resources === undefined ? [] : SYNC_STATUSES)],
    ...task.replicas.map(r => [nameOf(r), r.clusterId, r.type, r.state, ...(resources === undefined ? [] : SYNC_STATUSES.map(s => counted(r.clusterId, s)))])
  ]))
  return lines.join('\n') + '\n'
}

/** What `hsmlab sync status` prints for a person: the task, then one line per record. */
export function formatSyncStatus (status: SyncStatusJson): string {
  const replicaName = new Map(status.replicas.map(r => [r.clusterId, nameOf(r)]))
  const lines = [formatSyncTask(status, status.resources)]
  if (status.resources.length === 0) lines.push('no synchronised resources (yet)\n')
  else {
    lines.push(table([
      ['RESOURCE', 'TYPE', 'REPLICA', 'STATUS', 'ATTEMPTS', 'LAST ATTEMPT', 'LAST SUCCESS', 'FAILURE CAUSE'],
      ...status.resources.map(r => [
        r.resourceId, r.resourceType, replicaName.get(r.replicaClusterId) ?? r.replicaClusterId, r.status, String(r.attempts),
        r.lastAttemptAt ?? '-', r.lastSuccessAt ?? '-', r.failureCause === null ? '-' : `${r.failureCause.code}: ${r.failureCause.message}`
      ])
    ]).join('\n') + '\n')
  }
  return lines.join('\n')
}

/** Runs `hsmlab sync ARGS`; resolves with the exit code. */
export async function syncMain (argv: string[], io: SyncCommandIo): Promise<number> {
  const cwd = io.cwd ?? process.cwd()
  const sub = argv[0]
  try {
    const { command, dir } = parseSyncCommand(argv)
    const location = { cwd, ...(dir === undefined ? {} : { dir }) }
    // Loaded only here: parsing and help need no control-plane client.
    const sync = await import('./sync.js')
    const print = (task: SyncTaskJson, json: boolean): void => { io.stdout(json ? JSON.stringify(task, null, 2) + '\n' : formatSyncTask(task)) }
    switch (command.sub) {
      case 'help': io.stdout(SYNC_HELP); return EXIT_OK
      case 'remove-resources': sync.labSyncRemoveResources(); break
      case 'create':
        print(await sync.labSyncCreate({ ...location, primary: command.primary, replicas: command.replicas, scope: command.scope }), command.json)
        break
      case 'add-replica':
        print(await sync.labSyncAddReplica({ ...location, primary: command.primary, replica: command.replica, type: command.type }), command.json)
        break
      case 'add-resources':
        print(await sync.labSyncAddResources({ ...location, primary: command.primary, scope: command.scope }), command.json)
        break
      case 'remove-replica':
        print(await sync.labSyncRemoveReplica({ ...location, primary: command.primary, replica: command.replica, confirm: command.confirm }), command.json)
        break
      case 'status': {
        const status = await sync.labSyncStatus({
          ...location,
          primary: command.primary,
          ...(command.replica === undefined ? {} : { replica: command.replica }),
          ...(command.status === undefined ? {} : { status: command.status })
        })
        // One write of the whole text: 10,000 records are one string, not 10,000 writes.
        io.stdout(command.json ? JSON.stringify(status, null, 2) + '\n' : formatSyncStatus(status))
        break
      }
    }
    return EXIT_OK
  } catch (err) {
    if (err instanceof LabError && err.code === LAB_ERR_USAGE) {
      io.stderr(`hsmlab sync ${sub ?? ''}: ${err.message}`.trimEnd() + '\n')
      return EXIT_USAGE
    }
    const code = (err as { code?: unknown }).code
    io.stderr(`hsmlab sync ${sub ?? ''}: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
}
