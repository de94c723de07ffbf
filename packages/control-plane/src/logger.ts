/**
 * Structured logs: pino, one JSON object a line on standard error, silent unless asked. Each
 * module takes a child named after it (`hsmlab:control-plane:supervisor`).
 */
import { pino } from 'pino'
import type { Logger, LevelWithSilent } from 'pino'

export type { Logger }

/** Log levels `--log-level` accepts. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']

/** A root logger writing JSON lines to a file descriptor (standard error by default). */
export function createLogger (level: LevelWithSilent = 'silent', fd = 2): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd, sync: true }))
}

/** A child logger for one module, `hsmlab:control-plane:<name>`. */
export function forComponent (logger: Logger, name: string): Logger {
  return logger.child({ ns: `hsmlab:control-plane:${name}` })
}
