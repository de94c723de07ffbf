/**
 * The lab's web console (@hsmlab/console, docs/console.md): one process per lab, started by `up`
 * as the fault proxy is (detached, its ready line awaited, its pid and port recorded in lab.json,
 * started again on its recorded port by the next `up` when it is gone), stopped by `down` (its
 * `--data-dir DIR/console` makes it a process of the lab). The lab does not import the console,
 * which reads the lab: it starts the console's bin, found through the package's package.json.
 * The console keeps its token in `DIR/console/token` (0600); the URL printed carries it.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_CONSOLE } from './errors.js'
import type { ConsoleState, LabLayout, LabState, LabStateWriter } from './lab-state.js'
import { isLabProcess, launchConsole, stopProcess, waitGone } from './launcher.js'

/** The console in the status report (`hsmlab status --json`'s `console`). */
export interface ConsoleStatus {
  /** `http://127.0.0.1:<port>`; null without a console. */
  endpoint: string | null
  /** The address to open: the endpoint with its token (`/?token=…`); null without a console or its token. */
  url: string | null
  pid: number | null
  state: 'RUNNING' | 'DOWN' | 'NONE'
}

/** Options of `ensureConsole`. */
export interface ConsoleOptions {
  /** Run the console (`up --no-console`: false, recorded). @default the recorded choice, else labDefaults.console */
  enabled?: boolean
  /** @default the `hsmlab-console` bin of @hsmlab/console */
  binPath?: string
  logLevel?: string
  readyTimeoutMs?: number
}

/** Where the console's files are in the lab directory. */
function pathsOf (layout: LabLayout): { dir: string, token: string, stdout: string, log: string } {
  const dir = join(layout.dir, 'console')
  return { dir, token: join(dir, 'token'), stdout: join(dir, 'console.out'), log: join(dir, 'console.log') }
}

/** The console's bin, from its package.json (no import of the package: it depends on the lab, not the other way). */
export function consoleBinPath (): string {
  const require = createRequire(import.meta.url)
  let manifest: string
  try {
    manifest = require.resolve('@hsmlab/console/package.json')
  } catch (err) {
    throw new LabError(LAB_ERR_CONSOLE, `the web console (@hsmlab/console) is not installed beside the lab: install it, or run 'hsmlab up --no-console'`, { cause: err })
  }
  const { bin } = require(manifest) as { bin: Record<string, string> }
  return join(dirname(manifest), bin['hsmlab-console'] ?? 'bin/console.js')
}

function recordOf (lab: LabState): ConsoleState {
  lab.console ??= { enabled: labDefaults.console, port: 0, pid: null }
  return lab.console
}

async function running (layout: LabLayout, state: ConsoleState): Promise<boolean> {
  return state.pid !== null && await isLabProcess(state.pid, pathsOf(layout).dir)
}

/** The console's part of the status report. */
export async function consoleStatusOf (layout: LabLayout, lab: LabState): Promise<ConsoleStatus> {
  const state = lab.console
  if (state === undefined || !state.enabled || state.port === 0) return { endpoint: null, url: null, pid: null, state: 'NONE' }
  const endpoint = `http://127.0.0.1:${state.port}`
  const token = (await readFile(pathsOf(layout).token, 'utf8').catch(() => '')).trim()
  const alive = await running(layout, state)
  return { endpoint, url: token === '' ? null : `${endpoint}/?token=${token}`, pid: alive ? state.pid : null, state: alive ? 'RUNNING' : 'DOWN' }
}

/**
 * Makes sure the console runs (or, for a lab without one, does not): left alone when it runs,
 * started otherwise on its recorded port (any port when that one is taken). Resolves with its status.
 */
export async function ensureConsole (layout: LabLayout, lab: LabState, writer: LabStateWriter, options: ConsoleOptions = {}): Promise<ConsoleStatus> {
  const state = recordOf(lab)
  if (options.enabled !== undefined) state.enabled = options.enabled
  const paths = pathsOf(layout)
  if (!state.enabled) {
    if (await running(layout, state) && state.pid !== null) await stopProcess(state.pid, labDefaults.stopTimeoutMs)
    state.pid = null
    await writer.save(lab)
    return await consoleStatusOf(layout, lab)
  }
  if (await running(layout, state)) return await consoleStatusOf(layout, lab)
  if (state.pid !== null) await waitGone(state.pid, labDefaults.stopTimeoutMs)
  await mkdir(paths.dir, { recursive: true, mode: 0o700 })
  const launch = async (port: number): Promise<void> => {
    const ready = await launchConsole({
      binPath: options.binPath ?? consoleBinPath(),
      labDir: layout.dir,
      dataDir: paths.dir,
      port,
      stdoutFile: paths.stdout,
      logFile: paths.log,
      ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
      ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
      onSpawn: async pid => { state.pid = pid; await writer.save(lab) }
    })
    state.pid = ready.pid
    state.port = ready.port
    state.startedAt = new Date().toISOString()
  }
  try {
    await launch(state.port)
  } catch (err) {
    // Its port taken meanwhile: any port (a page left open must be opened again with the new URL).
    if (state.port === 0 || !/EADDRINUSE|CONSOLE_ERR_LISTEN/.test((err as Error).message)) throw err
    await launch(0)
  }
  await writer.save(lab)
  return await consoleStatusOf(layout, lab)
}
