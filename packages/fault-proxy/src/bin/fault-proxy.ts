#!/usr/bin/env node
/**
 * `hsmlab-fault-proxy`: a Toxiproxy-compatible fault proxy server.
 *
 *   hsmlab-fault-proxy [--host 127.0.0.1] [--port 8474] [--seed N] [--config FILE] [--api-headers-timeout-ms 10000] [--log-level silent]
 *
 * Toxiproxy's single-dash spellings (`-host`, `-port`, `-config`, `-seed`) work too. Once the API
 * listens (and FILE, a JSON array of proxies, is populated) it prints one JSON line on stdout,
 * `{"event":"ready","pid":…,"port":…,"seed":…}`, and nothing else there; logs are pino JSON
 * lines on stderr. SIGTERM or SIGINT: it closes every proxy and exits 0. Exit 1: bad arguments
 * or a failure to start (the message says which, with its FAULT_ERR_* code).
 */
import { parseArgs } from 'node:util'
import { UsageError, exitWhenDone, isEntryPoint, runServer } from '@hsmlab/process'
import type { MainIo, ServerProgram } from '@hsmlab/process'
import type { LevelWithSilent } from 'pino'
import { faultProxyDefaults } from '../defaults.js'
import { startFaultProxy } from '../fault-proxy.js'
import type { FaultProxy } from '../fault-proxy.js'
import { LOG_LEVELS, createLogger } from '../logger.js'
import type { Logger } from '../logger.js'

export type { MainIo }

const USAGE = 'usage: hsmlab-fault-proxy [--host 127.0.0.1] [--port 8474] [--seed N] [--config FILE] [--api-headers-timeout-ms 10000] [--log-level silent]'

const LONG_FLAGS = ['host', 'port', 'seed', 'config', 'api-headers-timeout-ms', 'log-level', 'help']

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
  apiHeadersTimeoutMs: number
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
      'api-headers-timeout-ms': { type: 'string' },
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
    apiHeadersTimeoutMs: integer('api-headers-timeout-ms', values['api-headers-timeout-ms'], 1, 3_600_000) ?? faultProxyDefaults.apiHeadersTimeoutMs,
    logLevel: logLevel as LevelWithSilent
  }
}

const program: ServerProgram<Parsed, FaultProxy, Logger> = {
  name: 'hsmlab-fault-proxy',
  what: 'fault proxy',
  usage: USAGE,
  parse,
  createLogger: options => createLogger(options.logLevel),
  start: async (options, logger) => await startFaultProxy({
    host: options.host,
    port: options.port,
    logger,
    apiHeadersTimeoutMs: options.apiHeadersTimeoutMs,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.config === undefined ? {} : { config: options.config })
  }),
  ready: server => ({ port: server.port, seed: server.seed })
}

/** Runs one fault proxy server until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io?: MainIo): Promise<number> {
  return await runServer(program, argv, io)
}

// The committed launcher bin/fault-proxy.js imports this file: started directly, through the
// launcher, or through a symlink to either, it runs.
if (isEntryPoint(import.meta.url, new URL('../../bin/fault-proxy.js', import.meta.url))) exitWhenDone(program.name, main(process.argv.slice(2)))
