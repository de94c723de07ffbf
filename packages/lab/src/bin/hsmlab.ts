/**
 * `hsmlab`: the lab's front door (DESIGN.md "The lab's contract").
 *
 *   hsmlab up     [--topology FILE] [--dir DIR] [--log-level LEVEL] [--control-plane REGION=URL ...] [--fault-proxy URL] [--seed N] [--no-faults] [--no-console] [--no-clients] [--json]
 *   hsmlab status [--dir DIR] [--json]
 *   hsmlab down   [--dir DIR] [--purge]
 *   hsmlab backup [--dir DIR] [--json] REGION/CLUSTER
 *   hsmlab fault  partition|blackhole|latency|reset-peer|heal|list ... [--dir DIR]   (fault-command.ts)
 *   hsmlab sync   create|add-replica|add-resources|remove-resources|remove-replica|status ... [--dir DIR]   (sync-command.ts)
 *   hsmlab exercise ...   (the bin of @hsmlab/exercises, which builds on the lab)
 *
 * `main(argv, io)` parses the arguments, calls labUp / labStatus / labDown / labBackup and prints; it returns
 * the exit code (0 done, 1 failed, 2 bad command line), so that it runs in process in tests and
 * as a process through `bin/hsmlab.js` or `node dist/bin/hsmlab.js`.
 */
import { spawn } from 'node:child_process'
import { constants as osConstants } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import { isEntryPoint } from '@hsmlab/process/files'
import { labDefaults } from '../defaults.js'
import { LAB_ERR_USAGE, LabError } from '../errors.js'
// The operations are loaded by the command that runs them (below): `hsmlab sync status` and the
// other small commands need not load every package that `up` starts processes from.

/** Where `main` writes, and the directory it resolves `--dir` and `--topology` against. */
export interface MainIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** @default process.cwd() */
  cwd?: string
  /** What `hsmlab cmu` and `hsmlab kmu` read their commands from. @default process.stdin */
  stdin?: NodeJS.ReadableStream
}

function writable (write: (text: string) => void): Writable {
  return new Writable({
    write (chunk: Buffer | string, _encoding, callback) {
      write(chunk.toString())
      callback()
    }
  })
}

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

const USAGE = `usage: hsmlab <command> [options]

commands:
  up      [--topology FILE] [--dir DIR]   start the lab in the background (or what of it is not
                                          running); return when every HSM is ACTIVE
  status  [--dir DIR] [--json]            what runs, where, in which state
  down    [--dir DIR] [--purge]           stop every process of the lab; keep its data unless --purge
  backup  [--dir DIR] REGION/CLUSTER      make a backup of a cluster now; print its id
  fault   partition|blackhole GROUP, latency FROM TO --ms N, reset-peer GROUP, heal [GROUP], list
                                          network faults on the lab's links (its fault proxy)

  sync    create|add-replica|add-resources|remove-resources|remove-replica|status REGION/CLUSTER ...
                                          synchronisation tasks: a primary cluster kept in step with
                                          replica clusters in other regions (docs/sync.md)

  scenario run FILE [--seed N] [--dir DIR]  run a fault scenario against a lab of its own; PASS or
                                          the invariant that broke (docs/scenarios.md)
  exercise list|start|show|check|hint|solution|reset
                                          training exercises (docs/exercises.md; 'hsmlab exercise help')

  cmu     CONFIG                          the CMU shell (cloudhsm_mgmt_util CONFIG)
  kmu     [--config CFG] [singlecmd ...]  the KMU shell (key_mgmt_util); without --config it uses
                                          the first cluster of the lab in ./${labDefaults.dir}

DIR defaults to ${labDefaults.dir} in the working directory.
'hsmlab <command> --help' tells more about one command.
`

const HELP: Readonly<Record<'up' | 'status' | 'down' | 'backup', string>> = {
  up: `usage: hsmlab up [--topology FILE] [--dir DIR] [--log-level LEVEL] [--control-plane REGION=URL ...] [--fault-proxy URL] [--seed N] [--no-faults] [--no-console] [--no-clients] [--json]

Starts the lab described by FILE in DIR and returns once every region's control plane answers,
every cluster is built through its control plane's cloudhsmv2 API (created, initialized,
activated; a clone made from a copy of a backup of its source) and every HSM is ACTIVE.
Without --topology: the lab already in DIR, or the default lab (us-east-1/primary, 2 HSMs,
CO admin, CU alice; us-west-2/dr, its clone, 2 HSMs; eu-west-1/replica, its clone, 1 HSM, kept in
step with it by a synchronisation task: every key and the user alice).
Synchronisation tasks a topology declares are built once every cluster is ACTIVE.
Run again, it starts only what is not running (a control plane on its port, with its data; a
control plane restarts its own HSMs) and waits until every HSM is ACTIVE.

  -t, --topology FILE   topology file (docs/lab.md); refused if DIR holds a lab of another topology
  -d, --dir DIR         lab directory (default: ${labDefaults.dir})
      --log-level LEVEL log level of the control planes and HSMs, whose logs go to DIR/<region>/control-plane/
                        (silent, fatal, error, warn, info, debug, trace; default: ${labDefaults.logLevel})
      --seed N          seed of the fault proxy's random draws (jitter, toxicity) when this 'up' starts it
                        (default: the lab's recorded seed, else a random one, printed and recorded)
      --no-faults       every link direct, no fault proxy (recorded; --faults brings the fault proxy back)
      --no-console      no web console (recorded; --console brings it back)
      --no-clients      no client daemon per cluster, so no PKCS#11 access (recorded; --clients brings them back)
      --copy-retry-window-seconds N
                        how long a copy of a backup to another region keeps trying to fetch it (lab
                        seconds; the control planes' default is 60); recorded, applied when they start
      --control-plane REGION=URL
                        the control plane of REGION runs elsewhere, at URL (like the Docker lab's
                        http://cp-us-east-1:8080): use it instead of starting one; repeat per region.
                        The lab remembers it, and never stops it. It must have been started with a
                        regions file naming every region and the manufacturer key file the others have
      --fault-proxy URL the fault proxy runs elsewhere, at URL (like the Docker lab's http://fault-proxy:8474):
                        the lab makes every link there, listening on 0.0.0.0 and reached at URL's host
                        name (a link it already has keeps its port), and routes the control planes
                        through it. The lab remembers it, and never stops it
      --json            print the status as 'hsmlab status --json' does, instead of the summary
`,
  status: `usage: hsmlab status [--dir DIR] [--json]

Tells what runs in the lab in DIR: each region's control plane (endpoint, pid), each cluster's
id and state as its control plane describes it, and for each HSM its pid, state and endpoint.
When a control plane does not answer, its HSMs are probed directly (ACTIVE: answers; DEGRADED:
runs but does not answer; DOWN: does not run). Exit code 1 when DIR holds no lab.

  -d, --dir DIR   lab directory (default: ${labDefaults.dir})
      --json      the JSON report of docs/lab.md (the shape scripts rely on)
`,
  down: `usage: hsmlab down [--dir DIR] [--purge]

Stops every control plane of the lab in DIR (SIGTERM: it stops its HSMs; SIGKILL after
${labDefaults.controlPlaneStopTimeoutMs / 1000} s), then kills any process of the lab still there. The data stays, so
'hsmlab up' brings the lab back with its clusters, users and keys. Safe to run twice.

  -d, --dir DIR   lab directory (default: ${labDefaults.dir})
      --purge     also delete DIR: every HSM's data, the backups, the keys and the logs
`,
  backup: `usage: hsmlab backup [--dir DIR] [--json] REGION/CLUSTER

Makes a backup of the cluster REGION/CLUSTER of the lab in DIR now, with its control plane's
extension operation HsmlabCreateBackup (AWS makes backups only on its own schedule: at
activation, when HSMs are added or removed, daily), waits until it is READY and prints its id.

  -d, --dir DIR   lab directory (default: ${labDefaults.dir})
      --json      print the backup as DescribeBackups shows it
`
}

const DIR_OPTION = { type: 'string', short: 'd' } as const
const HELP_OPTION = { type: 'boolean', short: 'h' } as const

/** Runs `parseArgs`; what it refuses becomes LAB_ERR_USAGE with the command's help. */
function parse<T> (command: keyof typeof HELP, run: () => T): T {
  try {
    return run()
  } catch (err) {
    throw new LabError(LAB_ERR_USAGE, `${(err as Error).message}\n\n${HELP[command]}`)
  }
}

/** `--control-plane REGION=URL` flags as a map; undefined when none is given. */
function controlPlanesOf (flags: string[]): Record<string, string> | undefined {
  if (flags.length === 0) return undefined
  // A Map, then an object of own entries: a region typed as `constructor` or `__proto__` must be
  // refused as a region the topology does not have, not taken for an inherited member.
  const map = new Map<string, string>()
  for (const flag of flags) {
    const at = flag.indexOf('=')
    const region = flag.slice(0, at)
    if (at <= 0 || at === flag.length - 1) throw new LabError(LAB_ERR_USAGE, `--control-plane must be REGION=URL (like us-east-1=http://cp-us-east-1:8080), not '${flag}'\n\n${HELP.up ?? ''}`)
    if (map.has(region)) throw new LabError(LAB_ERR_USAGE, `--control-plane names region ${region} twice`)
    map.set(region, flag.slice(at + 1))
  }
  return Object.fromEntries(map)
}

/**
 * `hsmlab SUB ARGS` as `hsmlab-SUB ARGS`, the bin of another package (git's way with
 * git-<sub>): the exercises build on the lab, so the lab cannot import them. Found by module
 * resolution, run with this process's stdio; resolves with its exit code.
 */
async function forward (sub: 'exercise', args: string[], cwd: string): Promise<number> {
  let bin: string
  try {
    bin = fileURLToPath(new URL(`../bin/hsmlab-${sub}.js`, import.meta.resolve(`@hsmlab/${sub}s`)))
  } catch (err) {
    throw new LabError(LAB_ERR_USAGE, `'hsmlab ${sub}' needs the package @hsmlab/${sub}s, which is not installed (${(err as Error).message})`)
  }
  const child = spawn(process.execPath, [bin, ...args], { cwd, stdio: 'inherit' })
  return await new Promise<number>((resolveExit, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => { resolveExit(code ?? (signal === null ? EXIT_FAILURE : 128 + (osConstants.signals[signal] ?? 0))) })
  })
}

/** Runs one `hsmlab` command; resolves with the exit code. */
export async function main (argv: string[], io: MainIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) }
}): Promise<number> {
  const cwd = io.cwd ?? process.cwd()
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'up': {
        const v = parse('up', () => parseArgs({
          args: rest,
          strict: true,
          allowPositionals: false,
          options: {
            topology: { type: 'string', short: 't' },
            dir: DIR_OPTION,
            'log-level': { type: 'string' },
            'control-plane': { type: 'string', multiple: true },
            'fault-proxy': { type: 'string' },
            seed: { type: 'string' },
            'copy-retry-window-seconds': { type: 'string' },
            faults: { type: 'boolean' },
            'no-faults': { type: 'boolean' },
            console: { type: 'boolean' },
            'no-console': { type: 'boolean' },
            clients: { type: 'boolean' },
            'no-clients': { type: 'boolean' },
            json: { type: 'boolean' },
            help: HELP_OPTION
          }
        }).values)
        if (v.help === true) { io.stdout(HELP.up ?? ''); return EXIT_OK }
        const levels = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']
        if (v['log-level'] !== undefined && !levels.includes(v['log-level'])) {
          throw new LabError(LAB_ERR_USAGE, `--log-level must be one of ${levels.join(', ')}, not '${v['log-level']}'`)
        }
        const controlPlanes = controlPlanesOf(v['control-plane'] ?? [])
        if (v.faults === true && v['no-faults'] === true) throw new LabError(LAB_ERR_USAGE, 'give --faults or --no-faults, not both')
        const seed = v.seed === undefined ? undefined : Number(v.seed)
        if (v.seed !== undefined && (!/^-?\d+$/.test(v.seed.trim()) || !Number.isSafeInteger(seed))) {
          throw new LabError(LAB_ERR_USAGE, `--seed must be a whole number of at most 2^53 - 1 in absolute value, not '${v.seed}'`)
        }
        const faults = v['no-faults'] === true ? false : v.faults === true ? true : undefined
        const window = v['copy-retry-window-seconds'] === undefined ? undefined : Number(v['copy-retry-window-seconds'])
        if (window !== undefined && !(Number.isFinite(window) && window >= 0 && v['copy-retry-window-seconds']?.trim() !== '')) {
          throw new LabError(LAB_ERR_USAGE, `--copy-retry-window-seconds must be a number of seconds ≥ 0, not '${v['copy-retry-window-seconds'] ?? ''}'`)
        }
        const [{ labUp }, { formatUpSummary }] = await Promise.all([import('../lab-up.js'), import('../report.js')])
        const result = await labUp({
          cwd,
          dir: v.dir,
          topologyFile: v.topology,
          logLevel: v['log-level'],
          ...(controlPlanes === undefined ? {} : { controlPlanes }),
          ...(v['fault-proxy'] === undefined ? {} : { faultProxy: v['fault-proxy'] }),
          ...(seed === undefined ? {} : { seed }),
          ...(faults === undefined ? {} : { faults }),
          ...(window === undefined ? {} : { copyRetryWindowSeconds: window }),
          ...(v['no-console'] === true ? { console: false } : v.console === true ? { console: true } : {}),
          ...(v['no-clients'] === true ? { clients: false } : v.clients === true ? { clients: true } : {})
        })
        io.stdout(v.json === true ? JSON.stringify(result.status, null, 2) + '\n' : formatUpSummary(result, cwd))
        return EXIT_OK
      }
      case 'status': {
        const v = parse('status', () => parseArgs({ args: rest, strict: true, allowPositionals: false, options: { dir: DIR_OPTION, json: { type: 'boolean' }, help: HELP_OPTION } }).values)
        if (v.help === true) { io.stdout(HELP.status ?? ''); return EXIT_OK }
        const [{ labStatus }, { formatStatus }] = await Promise.all([import('../lab-status.js'), import('../report.js')])
        const status = await labStatus({ cwd, dir: v.dir })
        io.stdout(v.json === true ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status))
        return EXIT_OK
      }
      case 'down': {
        const v = parse('down', () => parseArgs({ args: rest, strict: true, allowPositionals: false, options: { dir: DIR_OPTION, purge: { type: 'boolean' }, help: HELP_OPTION } }).values)
        if (v.help === true) { io.stdout(HELP.down ?? ''); return EXIT_OK }
        const [{ labDown }, { formatDown }] = await Promise.all([import('../lab-admin.js'), import('../report.js')])
        io.stdout(formatDown(await labDown({ cwd, dir: v.dir, purge: v.purge })))
        return EXIT_OK
      }
      case 'backup': {
        const p = parse('backup', () => parseArgs({ args: rest, strict: true, allowPositionals: true, options: { dir: DIR_OPTION, json: { type: 'boolean' }, help: HELP_OPTION } }))
        if (p.values.help === true) { io.stdout(HELP.backup ?? ''); return EXIT_OK }
        if (p.positionals.length !== 1) throw new LabError(LAB_ERR_USAGE, `name one cluster as REGION/CLUSTER (like us-east-1/primary)\n\n${HELP.backup ?? ''}`)
        const { labBackup } = await import('../lab-admin.js')
        const backup = await labBackup({ cwd, dir: p.values.dir, cluster: p.positionals[0] as string })
        io.stdout(p.values.json === true ? JSON.stringify(backup, null, 2) + '\n' : `${backup.BackupId}\n`)
        return EXIT_OK
      }
      case 'cmu': case 'kmu': {
        // Loaded only here: the shells are not needed to start or stop a lab.
        const { runCmu, runKmu } = await import('@hsmlab/shells')
        const input = io.stdin ?? process.stdin
        const output = io.stdin === undefined ? process.stdout : writable(io.stdout)
        const error = io.stdin === undefined ? process.stderr : writable(io.stderr)
        return command === 'cmu'
          ? await runCmu(rest, { input, output }, { errorOutput: error })
          : await runKmu(rest, { input, output, error, cwd })
      }
      case 'fault': return await (await import('../fault-command.js')).faultMain(rest, { stdout: io.stdout, stderr: io.stderr, cwd })
      case 'sync': return await (await import('../sync-command.js')).syncMain(rest, { stdout: io.stdout, stderr: io.stderr, cwd })
      case 'scenario': return await (await import('../scenario/index.js')).scenarioMain(rest, { stdout: io.stdout, stderr: io.stderr, cwd })
      case 'exercise': return await forward('exercise', rest, cwd)
      case 'help': case '--help': case '-h':
        io.stdout(USAGE)
        return EXIT_OK
      case undefined:
        io.stderr(USAGE)
        return EXIT_USAGE
      default:
        io.stderr(`hsmlab: unknown command '${command}'\n\n${USAGE}`)
        return EXIT_USAGE
    }
  } catch (err) {
    if (err instanceof LabError && err.code === LAB_ERR_USAGE) {
      io.stderr(`hsmlab ${command ?? ''}: ${err.message}`.trimEnd() + '\n')
      return EXIT_USAGE
    }
    const code = (err as { code?: unknown }).code
    io.stderr(`hsmlab ${command ?? ''}: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
}


if (isEntryPoint(import.meta.url, new URL('../../bin/hsmlab.js', import.meta.url))) {
  main(process.argv.slice(2)).then(code => {
    // Leave once the output is flushed: the HSMs live on their own, and the shells' standard
    // input may still hold the event loop open.
    process.stdout.write('', () => process.exit(code))
  }, (err: unknown) => {
    process.stderr.write(`hsmlab: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(EXIT_FAILURE)
  })
}
