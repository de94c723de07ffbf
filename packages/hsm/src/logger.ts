/** Structured logs (pino; see @hsmlab/process): this package's modules log as `hsmlab:hsm:<name>`. */
import { componentLoggers } from '@hsmlab/process'

export { LOG_LEVELS, createLogger, silentLogger } from '@hsmlab/process'
export type { Logger } from '@hsmlab/process'

/** A child logger for one module, `hsmlab:hsm:<name>`. */
export const forComponent = componentLoggers('hsmlab:hsm')
