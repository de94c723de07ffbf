#!/usr/bin/env node
/**
 * `hsmlab-hsm`: one HSM process. It serves a data directory that `provisionHsm` made, or makes
 * it first from a provision file (`--provision FILE`, see provision-file.ts) when it is not
 * provisioned yet; with the directory provisioned the flag is ignored:
 *
 *   hsmlab-hsm --data-dir DIR --manufacturer-key-file FILE [--provision FILE] [--host 127.0.0.1]
 *              [--port 0] [--keys-max 3300] [--log-level silent]
 *
 * Once it listens it prints one JSON line on stdout,
 * `{"event":"ready","pid":…,"hsmId":"hsm-…","host":"127.0.0.1","port":…}`, and nothing else
 * there; logs are pino JSON lines on stderr. SIGTERM or SIGINT stop it gracefully (exit 0).
 * Exit 2: the data directory cannot be loaded (a store was tampered with, the storage key does
 * not open with this manufacturer key, the directory is not provisioned) or made from the
 * provision file (malformed; a tampered, foreign or unreadable backup), with the reason, naming
 * the file, on stderr. Exit 1: bad arguments or any other failure to start.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { LevelWithSilent } from 'pino'
import { hsmDefaults } from '../defaults.js'
import {
  HSM_ERR_ALREADY_PROVISIONED, HSM_ERR_BACKUP_FOREIGN, HSM_ERR_BACKUP_FORMAT, HSM_ERR_BACKUP_TAMPERED, HSM_ERR_MANUFACTURER_KEY,
  HSM_ERR_NOT_PROVISIONED, HSM_ERR_PROVISION_FILE, HSM_ERR_STORAGE_KEY, HSM_ERR_STORE_LOAD, HSM_EXIT_CODES
} from '../errors.js'
import { startHsm } from '../hsm-node.js'
import { LOG_LEVELS, createLogger, forComponent } from '../logger.js'
import { provisionIfNeeded } from '../provision-file.js'
import { readManufacturerKey } from '../provisioning.js'

const { ok: EXIT_OK, failure: EXIT_FAILURE, dataUnloadable: EXIT_DATA_UNLOADABLE } = HSM_EXIT_CODES

const USAGE = 'usage: hsmlab-hsm --data-dir DIR --manufacturer-key-file FILE [--provision FILE] [--host 127.0.0.1] [--port 0] [--keys-max 3300] [--log-level silent]'

const DATA_ERRORS = new Set([
  HSM_ERR_STORE_LOAD, HSM_ERR_STORAGE_KEY, HSM_ERR_NOT_PROVISIONED, HSM_ERR_MANUFACTURER_KEY, HSM_ERR_ALREADY_PROVISIONED,
  HSM_ERR_PROVISION_FILE, HSM_ERR_BACKUP_FORMAT, HSM_ERR_BACKUP_TAMPERED, HSM_ERR_BACKUP_FOREIGN
])

/** Where `main` writes and what stops it; the defaults are the process's. */
export interface MainIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Resolves when the HSM should stop. @default the first SIGTERM or SIGINT */
  stopRequested?: Promise<unknown>
}

class UsageError extends Error {}

function integer (flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, not '${text}'`)
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

/** Runs one HSM until it is asked to stop; resolves with the process's exit code. */
export async function main (argv: string[], io: MainIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) }
}): Promise<number> {
  let options
  try {
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
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    if (values.help === true) {
      io.stdout(`${USAGE}\n`)
      return EXIT_OK
    }
    const dataDir = values['data-dir']
    const keyFile = values['manufacturer-key-file']
    if (dataDir === undefined) throw new UsageError('--data-dir is required')
    if (keyFile === undefined) throw new UsageError('--manufacturer-key-file is required')
    const logLevel = values['log-level'] ?? 'silent'
    if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
      throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not '${logLevel}'`)
    }
    options = {
      dataDir,
      keyFile,
      provisionFile: values.provision,
      host: values.host ?? hsmDefaults.host,
      port: integer('port', values.port, hsmDefaults.port, 0, 65535),
      keysMax: integer('keys-max', values['keys-max'], hsmDefaults.keysMax, 0, 1_000_000),
      logLevel: logLevel as LevelWithSilent
    }
  } catch (err) {
    io.stderr(`hsmlab-hsm: ${(err as Error).message}\n${USAGE}\n`)
    return EXIT_FAILURE
  }

  const logger = createLogger(options.logLevel)
  const log = forComponent(logger, 'bin')
  let node
  try {
    const manufacturerKey = await readManufacturerKey(options.keyFile)
    if (options.provisionFile !== undefined) {
      const made = await provisionIfNeeded({ dataDir: options.dataDir, provisionFile: options.provisionFile, manufacturerKey })
      if (made !== undefined) log.info({ hsmId: made.hsmId, clusterId: made.clusterId, restoredFrom: made.restoredFrom }, 'provisioned from the provision file')
    }
    node = await startHsm({
      dataDir: options.dataDir,
      manufacturerKey,
      host: options.host,
      port: options.port,
      limits: { keysMax: options.keysMax },
      logger
    })
  } catch (err) {
    const code = (err as { code?: unknown }).code
    log.fatal({ err }, 'HSM failed to start')
    io.stderr(`hsmlab-hsm: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return typeof code === 'string' && DATA_ERRORS.has(code) ? EXIT_DATA_UNLOADABLE : EXIT_FAILURE
  }
  const stopRequested = io.stopRequested ?? processSignals()
  io.stdout(`${JSON.stringify({ event: 'ready', pid: process.pid, hsmId: node.hsmId, host: node.host, port: node.port })}\n`)
  const reason = await stopRequested
  log.info({ reason }, 'stop requested')
  try {
    await node.stop()
  } catch (err) {
    log.error({ err }, 'HSM failed to stop cleanly')
    io.stderr(`hsmlab-hsm: stopping failed: ${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
  return EXIT_OK
}

function isEntryPoint (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(code => {
    process.exitCode = code
    // Everything is closed by now; if a stray handle keeps the loop alive, leave anyway.
    setTimeout(() => { process.exit(code) }, 1_000).unref()
  }, (err: unknown) => {
    process.stderr.write(`hsmlab-hsm: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(EXIT_FAILURE)
  })
}
