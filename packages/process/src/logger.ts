/**
 * Structured logs of every hsmlab process: pino, one JSON object a line on standard error,
 * silent unless asked. A root logger is injected into each server; each module takes a child
 * named after it (`hsmlab:hsm:server`, `hsmlab:control-plane:copier`), so a reader can filter
 * one part of one process.
 */
import { pino } from 'pino'
import type { Logger, LevelWithSilent } from 'pino'

export type { Logger, LevelWithSilent }

/** Log levels the bins' `--log-level` accepts. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']

/** A root logger writing JSON lines to a file descriptor (standard error by default). */
export function createLogger (level: LevelWithSilent = 'silent', fd = 2): Logger {
  // Synchronous writes: a line logged just before the process exits is not lost.
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd, sync: true }))
}

/** A logger that writes nothing (the default where no logger is given). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

/** The child-logger maker of one package: `componentLoggers('hsmlab:hsm')(logger, 'server')` logs as `hsmlab:hsm:server`. */
export function componentLoggers (prefix: string): (logger: Logger, name: string) => Logger {
  return (logger, name) => logger.child({ ns: `${prefix}:${name}` })
}
