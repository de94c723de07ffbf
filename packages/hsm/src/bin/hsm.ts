#!/usr/bin/env node
/**
 * `hsmlab-hsm`: one HSM process. It serves a data directory that `provisionHsm` made, or makes
 * it first from a provision file (`--provision FILE`, see provision-file.ts) when it is not
 * provisioned yet; with the directory provisioned the flag is ignored:
 *
 *   hsmlab-hsm --data-dir DIR --manufacturer-key-file FILE [--provision FILE] [--host 127.0.0.1]
 *              [--port 0] [--keys-max 3300] [--headers-timeout-ms 10000] [--log-level silent]
 *
 * Once it listens it prints one JSON line on stdout,
 * `{"event":"ready","pid":…,"hsmId":"hsm-…","host":"127.0.0.1","port":…}`, and nothing else
 * there; logs are pino JSON lines on stderr. SIGTERM or SIGINT stop it gracefully (exit 0).
 * Exit 2: the data directory cannot be loaded (a store was tampered with, the storage key does
 * not open with this manufacturer key, the directory is not provisioned) or made from the
 * provision file (malformed; a tampered, foreign or unreadable backup), with the reason, naming
 * the file, on stderr. Exit 1: bad arguments or any other failure to start.
 */
import { parseArgs } from 'node:util'
import { UsageError, exitWhenDone, isEntryPoint, runServer } from '@hsmlab/process'
import type { MainIo, ServerProgram } from '@hsmlab/process'
import type { LevelWithSilent } from 'pino'
import { hsmDefaults } from '../defaults.js'
import {
  HSM_ERR_ALREADY_PROVISIONED, HSM_ERR_BACKUP_FOREIGN, HSM_ERR_BACKUP_FORMAT, HSM_ERR_BACKUP_TAMPERED, HSM_ERR_MANUFACTURER_KEY,
  HSM_ERR_NOT_PROVISIONED, HSM_ERR_PROVISION_FILE, HSM_ERR_STORAGE_KEY, HSM_ERR_STORE_LOAD, HSM_EXIT_CODES
} from '../errors.js'
import { startHsm } from '../hsm-node.js'
import type { HsmNode } from '../hsm-node.js'
import { LOG_LEVELS, createLogger, forComponent } from '../logger.js'
import type { Logger } from '../logger.js'
import { provisionIfNeeded } from '../provision-file.js'
import { readManufacturerKey } from '../provisioning.js'

export type { MainIo }

const { failure: EXIT_FAILURE, dataUnloadable: EXIT_DATA_UNLOADABLE } = HSM_EXIT_CODES

const USAGE = 'usage: hsmlab-hsm --data-dir DIR --manufacturer-key-file FILE [--provision FILE] [--host 127.0.0.1] [--port 0] [--keys-max 3300] [--headers-timeout-ms 10000] [--log-level silent]'

const DATA_ERRORS = new Set([
  HSM_ERR_STORE_LOAD, HSM_ERR_STORAGE_KEY, HSM_ERR_NOT_PROVISIONED, HSM_ERR_MANUFACTURER_KEY, HSM_ERR_ALREADY_PROVISIONED,
  HSM_ERR_PROVISION_FILE, HSM_ERR_BACKUP_FORMAT, HSM_ERR_BACKUP_TAMPERED, HSM_ERR_BACKUP_FOREIGN
])

interface Parsed {
  dataDir: string
  keyFile: string
  provisionFile: string | undefined
  host: string
  port: number
  keysMax: number
  headersTimeoutMs: number
  logLevel: LevelWithSilent
}

function integer (flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, not '${text}'`)
  }
  return value
}

function parse (argv: string[]): Parsed | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      'data-dir': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'manufacturer-key-file': { type: 'string' },
      provision: { type: 'string' },
      'keys-max': { type: 'string' },
      'headers-timeout-ms': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) return 'help'
  const dataDir = values['data-dir']
  const keyFile = values['manufacturer-key-file']
  if (dataDir === undefined) throw new UsageError('--data-dir is required')
  if (keyFile === undefined) throw new UsageError('--manufacturer-key-file is required')
  const logLevel = values['log-level'] ?? 'silent'
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not '${logLevel}'`)
  }
  return {
    dataDir,
    keyFile,
    provisionFile: values.provision,
    host: values.host ?? hsmDefaults.host,
    port: integer('port', values.port, hsmDefaults.port, 0, 65535),
    keysMax: integer('keys-max', values['keys-max'], hsmDefaults.keysMax, 0, 1_000_000),
    headersTimeoutMs: integer('headers-timeout-ms', values['headers-timeout-ms'], hsmDefaults.headersTimeoutMs, 1, 3_600_000),
    logLevel: logLevel as LevelWithSilent
  }
}

async function start (options: Parsed, logger: Logger): Promise<HsmNode> {
  const manufacturerKey = await readManufacturerKey(options.keyFile)
  if (options.provisionFile !== undefined) {
    const made = await provisionIfNeeded({ dataDir: options.dataDir, provisionFile: options.provisionFile, manufacturerKey })
    if (made !== undefined) forComponent(logger, 'bin').info({ hsmId: made.hsmId, clusterId: made.clusterId, restoredFrom: made.restoredFrom }, 'provisioned from the provision file')
  }
  return await startHsm({
    dataDir: options.dataDir,
    manufacturerKey,
    host: options.host,
    port: options.port,
    limits: { keysMax: options.keysMax },
    headersTimeoutMs: options.headersTimeoutMs,
    logger
  })
}

const program: ServerProgram<Parsed, HsmNode, Logger> = {
  name: 'hsmlab-hsm',
  what: 'HSM',
  usage: USAGE,
  parse,
  createLogger: options => createLogger(options.logLevel),
  binLogger: logger => forComponent(logger, 'bin'),
  start,
  ready: node => ({ hsmId: node.hsmId, host: node.host, port: node.port }),
  startFailureExitCode: err => {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' && DATA_ERRORS.has(code) ? EXIT_DATA_UNLOADABLE : EXIT_FAILURE
  }
}

/** Runs one HSM until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io?: MainIo): Promise<number> {
  return await runServer(program, argv, io)
}

if (isEntryPoint(import.meta.url)) exitWhenDone(program.name, main(process.argv.slice(2)))
