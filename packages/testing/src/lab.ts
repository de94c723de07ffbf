/**
 * `startLab()`: a real lab for an end-to-end test, started by the real `hsmlab` bin in a fresh
 * temporary directory, and always torn down when the test ends (`hsmlab down`, then SIGKILL for
 * any control-plane or HSM process of the lab still there, then the directory is removed), also
 * when the test fails; then the end of every control plane's and HSM's log is printed, so the
 * failure can be understood.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'
import { spawnNode } from './spawn.js'

/**
 * The `hsmlab` launcher of the lab package (its package.json `bin`). Found beside this package in
 * the workspace (`packages/testing/{src,dist}` → `packages/lab/bin`): the testing package does not
 * depend on the lab, whose own tests use these helpers.
 */
export const HSMLAB_BIN: string = fileURLToPath(new URL('../../lab/bin/hsmlab.js', import.meta.url))

/** One HSM in `hsmlab status --json` (DESIGN.md "The lab's contract"). */
export interface LabStatusHsm {
  id: string
  pid: number | null
  state: string
  endpoint: string
  [more: string]: unknown
}

/** One cluster in `hsmlab status --json`. */
export interface LabStatusCluster {
  id: string
  name: string
  state: string
  lineage: string
  cmuConfig: string
  hsms: LabStatusHsm[]
  [more: string]: unknown
}

/** `hsmlab status --json`: the contract's fields, typed; anything more is there untyped. */
export interface LabStatusJson {
  dir: string
  faults: { endpoint: string | null, seed?: number | null, [more: string]: unknown }
  regions: Array<{ name: string, controlPlane: { endpoint: string, pid: number | null, [more: string]: unknown } | null, clusters: LabStatusCluster[] }>
  cmuConfigs: Record<string, string>
  [more: string]: unknown
}

/** How a run of the bin ended. */
export interface HsmlabRun {
  /** Exit code, or the signal's name. */
  code: number | string
  stdout: string
  stderr: string
}

/** Options of `runHsmlab`. */
export interface RunHsmlabOptions {
  cwd?: string
  /** Kill it (and fail) after this long. @default 60000 */
  timeoutMs?: number
}

/** Runs `hsmlab ARGS` to its end; never throws for a non-zero exit (check `code`). */
export async function runHsmlab (args: string[], options: RunHsmlabOptions = {}): Promise<HsmlabRun> {
  const timeoutMs = options.timeoutMs ?? 60_000
  const child = spawnNode(HSMLAB_BIN, args, { cwd: options.cwd, name: `hsmlab ${args[0] ?? ''}` })
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      void child.kill()
      reject(new Error(`hsmlab ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr:\n${child.stderr()}`))
    }, timeoutMs)
  })
  try {
    const code = await Promise.race([child.exited, timedOut])
    return { code, stdout: child.stdout(), stderr: child.stderr() }
  } finally {
    clearTimeout(timer)
  }
}

/** Options of `startLab`. */
export interface StartLabOptions {
  /** The topology: an object (written to `topology.json` in the temporary directory) or a file path. @default the default lab */
  topology?: object | string
  /** More arguments for `hsmlab up`. */
  args?: string[]
  /**
   * The lab without the processes that only serve people and applications: no web console, no
   * client daemons (`up --no-console --no-clients`, recorded, so later `up`s leave them out too).
   * For a test that uses neither the console nor PKCS#11: its lab comes up sooner and loads the
   * machine less (two to four Node processes fewer). @default false
   */
  lean?: boolean
  /** @default 60000 */
  timeoutMs?: number
  /**
   * An existing, empty directory to run in instead of a fresh temporary one, such as a small
   * file system mounted for the test; the lab's directory is made inside it, and removed at the
   * end, but the directory itself is the caller's to remove.
   */
  cwd?: string
  /** The lab directory's name inside `cwd` (`.hsmlab` for commands written for the default, as exercises' solutions are). @default 'lab' */
  dirName?: string
  /**
   * The `hsmlab` command that makes the lab instead of `up --json` (like `['exercise', 'start',
   * NAME]`), run with `--dir`; `status` is then what `hsmlab status --json` says once it is done.
   */
  start?: string[]
}

/** A running lab and the commands to drive it. */
export interface StartedLab {
  /** The lab directory (`--dir`), inside `cwd`. */
  dir: string
  /** The temporary directory the bin runs in, removed at the end of the test. */
  cwd: string
  /** The status `hsmlab up --json` printed. */
  status: LabStatusJson
  /** What `hsmlab up` printed on stderr (empty when all went well). */
  upStderr: string
  /** What `hsmlab up` (or the `start` command) printed on stdout. */
  upStdout: string
  /** Runs `hsmlab ARGS --dir DIR` in `cwd`. */
  hsmlab: (args: string[]) => Promise<HsmlabRun>
  /** `hsmlab status --json`, parsed; throws if it fails. */
  statusJson: () => Promise<LabStatusJson>
  /** `hsmlab up --json` again (starts what is missing); throws if it fails. */
  up: () => Promise<LabStatusJson>
  /** `hsmlab down`; throws if it fails. */
  down: (args?: string[]) => Promise<HsmlabRun>
}

/** Pids `lab.json` records (control planes, HSMs as last seen). */
function pidsOf (dir: string): number[] {
  try {
    const state = JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as {
      controlPlanes?: Array<{ pid?: number | null }>
      clusters?: Array<{ hsms?: Array<{ pid?: number | null }> }>
      faultProxy?: { pid?: number | null }
    }
    return [...(state.controlPlanes ?? []), ...(state.clusters ?? []).flatMap(c => c.hsms ?? []), ...(state.faultProxy === undefined ? [] : [state.faultProxy])]
      .map(p => p.pid).filter((p): p is number => typeof p === 'number')
  } catch {
    return []
  }
}

/**
 * True when a command line (NUL-separated) names, as `--data-dir`, a directory inside `dir` (a
 * control plane, an HSM), or is the lab's fault proxy (its `--config` is inside `dir`).
 */
function servesDirIn (commandLine: string, dir: string): boolean {
  const argv = commandLine.split('\0')
  const at = argv.indexOf('--data-dir')
  if (at !== -1) return (argv[at + 1] ?? '').startsWith(`${dir}/`)
  const config = argv.indexOf('--config')
  return config !== -1 && argv.some(a => a.endsWith('fault-proxy.js')) && (argv[config + 1] ?? '').startsWith(`${dir}/`)
}

/** Every live process of the lab in `dir` (a control plane or an HSM: its data directory is inside `dir`). */
function processesOf (dir: string): number[] {
  let names: string[]
  try {
    names = readdirSync('/proc')
  } catch {
    return pidsOf(dir)
  }
  const found = new Set(pidsOf(dir))
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (servesDirIn(readFileSync(`/proc/${name}/cmdline`, 'utf8'), dir)) found.add(Number(name))
    } catch {
      // Gone meanwhile.
    }
  }
  return [...found]
}

function killIfOurs (pid: number, dir: string): void {
  try {
    // Only a process whose data directory is in this lab: a pid may have been reused meanwhile.
    if (!servesDirIn(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), dir)) return
  } catch {
    // No /proc here, or no such process: fall through to a signal check.
  }
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // Already gone.
  }
}

/** The end of every log of the lab: each control plane's, and each HSM's (inside its control plane's data directory). */
function logTails (dir: string): string {
  const out: string[] = []
  const walk = (d: string): void => {
    let names: string[]
    try { names = readdirSync(d) } catch { return }
    for (const name of names) {
      const path = join(d, name)
      // An HSM's own data directory and the backups hold no logs.
      if ((name === 'data' && /\/hsm-[^/]+$/.test(d)) || name === 'backups') continue
      if (statSync(path).isDirectory()) walk(path)
      else if (name === 'hsm.log' || name === 'control-plane.log' || name === 'fault-proxy.log') {
        const tail = readFileSync(path, 'utf8').split('\n').filter(l => l !== '').slice(-20).join('\n')
        if (tail !== '') out.push(`--- ${path} ---\n${tail}`)
      }
    }
  }
  walk(dir)
  return out.join('\n')
}

function parseStatus (run: HsmlabRun, what: string): LabStatusJson {
  if (run.code !== 0) throw new Error(`${what} exited with ${run.code}:\n${run.stderr}${run.stdout}`)
  try {
    return JSON.parse(run.stdout) as LabStatusJson
  } catch (err) {
    throw new Error(`${what} did not print JSON (${(err as Error).message}):\n${run.stdout}`, { cause: err })
  }
}

/**
 * Starts a lab with the real `hsmlab up --dir <tmp>/lab --json` and resolves once it is ready;
 * throws with hsmlab's stderr if it fails. Whatever happens, when the test ends the lab is
 * stopped and its directory removed.
 */
export async function startLab (options: StartLabOptions = {}): Promise<StartedLab> {
  const cwd = options.cwd ?? mkdtempSync(join(tmpdir(), 'hsmlab-lab-'))
  const dir = join(cwd, options.dirName ?? 'lab')
  const timeoutMs = options.timeoutMs ?? 60_000
  onTestFinished(async (context) => {
    await runHsmlab(['down', '--dir', dir], { cwd, timeoutMs: 30_000 }).catch(() => undefined)
    for (const pid of processesOf(dir)) killIfOurs(pid, dir)
    if (context.task.result?.state === 'fail') {
      const tails = logTails(dir)
      if (tails !== '') process.stderr.write(`--- logs of the lab in ${dir} ---\n${tails}\n`)
    }
    rmSync(options.cwd === undefined ? cwd : dir, { recursive: true, force: true })
  })
  const hsmlab = async (args: string[]): Promise<HsmlabRun> => await runHsmlab([...args, '--dir', dir], { cwd, timeoutMs })
  const upArgs = ['up', '--json', ...(options.lean === true ? ['--no-console', '--no-clients'] : []), ...(options.args ?? [])]
  if (options.topology !== undefined) {
    let file = options.topology
    if (typeof file !== 'string') {
      file = join(cwd, 'topology.json')
      writeFileSync(file, JSON.stringify(options.topology, null, 2))
    }
    upArgs.push('--topology', file)
  }
  const first = await hsmlab(options.start ?? upArgs)
  if (options.start !== undefined && first.code !== 0) throw new Error(`hsmlab ${options.start.join(' ')} exited with ${first.code}:\n${first.stderr}${first.stdout}`)
  const status = options.start === undefined ? parseStatus(first, 'hsmlab up') : parseStatus(await hsmlab(['status', '--json']), 'hsmlab status --json')
  return {
    dir,
    cwd,
    status,
    upStderr: first.stderr,
    upStdout: first.stdout,
    hsmlab,
    statusJson: async () => parseStatus(await hsmlab(['status', '--json']), 'hsmlab status --json'),
    up: async () => parseStatus(await hsmlab(['up', '--json']), 'hsmlab up'),
    down: async (args = []) => {
      const run = await hsmlab(['down', ...args])
      if (run.code !== 0) throw new Error(`hsmlab down exited with ${run.code}:\n${run.stderr}`)
      return run
    }
  }
}
