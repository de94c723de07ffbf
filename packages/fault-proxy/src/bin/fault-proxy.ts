#!/usr/bin/env node
/**
 * `hsmlab-fault-proxy`: a Toxiproxy-compatible fault proxy server.
 *
 *   hsmlab-fault-proxy [--host 127.0.0.1] [--port 8474] [--seed N] [--config FILE] [--log-level silent]
 *
 * Toxiproxy's single-dash spellings (`-host`, `-port`, `-config`, `-seed`) work too. Once the API
 * listens (and FILE, a JSON array of proxies, is populated) it prints one JSON line on stdout,
 * `{"event":"ready","pid":…,"port":…,"seed":…}`, and nothing else there; logs are pino JSON
 * lines on stderr. SIGTERM or SIGINT: it closes every proxy and exits 0. Exit 1: bad arguments
 * or a failure to start (the message says which, with its FAULT_ERR_* code).
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { LevelWithSilent } from 'pino'
import { faultProxyDefaults } from '../defaults.js'
import { startFaultProxy } from '../fault-proxy.js'
import { LOG_LEVELS, createLogger } from '../logger.js'

const USAGE = 'usage: hsmlab-fault-proxy [--host 127.0.0.1] [--port 8474] [--seed N] [--config FILE] [--log-level silent]'

/** Where `main` writes and what stops it; the defaults are the process's. */
export interface MainIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Resolves when the server should stop. @default the first SIGTERM or SIGINT */
  stopRequested?: Promise<unknown>
}

class UsageError extends Error {}

const LONG_FLAGS = ['host', 'port', 'seed', 'config', 'log-level', 'help']

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

function integer (flag: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, not '${text}'`)
  }
  return value
}

interface Parsed {
  host: string
  port: number
  seed: number | undefined
  config: string | undefined
  logLevel: LevelWithSilent
}

function parse (argv: string[]): Parsed | 'help' {
  // Go's flag package reads -host as --host; so do we, for Toxiproxy's command lines.
  const args = argv.map(arg => {
    const name = /^-([a-z-]+)(=.*)?$/.exec(arg)?.[1]
    return name !== undefined && LONG_FLAGS.includes(name) ? `-${arg}` : arg
  })
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      seed: { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) return 'help'
  const logLevel = values['log-level'] ?? faultProxyDefaults.logLevel
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not '${logLevel}'`)
  return {
    host: values.host ?? faultProxyDefaults.host,
    port: integer('port', values.port, 0, 65535) ?? faultProxyDefaults.port,
    seed: integer('seed', values.seed, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    config: values.config,
    logLevel: logLevel as LevelWithSilent
  }
}

/** Runs one fault proxy server until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io: MainIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) }
}): Promise<number> {
  let options
  try {
    options = parse(argv)
  } catch (err) {
    io.stderr(`hsmlab-fault-proxy: ${(err as Error).message}\n${USAGE}\n`)
    return 1
  }
  if (options === 'help') {
    io.stdout(`${USAGE}\n`)
    return 0
  }
  const logger = createLogger(options.logLevel)
  let server
  try {
    server = await startFaultProxy({
      host: options.host,
      port: options.port,
      logger,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.config === undefined ? {} : { config: options.config })
    })
  } catch (err) {
    const code = (err as { code?: unknown }).code
    logger.fatal({ err }, 'fault proxy failed to start')
    io.stderr(`hsmlab-fault-proxy: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return 1
  }
  const stopRequested = io.stopRequested ?? processSignals()
  io.stdout(`${JSON.stringify({ event: 'ready', pid: process.pid, port: server.port, seed: server.seed })}\n`)
  const reason = await stopRequested
  logger.info({ reason, seed: server.seed }, 'stop requested')
  try {
    await server.stop()
  } catch (err) {
    io.stderr(`hsmlab-fault-proxy: stopping failed: ${(err as Error).message}\n`)
    return 1
  }
  return 0
}

// The committed launcher bin/fault-proxy.js imports this file: started directly, through the
// launcher, or through a symlink to either, it runs.
function isEntryPoint (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    const path = realpathSync(script)
    return path === realpathSync(fileURLToPath(import.meta.url)) || path === fileURLToPath(new URL('../../bin/fault-proxy.js', import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(code => {
    process.exitCode = code
    setTimeout(() => { process.exit(code) }, 1_000).unref()
  }, (err: unknown) => {
    process.stderr.write(`hsmlab-fault-proxy: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
