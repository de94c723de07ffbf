#!/usr/bin/env node
/**
 * `hsmlab-hsm-host`: an HSM host, the agent that runs one HSM at one address for a control plane
 * started with `--hsm-hosts` (hsm-host.ts; in the Docker lab, one per HSM container).
 *
 *   hsmlab-hsm-host --address IP --data-dir D --hsm-manufacturer-key-file F
 *                   [--host 127.0.0.1] [--port 0] [--log-level silent] [--hsm-log-level warn]
 *                   [--request-headers-timeout-ms 10000] [--request-receive-timeout-ms 60000]
 *
 * Once it listens it prints one JSON line on stdout, `{"event":"ready","pid":…,"address":"…","port":…}`,
 * and nothing else there; logs are pino JSON lines on stderr. SIGTERM or SIGINT: it stops its HSM
 * gracefully, exit 0. SIGKILL: its HSM runs on, and the next host on the same data directory
 * adopts it. Exit 1: bad arguments or a failure to start.
 */
import { parseArgs } from 'node:util'
import { UsageError, exitWhenDone, isEntryPoint, runServer } from '@hsmlab/process'
import type { MainIo, ServerProgram } from '@hsmlab/process'
import type { LevelWithSilent } from 'pino'
import { startHsmHost } from '../hsm-host.js'
import type { HsmHost, HsmHostOptions } from '../hsm-host.js'
import { LOG_LEVELS, createLogger } from '../logger.js'
import type { Logger } from '../logger.js'

export type { MainIo }

const USAGE = 'usage: hsmlab-hsm-host --address IP --data-dir D --hsm-manufacturer-key-file F [--host 127.0.0.1] [--port 0] [--log-level silent] [--hsm-log-level warn] ' +
  '[--request-headers-timeout-ms 10000] [--request-receive-timeout-ms 60000]'

function parse (argv: string[]): HsmHostOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      address: { type: 'string' },
      'data-dir': { type: 'string' },
      'hsm-manufacturer-key-file': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'log-level': { type: 'string' },
      'hsm-log-level': { type: 'string' },
      'request-headers-timeout-ms': { type: 'string' },
      'request-receive-timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) return 'help'
  const { address } = values
  const dataDir = values['data-dir']
  const keyFile = values['hsm-manufacturer-key-file']
  if (address === undefined) throw new UsageError('--address is required')
  if (dataDir === undefined) throw new UsageError('--data-dir is required')
  if (keyFile === undefined) throw new UsageError('--hsm-manufacturer-key-file is required')
  const logLevel = values['log-level'] ?? 'silent'
  for (const [flag, level] of [['log-level', logLevel], ['hsm-log-level', values['hsm-log-level']]] as const) {
    if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--${flag} must be one of ${LOG_LEVELS.join(', ')}, not '${level}'`)
  }
  let port: number | undefined
  if (values.port !== undefined) {
    port = Number(values.port)
    if (!/^\d+$/.test(values.port) || port > 65535) throw new UsageError(`--port must be an integer from 0 to 65535, not '${values.port}'`)
  }
  const tuning: { requestHeadersTimeoutMs?: number, requestReceiveTimeoutMs?: number } = {}
  for (const [flag, name] of [['request-headers-timeout-ms', 'requestHeadersTimeoutMs'], ['request-receive-timeout-ms', 'requestReceiveTimeoutMs']] as const) {
    const text = values[flag]
    if (text === undefined) continue
    if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`--${flag} must be an integer ≥ 1, not '${text}'`)
    tuning[name] = Number(text)
  }
  return {
    address,
    dataDir,
    manufacturerKeyFile: keyFile,
    tuning,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(port === undefined ? {} : { port }),
    ...(values['hsm-log-level'] === undefined ? {} : { hsmLogLevel: values['hsm-log-level'] }),
    logLevel: logLevel as LevelWithSilent
  }
}

const program: ServerProgram<HsmHostOptions, HsmHost, Logger> = {
  name: 'hsmlab-hsm-host',
  what: 'HSM host',
  usage: USAGE,
  parse,
  createLogger: options => createLogger(options.logLevel),
  start: async (options, logger) => await startHsmHost({ ...options, logger }),
  ready: host => ({ address: host.address, port: host.port })
}

/** Runs one HSM host until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io?: MainIo): Promise<number> {
  return await runServer(program, argv, io)
}

// The committed launcher bin/hsm-host.js imports this file: started directly, through the
// launcher, or through a symlink to either, it runs.
if (isEntryPoint(import.meta.url, new URL('../../bin/hsm-host.js', import.meta.url))) exitWhenDone(program.name, main(process.argv.slice(2)))
