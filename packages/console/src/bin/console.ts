#!/usr/bin/env node
/**
 * `hsmlab-console`: the lab's web console (docs/console.md). `hsmlab up` starts it; by hand:
 *
 *   hsmlab-console --lab-dir DIR [--data-dir DIR/console] [--port 0] [--log-level silent]
 *
 * It listens on 127.0.0.1 only and prints one JSON line on stdout once it listens and has read
 * the lab, `{"event":"ready","pid":…,"port":…,"url":"http://127.0.0.1:<port>/?token=…"}`; logs
 * are JSON lines on stderr. SIGTERM or SIGINT: it closes every page's stream and terminal, and
 * exits 0. Exit 1: bad arguments or a failure to start (the message says which).
 */
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { LOG_LEVELS, UsageError, createLogger, exitWhenDone, isEntryPoint, runServer } from '@hsmlab/process'
import type { LevelWithSilent, Logger, MainIo, ServerProgram } from '@hsmlab/process'
import { consoleDefaults } from '../defaults.js'
import { startConsole } from '../server.js'
import type { Console } from '../server.js'

export type { MainIo }

const USAGE = 'usage: hsmlab-console --lab-dir DIR [--data-dir DIR/console] [--port 0] [--log-level silent]'

interface Parsed {
  labDir: string
  dataDir: string
  port: number
  logLevel: LevelWithSilent
}

function parse (argv: string[]): Parsed | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      'lab-dir': { type: 'string' },
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) return 'help'
  if (values['lab-dir'] === undefined) throw new UsageError('--lab-dir is required: the lab directory to show')
  const port = Number(values.port ?? consoleDefaults.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer from 0 to 65535, not '${values.port ?? ''}'`)
  const logLevel = values['log-level'] ?? consoleDefaults.logLevel
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not '${logLevel}'`)
  const labDir = resolve(values['lab-dir'])
  return { labDir, dataDir: resolve(values['data-dir'] ?? join(labDir, 'console')), port, logLevel: logLevel as LevelWithSilent }
}

const program: ServerProgram<Parsed, Console, Logger> = {
  name: 'hsmlab-console',
  what: 'console',
  usage: USAGE,
  parse,
  createLogger: options => createLogger(options.logLevel),
  start: async (options, logger) => await startConsole({ labDir: options.labDir, dataDir: options.dataDir, port: options.port, logger }),
  ready: server => ({ port: server.port, url: server.url })
}

/** Runs the console until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io?: MainIo): Promise<number> {
  return await runServer(program, argv, io)
}

if (isEntryPoint(import.meta.url, new URL('../../bin/console.js', import.meta.url))) exitWhenDone(program.name, main(process.argv.slice(2)))
