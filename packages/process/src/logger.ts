/**
 * Structured logs of every hsmlab process: pino, one JSON object a line on standard error,
 * silent unless asked. A root logger is injected into each server; each module takes a child
 * named after it (`hsmlab:hsm:server`, `hsmlab:control-plane:copier`), so a reader can filter
 * one part of one process.
 */
import { pino } from 'pino'
import type { Logger, LevelWithSilent } from 'pino'
import { processDefaults } from './defaults.js'

export type { Logger, LevelWithSilent }

/** Log levels the bins' `--log-level` accepts. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']

/** Options of `createLogger`. */
export interface LoggerOptions {
  /**
   * Most bytes of lines kept while the log cannot be written. @default 1048576 (1 MiB)
   */
  bufferedBytesMax?: number
}

/**
 * A root logger writing JSON lines to a file descriptor (standard error by default).
 *
 * A line that cannot be written (the log's disk is full: ENOSPC) must not end the process: the
 * log is usually on the same disk as the data, and a server that dies of a full disk takes its
 * explanation with it. So a failed write is kept (up to `bufferedBytesMax`, past which lines are
 * dropped) and written together with the next line that can be.
 */
export function createLogger (level: LevelWithSilent = 'silent', fd = 2, options: LoggerOptions = {}): Logger {
  // Synchronous writes: a line logged just before the process exits is not lost.
  const destination = pino.destination({ fd, sync: true, maxLength: options.bufferedBytesMax ?? processDefaults.logBufferedBytesMax })
  // Without a listener SonicBoom throws the write error out of the logging call; it keeps the
  // unwritten bytes and tries them again on the next write.
  destination.on('error', () => {})
  return pino({ level, base: { pid: process.pid } }, destination)
}

/** A logger that writes nothing (the default where no logger is given). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

/** The child-logger maker of one package: `componentLoggers('hsmlab:hsm')(logger, 'server')` logs as `hsmlab:hsm:server`. */
export function componentLoggers (prefix: string): (logger: Logger, name: string) => Logger {
  return (logger, name) => logger.child({ ns: `${prefix}:${name}` })
}
