#!/usr/bin/env node
/**
 * `hsmlab-control-plane`: the control plane of one region.
 *
 *   hsmlab-control-plane --region R --data-dir D --hsm-manufacturer-key-file F
 *                        [--host 127.0.0.1] [--port 0] [--regions-file FILE]
 *                        [--credentials ACCESS_KEY:SECRET] [--peer-secret-file FILE] [--clock-speed 1] [--account-id 111122223333]
 *                        [--log-level silent] [--hsm-log-level warn] [--hsm-addressing per-hsm|shared] [--hsm-host IP]
 *                        [--hsm-hosts FILE]
 *                        [--clusters-max 4] [--hsms-max 6] [--copy-retry-window-seconds 60]
 *                        [--transition-delay-ms 1000] [--request-headers-timeout-ms 10000] [--request-receive-timeout-ms 30000]
 *                        [--sync-request-timeout-ms 2000] [--sync-retry-delay-ms 100] [--sync-retry-factor 2] [--sync-retry-delay-max-ms 1000]
 *
 * Once it listens it prints one JSON line on stdout, `{"event":"ready","pid":…,"region":"…","port":…}`,
 * and nothing else there; logs are pino JSON lines on stderr. SIGTERM or SIGINT: it stops its HSM
 * processes gracefully, its state is on disk, exit 0. Exit 1: bad arguments or a failure to start.
 */
import { parseArgs } from 'node:util'
import { UsageError, exitWhenDone, isEntryPoint, runServer } from '@hsmlab/process'
import type { MainIo, ServerProgram } from '@hsmlab/process'
import type { LevelWithSilent } from 'pino'
import { startControlPlane } from '../control-plane.js'
import type { ControlPlane, ControlPlaneOptions } from '../control-plane.js'
import { LOG_LEVELS, createLogger } from '../logger.js'
import type { Logger } from '../logger.js'

export type { MainIo }

const USAGE = 'usage: hsmlab-control-plane --region R --data-dir D --hsm-manufacturer-key-file F [--host 127.0.0.1] [--port 0] [--regions-file FILE] ' +
  '[--credentials ACCESS_KEY:SECRET] [--peer-secret-file FILE] [--clock-speed 1] [--account-id 111122223333] [--log-level silent] [--hsm-log-level warn] ' +
  '[--hsm-addressing per-hsm|shared] [--hsm-host IP] [--hsm-hosts FILE] [--clusters-max 4] [--hsms-max 6] [--copy-retry-window-seconds 60] [--transition-delay-ms 1000] ' +
  '[--request-headers-timeout-ms 10000] [--request-receive-timeout-ms 30000] ' +
  '[--sync-request-timeout-ms 2000] [--sync-retry-delay-ms 100] [--sync-retry-factor 2] [--sync-retry-delay-max-ms 1000]'

function number (flag: string, text: string | undefined, opts: { integer?: boolean, min?: number, max?: number } = {}): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || (opts.integer === true && !Number.isInteger(value)) ||
    (opts.min !== undefined && value < opts.min) || (opts.max !== undefined && value > opts.max)) {
    throw new UsageError(`--${flag} must be ${opts.integer === true ? 'an integer' : 'a number'}${opts.min !== undefined ? ` ≥ ${opts.min}` : ''}${opts.max !== undefined ? ` ≤ ${opts.max}` : ''}, not '${text}'`)
  }
  return value
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
      'peer-secret-file': { type: 'string' },
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
      'request-headers-timeout-ms': { type: 'string' },
      'request-receive-timeout-ms': { type: 'string' },
      'sync-request-timeout-ms': { type: 'string' },
      'sync-retry-delay-ms': { type: 'string' },
      'sync-retry-factor': { type: 'string' },
      'sync-retry-delay-max-ms': { type: 'string' },
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
  const headersTimeout = number('request-headers-timeout-ms', values['request-headers-timeout-ms'], { integer: true, min: 1 })
  const receiveTimeout = number('request-receive-timeout-ms', values['request-receive-timeout-ms'], { integer: true, min: 1 })
  if (headersTimeout !== undefined) tuning.requestHeadersTimeoutMs = headersTimeout
  if (receiveTimeout !== undefined) tuning.requestReceiveTimeoutMs = receiveTimeout
  // Synchronisation tasks (issue 12): the deadline of a request to a replica's region, and the retry policy.
  const syncFlags = [
    ['sync-request-timeout-ms', 'syncRequestTimeoutMs', 1], ['sync-retry-delay-ms', 'syncRetryDelayMs', 1],
    ['sync-retry-factor', 'syncRetryFactor', 1], ['sync-retry-delay-max-ms', 'syncRetryDelayMaxMs', 1]
  ] as const
  for (const [flag, option, min] of syncFlags) {
    const value = number(flag, values[flag], { min, integer: flag !== 'sync-retry-factor' })
    if (value !== undefined) tuning[option] = value
  }
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
    ...(values['peer-secret-file'] === undefined ? {} : { peerSecretFile: values['peer-secret-file'] }),
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

const program: ServerProgram<ControlPlaneOptions, ControlPlane, Logger> = {
  name: 'hsmlab-control-plane',
  what: 'control plane',
  usage: USAGE,
  parse,
  createLogger: options => createLogger(options.logLevel),
  start: async (options, logger) => await startControlPlane({ ...options, logger }),
  ready: cp => ({ region: cp.region, port: cp.port })
}

/** Runs one control plane until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io?: MainIo): Promise<number> {
  return await runServer(program, argv, io)
}

// The committed launcher bin/control-plane.js imports this file: started directly, through the
// launcher, or through a symlink to either, it runs.
if (isEntryPoint(import.meta.url, new URL('../../bin/control-plane.js', import.meta.url))) exitWhenDone(program.name, main(process.argv.slice(2)))
