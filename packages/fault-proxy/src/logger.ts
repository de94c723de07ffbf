/**
 * Structured logs: pino, one JSON object a line on standard error, silent unless asked. A root
 * logger is injected into `startFaultProxy`; each module takes a child named after it
 * (`hsmlab:fault-proxy:api`), so a reader can filter one part.
 */
import { pino } from 'pino'
import type { Logger, LevelWithSilent } from 'pino'

export type { Logger }

/** Log levels the bin's `--log-level` accepts. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']

/** A root logger writing JSON lines to a file descriptor (standard error by default). */
export function createLogger (level: LevelWithSilent = 'silent', fd = 2): Logger {
  // Synchronous writes: a line logged just before the process exits is not lost.
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd, sync: true }))
}

/** A logger that writes nothing (the default of `startFaultProxy`). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

/** A child logger for one module, `hsmlab:fault-proxy:<name>`. */
export function forComponent (logger: Logger, name: string): Logger {
  return logger.child({ ns: `hsmlab:fault-proxy:${name}` })
}
