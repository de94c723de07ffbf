#!/usr/bin/env node
/**
 * `hsmlab-hsm-host`: an HSM host, the agent that runs one HSM at one address for a control plane
 * started with `--hsm-hosts` (hsm-host.ts; in the Docker lab, one per HSM container).
 *
 *   hsmlab-hsm-host --address IP --data-dir D --hsm-manufacturer-key-file F
 *                   [--host 127.0.0.1] [--port 0] [--log-level silent] [--hsm-log-level warn]
 *
 * Once it listens it prints one JSON line on stdout, `{"event":"ready","pid":…,"address":"…","port":…}`,
 * and nothing else there; logs are pino JSON lines on stderr. SIGTERM or SIGINT: it stops its HSM
 * gracefully, exit 0. SIGKILL: its HSM runs on, and the next host on the same data directory
 * adopts it. Exit 1: bad arguments or a failure to start.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { LevelWithSilent } from 'pino'
import { startHsmHost } from '../hsm-host.js'
import type { HsmHostOptions } from '../hsm-host.js'
import { LOG_LEVELS, createLogger } from '../logger.js'

const USAGE = 'usage: hsmlab-hsm-host --address IP --data-dir D --hsm-manufacturer-key-file F [--host 127.0.0.1] [--port 0] [--log-level silent] [--hsm-log-level warn]'

/** Where `main` writes and what stops it; the defaults are the process's. */
export interface MainIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Resolves when the host should stop. @default the first SIGTERM or SIGINT */
  stopRequested?: Promise<unknown>
}

class UsageError extends Error {}

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
  return {
    address,
    dataDir,
    manufacturerKeyFile: keyFile,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(port === undefined ? {} : { port }),
    ...(values['hsm-log-level'] === undefined ? {} : { hsmLogLevel: values['hsm-log-level'] }),
    logLevel: logLevel as LevelWithSilent
  }
}

/** Runs one HSM host until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io: MainIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) }
}): Promise<number> {
  let options
  try {
    options = parse(argv)
  } catch (err) {
    io.stderr(`hsmlab-hsm-host: ${(err as Error).message}\n${USAGE}\n`)
    return 1
  }
  if (options === 'help') {
    io.stdout(`${USAGE}\n`)
    return 0
  }
  const logger = createLogger(options.logLevel)
  let host
  try {
    host = await startHsmHost({ ...options, logger })
  } catch (err) {
    const code = (err as { code?: unknown }).code
    logger.fatal({ err }, 'HSM host failed to start')
    io.stderr(`hsmlab-hsm-host: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return 1
  }
  const stopRequested = io.stopRequested ?? processSignals()
  io.stdout(`${JSON.stringify({ event: 'ready', pid: process.pid, address: host.address, port: host.port })}\n`)
  const reason = await stopRequested
  logger.info({ reason }, 'stop requested')
  try {
    await host.stop()
  } catch (err) {
    io.stderr(`hsmlab-hsm-host: stopping failed: ${(err as Error).message}\n`)
    return 1
  }
  return 0
}

// The committed launcher bin/hsm-host.js imports this file: started directly, through the
// launcher, or through a symlink to either, it runs.
function isEntryPoint (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    const path = realpathSync(script)
    return path === realpathSync(fileURLToPath(import.meta.url)) || path === fileURLToPath(new URL('../../bin/hsm-host.js', import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(code => {
    process.exitCode = code
    setTimeout(() => { process.exit(code) }, 1_000).unref()
  }, (err: unknown) => {
    process.stderr.write(`hsmlab-hsm-host: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
