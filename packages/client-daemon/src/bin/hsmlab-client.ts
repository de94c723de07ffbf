#!/usr/bin/env node
/**
 * `hsmlab-client`: the client daemon of one cluster (docs/pkcs11.md).
 *
 *   hsmlab-client --config CMU.cfg --socket PATH [--label NAME] [--data-dir DIR] [--log-level silent] [--operation-timeout-ms 20000] [--token-key-min-servers 1]
 *
 * `--config` is a CMU configuration (cloudhsm_mgmt_util.cfg: the cluster's HSMs and its trust
 * anchor), as `hsmlab up` writes one per cluster. Once the socket listens it prints
 * `{"event":"ready","pid":…,"socket":…,"hsms":N}` on stdout; logs are JSON lines on stderr.
 * `--data-dir` names the directory the daemon's files are kept in by whoever started it (the lab
 * keeps its output and log there, and finds its processes by it); the daemon itself writes nothing.
 * SIGTERM or SIGINT: it closes every connection, removes the socket and exits 0.
 */
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { readCmuConfig } from '@hsmlab/client'
import { LOG_LEVELS, UsageError, createLogger, exitWhenDone, isEntryPoint, runServer } from '@hsmlab/process'
import type { LevelWithSilent, Logger, MainIo, ServerProgram } from '@hsmlab/process'
import { startClientDaemon } from '../client-daemon.js'
import type { ClientDaemon } from '../client-daemon.js'
import { clientDaemonDefaults } from '../defaults.js'
import { forComponent } from '../logger.js'

const USAGE = 'usage: hsmlab-client --config CMU.cfg --socket PATH [--label NAME] [--data-dir DIR] [--log-level silent] [--operation-timeout-ms 20000] [--token-key-min-servers 1]'

interface Parsed {
  config: string
  socket: string
  label: string
  logLevel: LevelWithSilent
  operationTimeoutMs: number
  tokenKeyMinServers: number
}

function parse (argv: string[]): Parsed | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string' },
      socket: { type: 'string' },
      label: { type: 'string' },
      'data-dir': { type: 'string' },
      'log-level': { type: 'string' },
      'operation-timeout-ms': { type: 'string' },
      'token-key-min-servers': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) return 'help'
  if (values.config === undefined) throw new UsageError('--config is required')
  if (values.socket === undefined) throw new UsageError('--socket is required')
  const logLevel = values['log-level'] ?? clientDaemonDefaults.logLevel
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not '${logLevel}'`)
  const timeout = values['operation-timeout-ms'] === undefined ? clientDaemonDefaults.operationTimeoutMs : Number(values['operation-timeout-ms'])
  if (!Number.isSafeInteger(timeout) || timeout < 1) throw new UsageError('--operation-timeout-ms must be a positive integer')
  const minServers = values['token-key-min-servers'] === undefined ? clientDaemonDefaults.tokenKeyMinServers : Number(values['token-key-min-servers'])
  if (!Number.isSafeInteger(minServers) || minServers < 1 || minServers > 28) throw new UsageError('--token-key-min-servers must be an integer from 1 to 28')
  return { config: values.config, socket: resolve(values.socket), label: values.label ?? 'hsmlab', logLevel: logLevel as LevelWithSilent, operationTimeoutMs: timeout, tokenKeyMinServers: minServers }
}

const program: ServerProgram<Parsed, ClientDaemon, Logger> = {
  name: 'hsmlab-client',
  what: 'client daemon',
  usage: USAGE,
  parse,
  createLogger: options => createLogger(options.logLevel),
  start: async (options, logger) => {
    const config = await readCmuConfig(options.config)
    return await startClientDaemon({
      servers: config.servers,
      socketPath: options.socket,
      label: options.label,
      logger: forComponent(logger, 'daemon'),
      operationTimeoutMs: options.operationTimeoutMs,
      tokenKeyMinServers: options.tokenKeyMinServers
    })
  },
  ready: daemon => ({ socket: daemon.socketPath, hsms: daemon.connectedHsms })
}

export async function main (argv: string[], io?: MainIo): Promise<number> {
  return await runServer(program, argv, io)
}

if (isEntryPoint(import.meta.url, new URL('../../bin/hsmlab-client.js', import.meta.url))) exitWhenDone(program.name, main(process.argv.slice(2)))
