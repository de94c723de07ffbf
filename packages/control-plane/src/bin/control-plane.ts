#!/usr/bin/env node
/**
 * `hsmlab-control-plane`: the control plane of one region.
 *
 *   hsmlab-control-plane --region R --data-dir D --hsm-manufacturer-key-file F
 *                        [--host 127.0.0.1] [--port 0] [--regions-file FILE]
 *                        [--credentials ACCESS_KEY:SECRET] [--clock-speed 1] [--account-id 111122223333]
 *                        [--log-level silent] [--hsm-log-level warn] [--hsm-addressing per-hsm|shared] [--hsm-host IP]
 *                        [--hsm-hosts FILE]
 *                        [--clusters-max 4] [--hsms-max 6] [--copy-retry-window-seconds 60]
 *                        [--transition-delay-ms 1000]
 *
 * Once it listens it prints one JSON line on stdout, `{"event":"ready","pid":…,"region":"…","port":…}`,
 * and nothing else there; logs are pino JSON lines on stderr. SIGTERM or SIGINT: it stops its HSM
 * processes gracefully, its state is on disk, exit 0. Exit 1: bad arguments or a failure to start.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { LevelWithSilent } from 'pino'
import { startControlPlane } from '../control-plane.js'
import type { ControlPlaneOptions } from '../control-plane.js'
import { LOG_LEVELS, createLogger } from '../logger.js'

const USAGE = 'usage: hsmlab-control-plane --region R --data-dir D --hsm-manufacturer-key-file F [--host 127.0.0.1] [--port 0] [--regions-file FILE] ' +
  '[--credentials ACCESS_KEY:SECRET] [--clock-speed 1] [--account-id 111122223333] [--log-level silent] [--hsm-log-level warn] ' +
  '[--hsm-addressing per-hsm|shared] [--hsm-host IP] [--hsm-hosts FILE] [--clusters-max 4] [--hsms-max 6] [--copy-retry-window-seconds 60] [--transition-delay-ms 1000]'

/** Where `main` writes and what stops it; the defaults are the process's. */
export interface MainIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Resolves when the control plane should stop. @default the first SIGTERM or SIGINT */
  stopRequested?: Promise<unknown>
}

class UsageError extends Error {}

function number (flag: string, text: string | undefined, opts: { integer?: boolean, min?: number, max?: number } = {}): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || (opts.integer === true && !Number.isInteger(value)) ||
    (opts.min !== undefined && value < opts.min) || (opts.max !== undefined && value > opts.max)) {
    throw new UsageError(`--${flag} must be ${opts.integer === true ? 'an integer' : 'a number'}${opts.min !== undefined ? ` ≥ ${opts.min}` : ''}${opts.max !== undefined ? ` ≤ ${opts.max}` : ''}, not '${text}'`)
  }
  return value
}

function processSignals (): Promise<string> {
  return new Promise(resolve => {
    const onSignal = (signal: string): void => {
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      resolve(signal)
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
}

function parse (argv: string[]): ControlPlaneOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      region: { type: 'string' },
      'data-dir': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'hsm-manufacturer-key-file': { type: 'string' },
      'regions-file': { type: 'string' },
      credentials: { type: 'string' },
      'clock-speed': { type: 'string' },
      'account-id': { type: 'string' },
      'log-level': { type: 'string' },
      'hsm-log-level': { type: 'string' },
      'hsm-addressing': { type: 'string' },
      'hsm-host': { type: 'string' },
      'hsm-hosts': { type: 'string' },
      'clusters-max': { type: 'string' },
      'hsms-max': { type: 'string' },
      'copy-retry-window-seconds': { type: 'string' },
      'transition-delay-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) return 'help'
  const region = values.region
  const dataDir = values['data-dir']
  const keyFile = values['hsm-manufacturer-key-file']
  if (region === undefined) throw new UsageError('--region is required')
  if (dataDir === undefined) throw new UsageError('--data-dir is required')
  if (keyFile === undefined) throw new UsageError('--hsm-manufacturer-key-file is required')
  const logLevel = values['log-level'] ?? 'silent'
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not '${logLevel}'`)
  const hsmLogLevel = values['hsm-log-level']
  if (hsmLogLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(hsmLogLevel)) throw new UsageError(`--hsm-log-level must be one of ${LOG_LEVELS.join(', ')}`)
  let credentials
  if (values.credentials !== undefined) {
    const colon = values.credentials.indexOf(':')
    if (colon <= 0 || colon === values.credentials.length - 1) throw new UsageError('--credentials must be ACCESS_KEY:SECRET')
    credentials = { accessKeyId: values.credentials.slice(0, colon), secretAccessKey: values.credentials.slice(colon + 1) }
  }
  const addressing = values['hsm-addressing']
  if (addressing !== undefined && addressing !== 'per-hsm' && addressing !== 'shared') throw new UsageError('--hsm-addressing must be per-hsm or shared')
  const delay = number('transition-delay-ms', values['transition-delay-ms'], { min: 0 })
  const tuning: { -readonly [K in keyof NonNullable<ControlPlaneOptions['tuning']>]: number } = {}
  const clustersMax = number('clusters-max', values['clusters-max'], { integer: true, min: 1 })
  const hsmsMax = number('hsms-max', values['hsms-max'], { integer: true, min: 1 })
  const window = number('copy-retry-window-seconds', values['copy-retry-window-seconds'], { min: 0 })
  if (clustersMax !== undefined) tuning.clustersMax = clustersMax
  if (hsmsMax !== undefined) tuning.hsmsMax = hsmsMax
  if (window !== undefined) tuning.copyRetryWindowLabSeconds = window
  if (delay !== undefined) {
    tuning.clusterCreateDelayMs = delay
    tuning.clusterInitializeDelayMs = delay
    tuning.clusterDeleteDelayMs = delay
  }
  const port = number('port', values.port, { integer: true, min: 0, max: 65535 })
  const clockSpeed = number('clock-speed', values['clock-speed'], { min: Number.MIN_VALUE })
  return {
    region,
    dataDir,
    manufacturerKeyFile: keyFile,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(port === undefined ? {} : { port }),
    ...(values['regions-file'] === undefined ? {} : { regionsFile: values['regions-file'] }),
    ...(credentials === undefined ? {} : { credentials }),
    ...(clockSpeed === undefined ? {} : { clockSpeed }),
    ...(values['account-id'] === undefined ? {} : { accountId: values['account-id'] }),
    ...(hsmLogLevel === undefined ? {} : { hsmLogLevel }),
    ...(addressing === undefined ? {} : { hsmAddressing: addressing }),
    ...(values['hsm-host'] === undefined ? {} : { hsmHost: values['hsm-host'] }),
    ...(values['hsm-hosts'] === undefined ? {} : { hsmHostsFile: values['hsm-hosts'] }),
    logLevel: logLevel as LevelWithSilent,
    tuning
  }
}

/** Runs one control plane until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io: MainIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) }
}): Promise<number> {
  let options
  try {
    options = parse(argv)
  } catch (err) {
    io.stderr(`hsmlab-control-plane: ${(err as Error).message}\n${USAGE}\n`)
    return 1
  }
  if (options === 'help') {
    io.stdout(`${USAGE}\n`)
    return 0
  }
  const logger = createLogger(options.logLevel)
  let cp
  try {
    cp = await startControlPlane({ ...options, logger })
  } catch (err) {
    const code = (err as { code?: unknown }).code
    logger.fatal({ err }, 'control plane failed to start')
    io.stderr(`hsmlab-control-plane: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return 1
  }
  const stopRequested = io.stopRequested ?? processSignals()
  io.stdout(`${JSON.stringify({ event: 'ready', pid: process.pid, region: cp.region, port: cp.port })}\n`)
  const reason = await stopRequested
  logger.info({ reason }, 'stop requested')
  try {
    await cp.stop()
  } catch (err) {
    io.stderr(`hsmlab-control-plane: stopping failed: ${(err as Error).message}\n`)
    return 1
  }
  return 0
}

// The committed launcher bin/control-plane.js imports this file: started directly, through the
// launcher, or through a symlink to either, it runs.
function isEntryPoint (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    const path = realpathSync(script)
    return path === realpathSync(fileURLToPath(import.meta.url)) || path === fileURLToPath(new URL('../../bin/control-plane.js', import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(code => {
    process.exitCode = code
    setTimeout(() => { process.exit(code) }, 1_000).unref()
  }, (err: unknown) => {
    process.stderr.write(`hsmlab-control-plane: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
