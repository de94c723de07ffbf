/** Structured logs (pino; see @hsmlab/process): this package's modules log as `hsmlab:fault-proxy:<name>`. */
import { componentLoggers } from '@hsmlab/process'

export { LOG_LEVELS, createLogger, silentLogger } from '@hsmlab/process'
export type { Logger } from '@hsmlab/process'

/** A child logger for one module, `hsmlab:fault-proxy:<name>`. */
export const forComponent = componentLoggers('hsmlab:fault-proxy')
